package browsertest

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core's browser build, vendored from the npm package axe-core (see
// axe/README.md for the version and how to update it).
//
//go:embed axe/axe.min.js
var axeSource string

// Violation is one rule of axe-core that the page breaks, with the elements that break it.
type Violation struct {
	Rule    string          `json:"rule"`    // axe's rule id, such as "label" or "color-contrast"
	Impact  string          `json:"impact"`  // minor, moderate, serious or critical
	Help    string          `json:"help"`    // what the rule asks, in a sentence
	HelpURL string          `json:"helpUrl"` // the rule's page at Deque University
	Nodes   []ViolationNode `json:"nodes"`
}

// ViolationNode is one element that breaks a rule.
type ViolationNode struct {
	Target  string `json:"target"`  // a CSS selector for the element
	HTML    string `json:"html"`    // the element's opening markup
	Summary string `json:"summary"` // what to fix, as axe words it
}

// axeRunJS runs axe-core with its default rules (WCAG 2.0–2.2 A and AA and its best
// practices) on the whole document and reports the violations only: results axe marks
// "incomplete" need a person's review and do not fail a test.
const axeRunJS = `axe.run(document, {resultTypes: ['violations']}).then(r => ({
	version: axe.version,
	violations: r.violations.map(v => ({
		rule: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
		nodes: v.nodes.map(n => ({
			target: n.target.map(s => Array.isArray(s) ? s.join(' >>> ') : s).join(' | '),
			html: n.html, summary: n.failureSummary || '',
		})),
	})),
}))`

type axeResult struct {
	Version    string      `json:"version"`
	Violations []Violation `json:"violations"`
}

// Accessibility checks the page with axe-core and fails t (with t.Error, so the test goes on
// to its next page) listing each violation: its rule, impact, help and every element that
// breaks it by selector. t is the test to report to: the Browser's own or a subtest's. A page
// that axe cannot check fails t at once.
func (b *Browser) Accessibility(t testing.TB) {
	t.Helper()
	res, err := b.axe()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) > 0 {
		t.Error(report(b.location(), res))
	}
}

// Violations checks the page with axe-core and returns what it breaks, for a test that looks
// for one rule.
func (b *Browser) Violations() []Violation {
	b.t.Helper()
	res, err := b.axe()
	if err != nil {
		b.t.Fatal(err)
	}
	return res.Violations
}

// axe injects axe-core into the page, unless it is there already, and runs it.
func (b *Browser) axe() (axeResult, error) {
	var res axeResult
	err := b.do("checking accessibility with axe-core", nil, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		present, err := chromedp.Evaluate[bool](`typeof window.axe === 'object'`)(ctx, t)
		if err != nil {
			return err
		}
		if !present {
			if _, err := chromedp.Evaluate[chromedp.Void](axeSource)(ctx, t); err != nil {
				return fmt.Errorf("injecting axe-core: %w", err)
			}
		}
		res, err = chromedp.Evaluate[axeResult](axeRunJS, chromedp.EvalAwaitPromise)(ctx, t)
		if err != nil {
			return fmt.Errorf("running axe-core: %w", err)
		}
		return nil
	}))
	return res, err
}

// report lists the violations on the page at url, one rule a paragraph.
func report(url string, res axeResult) string {
	var s strings.Builder
	n := len(res.Violations)
	fmt.Fprintf(&s, "accessibility: %s breaks %d rule", url, n)
	if n != 1 {
		s.WriteString("s")
	}
	fmt.Fprintf(&s, " of axe-core %s:", res.Version)
	for _, v := range res.Violations {
		fmt.Fprintf(&s, "\n\n%s (%s): %s\n  %s", v.Rule, v.Impact, v.Help, v.HelpURL)
		for _, node := range v.Nodes {
			fmt.Fprintf(&s, "\n  - %s  %s", node.Target, node.HTML)
			for line := range strings.Lines(node.Summary) {
				if line = strings.TrimSpace(line); line != "" {
					fmt.Fprintf(&s, "\n      %s", line)
				}
			}
		}
	}
	return s.String()
}
