package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The roles of the controls ClickText and Fill act on, as Chromium's accessibility tree names
// them, and how an error calls them.
const (
	clickableKind = "button, link or other control"
	fillableKind  = "text field, search field, number field or select"
)

var (
	clickableRoles = []string{"button", "link", "menuitem", "menuitemcheckbox", "menuitemradio",
		"tab", "checkbox", "radio", "switch", "option", "treeitem", "DisclosureTriangle"}
	fillableRoles = []string{"textbox", "searchbox", "combobox", "spinbutton"}
)

// Click clicks the first visible element that matches the CSS selector, with the mouse at its
// centre. A click that loads a page does not wait for it: follow it with WaitText.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	if err := b.click(selector); err != nil {
		b.t.Fatal(err)
	}
}

func (b *Browser) click(selector string) error {
	return b.do(fmt.Sprintf("clicking %q", selector), nil, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
}

// ClickText clicks the one visible button, link, tab, checkbox or other control whose
// accessible name is name: what a screen reader reads for it (its text, its label or its
// aria-label). No such control, or more than one, fails the test.
func (b *Browser) ClickText(name string) {
	b.t.Helper()
	if err := b.clickText(name); err != nil {
		b.t.Fatal(err)
	}
}

func (b *Browser) clickText(name string) error {
	var why string
	return b.do(fmt.Sprintf("clicking the control named %q", name), &why,
		chromedp.Click("", byName(name, clickableRoles, clickableKind, &why), chromedp.NodeVisible))
}

// Fill types value into the one visible text field, search field, number field or select
// whose accessible name is label (its <label>, aria-label or aria-labelledby), replacing what
// it held. A select takes the option whose text or value is value. A field that is not
// labelled cannot be filled: that is a bug in the page.
func (b *Browser) Fill(label, value string) {
	b.t.Helper()
	if err := b.fill(label, value); err != nil {
		b.t.Fatal(err)
	}
}

func (b *Browser) fill(label, value string) error {
	var why string
	return b.do(fmt.Sprintf("filling the field labelled %q", label), &why, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.QueryAfter("", func(ctx context.Context, t *chromedp.Target, nodes []*chromedp.Node) (chromedp.Void, error) {
			n := nodes[0]
			next, err := callOn[string](ctx, t, n, fillJS, value)
			if err != nil {
				return chromedp.Void{}, err
			}
			switch next {
			case "":
				return chromedp.Void{}, nil
			case "type":
			default:
				return chromedp.Void{}, errors.New(next)
			}
			_, err = chromedp.KeyEventNode(n, value)(ctx, t)
			return chromedp.Void{}, err
		}, byName(label, fillableRoles, fillableKind, &why), chromedp.NodeVisible)(ctx, t)
		return err
	}))
}

// fillJS empties a field before Fill types into it, or picks a select's option. It returns
// "type" when Fill is to type the value, "" when it set it, or what went wrong.
const fillJS = `function(v) {
	if (this.disabled || this.readOnly) return 'the field is ' + (this.disabled ? 'disabled' : 'read-only');
	if (this.tagName === 'SELECT') {
		const o = [...this.options].find(o => o.label.trim() === v || o.value === v);
		if (!o) return 'the select has no option ' + JSON.stringify(v) + '; its options are ' +
			[...this.options].map(o => JSON.stringify(o.label.trim())).join(', ');
		this.value = o.value;
		this.dispatchEvent(new Event('input', {bubbles: true}));
		this.dispatchEvent(new Event('change', {bubbles: true}));
		return '';
	}
	if (!('value' in this)) return 'the field is a ' + this.tagName.toLowerCase() + ', which holds no value';
	this.focus();
	this.value = '';
	this.dispatchEvent(new Event('input', {bubbles: true}));
	return 'type';
}`

