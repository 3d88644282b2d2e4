// Package browsertest drives a real headless Chromium from tests: one Chromium per test
// package, started on first use and shared by its tests, and for each test a browser context of
// its own (a tab with its own cookies and storage). It navigates, clicks and fills forms the way
// a person does (controls found by their accessible names), checks a page with axe-core and
// writes full-page screenshots as test artefacts.
//
// Imported only from tests.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultTimeout bounds each step of a Browser (a navigation, a click, a wait for text) unless
// its Timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// The viewport a Browser starts with: a desktop window.
const (
	DefaultWidth  = 1280
	DefaultHeight = 800
)

// Browser is one test's view of the package's Chromium: a tab in a browser context of its
// own, so its cookies, storage and cache are not another test's. Its methods fail the test
// they were made for (with t.Fatal) and name what they waited for and on which page; they are
// for the test's goroutine only.
type Browser struct {
	t   testing.TB
	ctx context.Context

	// Timeout bounds each step; DefaultTimeout when zero.
	Timeout time.Duration

	width, height int
}

// New opens a tab for the test in a new browser context of the package's Chromium, starting
// Chromium on first use, with a DefaultWidth × DefaultHeight viewport. The tab and its browser
// context are closed when the test ends. A Chromium that cannot be found or started fails the
// test with the fix; it never skips.
func New(t testing.TB) *Browser {
	t.Helper()
	parent, err := browser()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b := &Browser{t: t, ctx: ctx}
	// The first Do on a tab's context opens the tab and ties the tab's event loop to the
	// context it is given, so it runs on ctx itself; a tab that does not open in time is
	// closed by cancelling ctx.
	opened := make(chan error, 1)
	go func() { opened <- chromedp.Do(ctx) }()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("browsertest: opening a tab in a new browser context: %v", err)
		}
	case <-time.After(b.timeout()):
		cancel()
		t.Fatalf("browsertest: opening a tab in a new browser context: not done within %s", b.timeout())
	}
	b.Viewport(DefaultWidth, DefaultHeight)
	return b
}

// Context returns the tab's chromedp context, for a step this package has no method for.
func (b *Browser) Context() context.Context { return b.ctx }

func (b *Browser) timeout() time.Duration {
	if b.Timeout > 0 {
		return b.Timeout
	}
	return DefaultTimeout
}

// do runs steps on the tab within the Browser's timeout. An error says what was being done,
// on which page, and, for a timeout, how long it waited and what *why (when not nil) holds:
// what the step found instead of what it waited for.
func (b *Browser) do(what string, why *string, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout())
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		if why != nil && *why != "" && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("browsertest: %s on %s: not done within %s: %s", what, b.location(), b.timeout(), *why)
		}
		return b.stepError(what, err)
	}
	return nil
}

// stepError describes a failed step: what, where, and why.
func (b *Browser) stepError(what string, err error) error {
	where := b.location()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("browsertest: %s on %s: not done within %s", what, where, b.timeout())
	}
	return fmt.Errorf("browsertest: %s on %s: %w", what, where, err)
}

// location returns the tab's URL for an error message, or a placeholder when the tab does
// not answer.
func (b *Browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || loc == "" {
		return "(the tab's URL is unknown)"
	}
	return loc
}

// Navigate loads url and waits for its load event. A response with an HTTP status of 400 or
// more fails the test, as does a page that does not load; NavigateStatus takes any status.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	if status := b.NavigateStatus(url); status >= 400 {
		b.t.Fatalf("browsertest: navigating to %s: the server answered HTTP %d", url, status)
	}
}

// NavigateStatus loads url, waits for its load event and returns the HTTP status of the
// document. A page that does not load fails the test.
func (b *Browser) NavigateStatus(url string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout())
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			b.t.Fatalf("browsertest: navigating to %s: not loaded within %s", url, b.timeout())
		}
		b.t.Fatalf("browsertest: navigating to %s: %v", url, err)
	}
	if resp == nil {
		b.t.Fatalf("browsertest: navigating to %s: no response for the document", url)
	}
	return int(resp.Status)
}

// URL returns the address of the page the tab shows.
func (b *Browser) URL() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout())
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(b.stepError("reading the tab's URL", err))
	}
	return loc
}

// Viewport sets the tab's viewport to width × height CSS pixels at a device scale of 1, so a
// screenshot is width pixels wide. The page's media queries see width.
func (b *Browser) Viewport(width, height int) {
	b.t.Helper()
	if width <= 0 || height <= 0 {
		b.t.Fatalf("browsertest: viewport %d×%d: width and height must be positive", width, height)
	}
	if err := b.do(fmt.Sprintf("setting the viewport to %d×%d", width, height), nil,
		chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		b.t.Fatal(err)
	}
	b.width, b.height = width, height
}

// Title returns the page's title.
func (b *Browser) Title() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout())
	defer cancel()
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		b.t.Fatal(b.stepError("reading the title", err))
	}
	return strings.TrimSpace(title)
}
