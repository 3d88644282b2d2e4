package allinone_test

import (
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/browsertest"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestConsoleInABrowser signs in to the console in a real Chromium, with the keyboard, and
// goes through its pages: each passes the accessibility checker, fits 1280 px and a phone's
// 390 px without scrolling sideways, and is kept as a screenshot.
func TestConsoleInABrowser(t *testing.T) {
	e := start(t, options{dir: t.TempDir(), driver: "sqlite"})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyOrders("acme", "orders")
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1001", Version: 1, Payload: order(1001, "paid")})
	e.waitCreatedOnly(1)

	b := browsertest.New(t)
	b.Navigate(e.in.APIURL() + "/t/acme/")
	if got := b.Title(); !strings.HasPrefix(got, "Sign in") {
		t.Fatalf("without a session the dashboard shows %q, want the sign-in page", got)
	}
	b.Accessibility(t)
	b.Screenshots("console-sign-in")

	// A wrong token: refused next to the field.
	b.Fill("Token", "not-a-token-of-anyone")
	b.Press("\r")
	b.WaitText("not recognised")
	b.Accessibility(t)

	// With the keyboard: the first Tab reaches the skip link, which skips the header to the
	// token field; Enter signs in.
	b.Navigate(e.in.APIURL() + "/login?next=/t/acme/")
	b.Tab()
	if got := b.Focused(); !strings.Contains(got, "Skip to the content") {
		t.Errorf("the first Tab focuses %s, want the skip link", got)
	}
	b.Press("\r")
	b.Tab()
	if got := b.Focused(); !strings.Contains(got, `"Token"`) {
		t.Errorf("the Tab after the skip link focuses %s, want the token field", got)
	}
	b.Fill("Token", e.in.AdminToken())
	b.Press("\r")
	b.WaitText("Records")
	if got := b.Title(); !strings.HasPrefix(got, "Dashboard") {
		t.Fatalf("after signing in the page is %q, want the dashboard it was asked for", got)
	}
	b.Accessibility(t)
	b.Screenshots("console-dashboard")

	b.ClickText("API log")
	b.WaitText("Newest first")
	if !strings.Contains(b.Text("table"), "1001") {
		t.Fatalf("the API log does not show order 1001: %s", b.Text("main"))
	}
	b.Accessibility(t)
	b.Screenshots("console-api-log")
	// A change published while the log is open appears without a reload.
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1002", Version: 1, Payload: order(1002, "paid")})
	b.WaitText("1002")
	if !strings.Contains(b.Text("table"), "1001") {
		t.Errorf("after the live update the API log lost order 1001: %s", b.Text("main"))
	}
	b.Fill("Remote id", "nope")
	b.ClickText("Filter")
	b.WaitText("No records match")

	// The dashboard counts a record published while it is open.
	b.ClickText("Dashboard")
	b.WaitText("Flows paused")
	records := func() string { return strings.TrimSpace(b.Text(".figures div:first-child dd")) }
	if got := records(); got != "2" {
		t.Fatalf("the dashboard counts %s records today, want 2", got)
	}
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1003", Version: 1, Payload: order(1003, "paid")})
	eventually(t, 30*time.Second, func() string {
		if got := records(); got != "3" {
			return "the dashboard still counts " + got + " records today, want 3 without a reload"
		}
		return ""
	})

	// Nothing is wider than a phone's screen.
	for _, path := range []string{"/t/acme/", "/t/acme/logs"} {
		b.Navigate(e.in.APIURL() + path)
		for _, width := range []int{390, 1280} {
			b.Viewport(width, 800)
			if b.Bool(`document.documentElement.scrollWidth > document.documentElement.clientWidth`) {
				t.Errorf("%s scrolls sideways at %d px", path, width)
			}
		}
	}
}