// Value returns the value of the field whose accessible name is label.
func (b *Browser) Value(label string) string {
	b.t.Helper()
	var why string
	var v string
	err := b.do(fmt.Sprintf("reading the field labelled %q", label), &why, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		v, err = chromedp.QueryAfter("", func(ctx context.Context, t *chromedp.Target, nodes []*chromedp.Node) (string, error) {
			return callOn[string](ctx, t, nodes[0], `function() { return String(this.value); }`)
		}, byName(label, fillableRoles, fillableKind, &why))(ctx, t)
		return err
	}))
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

// Text returns the visible text (innerText, trimmed) of the first visible element that
// matches the CSS selector, waiting for it to appear. It is read in one evaluation in the
// page, so a part the page replaces meanwhile (a live update) is read whole, before or after.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	sel, err := json.Marshal(selector)
	if err != nil {
		b.t.Fatal(err)
	}
	js := `(() => { const e = [...document.querySelectorAll(` + string(sel) + `)].find(e => e.getClientRects().length > 0); return e ? e.innerText : null })()`
	var text *string
	err = b.do(fmt.Sprintf("reading the text of %q", selector), nil, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			var err error
			if text, err = chromedp.Evaluate[*string](js)(ctx, t); err != nil || text != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("no visible element matches: %w", ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	if err != nil {
		b.t.Fatal(err)
	}
	return strings.TrimSpace(*text)
}

// WaitText waits until the page's visible text holds text, polling, and fails the test with
// what the page shows instead when it does not within the Browser's timeout.
func (b *Browser) WaitText(text string) {
	b.t.Helper()
	if err := b.waitText(text); err != nil {
		b.t.Fatal(err)
	}
}

const bodyTextJS = `document.body ? document.body.innerText : ''`

func (b *Browser) waitText(text string) error {
	deadline := time.Now().Add(b.timeout())
	var shown string
	for {
		ctx, cancel := context.WithDeadline(b.ctx, deadline)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](bodyTextJS))
		cancel()
		if err == nil {
			if strings.Contains(got, text) {
				return nil
			}
			shown = got
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("browsertest: waiting for the text %q on %s: not shown within %s; the page shows:\n%s",
				text, b.location(), b.timeout(), excerpt(shown, 600))
		}
		// A navigation under way can fail an evaluation: poll again.
		time.Sleep(20 * time.Millisecond)
	}
}

// excerpt returns s with its white space collapsed, cut to n bytes.
func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(no text)"
	}
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Press sends keys to the focused element as a person types them; kb's constants name the
// special keys (kb.Enter, kb.Escape, kb.ArrowDown).
func (b *Browser) Press(keys string) {
	b.t.Helper()
	if err := b.do(fmt.Sprintf("pressing %q", keys), nil, chromedp.KeyEvent(keys)); err != nil {
		b.t.Fatal(err)
	}
}

// Tab presses the Tab key: focus moves to the next control.
func (b *Browser) Tab() {
	b.t.Helper()
	b.Press(kb.Tab)
}

// ShiftTab presses Shift+Tab: focus moves to the previous control.
func (b *Browser) ShiftTab() {
	b.t.Helper()
	if err := b.do("pressing Shift+Tab", nil,
		chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift))); err != nil {
		b.t.Fatal(err)
	}
}

// Focused describes the element that has the keyboard focus by its role and accessible name,
// as a screen reader announces it, for example `textbox "Email"` or `button "Save"`. It is ""
// when nothing has focus (the page's body).
func (b *Browser) Focused() string {
	b.t.Helper()
	var desc string
	err := b.do("reading which element has focus", nil, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		obj, err := chromedp.Evaluate[*runtime.RemoteObject](
			`document.activeElement === document.body ? null : document.activeElement`)(ctx, t)
		if err != nil {
			return err
		}
		if obj == nil || obj.ObjectID == "" {
			return nil
		}
		defer func() {
			_, _ = cdp.Call(ctx, t, runtime.ReleaseObject, runtime.ReleaseObjectParams{ObjectID: obj.ObjectID})
		}()
		fetchRelatives := false
		tree, err := cdp.Call(ctx, t, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{
			ObjectID: obj.ObjectID, FetchRelatives: &fetchRelatives})
		if err != nil {
			return err
		}
		if len(tree.Nodes) == 0 {
			return errors.New("the focused element has no accessibility node")
		}
		n := tree.Nodes[0]
		desc = axString(n.Role) + " " + strconv.Quote(axString(n.Name))
		return nil
	}))
	if err != nil {
		b.t.Fatal(err)
	}
	return desc
}

// byName is a query option that finds the one element whose accessible name is name and
// whose role is one of roles (kind, in words), from Chromium's accessibility tree. While it
// finds none, or more than one, it keeps in *why what it found instead, for the error when the
// wait times out.
func byName(name string, roles []string, kind string, why *string) chromedp.QueryOption {
	return chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, root *chromedp.Node) ([]cdp.NodeID, error) {
		res, err := cdp.Call(ctx, t, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{
			NodeID: root.NodeID, AccessibleName: name})
		if err != nil {
			if ctx.Err() == nil { // else the wait is over: keep what the last look found
				*why = "querying the accessibility tree: " + err.Error()
			}
			return nil, err
		}
		var ids []cdp.BackendNodeID
		var others []string
		for _, n := range res.Nodes {
			if n.Ignored || n.BackendDOMNodeID == 0 {
				continue
			}
			role := axString(n.Role)
			if slices.Contains(roles, role) {
				ids = append(ids, n.BackendDOMNodeID)
			} else if role != "StaticText" && role != "InlineTextBox" && role != "LabelText" {
				others = append(others, role)
			}
		}
		switch {
		case len(ids) > 1:
			*why = fmt.Sprintf("%d controls are named %q: give them distinct names, or pick one with a CSS selector", len(ids), name)
			return nil, errors.New(*why)
		case len(ids) == 0 && len(others) > 0:
			*why = fmt.Sprintf("only a %s is named %q, not a %s", strings.Join(others, ", "), name, kind)
			return nil, nil
		case len(ids) == 0:
			*why = fmt.Sprintf("no %s is named %q (is it labelled?)", kind, name)
			return nil, nil
		}
		pushed, err := cdp.Call(ctx, t, dom.PushNodesByBackendIDsToFrontend, dom.PushNodesByBackendIDsToFrontendParams{BackendNodeIDs: ids})
		if err != nil {
			return nil, err
		}
		*why = fmt.Sprintf("the control named %q is not visible", name)
		return pushed.NodeIDs, nil
	})
}

// axString returns the string an accessibility value holds, or "" when it holds none.
func axString(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal([]byte(v.Value), &s); err != nil {
		return string(v.Value)
	}
	return s
}

// callOn calls the JavaScript function fn with the element n as this and returns its result.
func callOn[T any](ctx context.Context, t *chromedp.Target, n *chromedp.Node, fn string, args ...any) (T, error) {
	var zero T
	obj, err := cdp.Call(ctx, t, dom.ResolveNode, dom.ResolveNodeParams{NodeID: n.NodeID})
	if err != nil {
		return zero, err
	}
	if obj.Object == nil {
		return zero, errors.New("the element is gone from the page")
	}
	defer func() {
		_, _ = cdp.Call(ctx, t, runtime.ReleaseObject, runtime.ReleaseObjectParams{ObjectID: obj.Object.ObjectID})
	}()
	return chromedp.CallFunctionOn[T](fn, func(p *runtime.CallFunctionOnParams) { p.ObjectID = obj.Object.ObjectID }, args...)(ctx, t)
}

// Bool evaluates a JavaScript expression in the page and returns its truth, failing the
// test when it cannot be evaluated.
func (b *Browser) Bool(expr string) bool {
	b.t.Helper()
	var v bool
	err := b.do("evaluating "+excerpt(expr, 60), nil, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		v, err = chromedp.Evaluate[bool](expr)(ctx, t)
		return err
	}))
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}
