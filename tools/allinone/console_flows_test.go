package allinone_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/browsertest"
)

// startFlows runs an instance with acme's orders polled every second from a json-server
// shop holding order 1 into a SQL table, and a second flow of the same orders into a
// PostgreSQL that nothing listens for, which pauses; and a tenant globex with an
// integrator of its own.
func startFlows(t *testing.T) *env {
	t.Helper()
	shop := shopServer(t)
	shop.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"orders": {polledOrder(1, "paid", time.Now())}}})
	shopURL, err := url.Parse(shop.URL)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, options{dir: t.TempDir(), driver: "sqlite", allow: []string{shopURL.Host}})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyPolledOrders(shop.URL)
	_, err = e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Endpoint", "acme", "down", map[string]any{"type": "sql", "description": "an ERP that is down", "settings": map[string]any{
			"driver": "postgres", "dsn": "postgres://postgres@" + downTarget + "/none?connect_timeout=1", "table": "orders", "create_table": true}}),
		resourceOf(t, "Flow", "acme", "orders-down", map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "down", "entity": "order",
			"schedule": map[string]any{"mode": "interval", "every": "1s", "jitter": "0s"},
			"mapping":  map[string]any{"fields": map[string]any{"order_number": "source.number"}, "exclude": []any{"*"}}}),
		resourceOf(t, "Tenant", "", "globex", map[string]any{}),
		resourceOf(t, "Integrator", "globex", "books", map[string]any{}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() string {
		if st := e.flowStatus("acme", "orders-down"); st.GetState() != "paused" || st.GetLastError() == "" {
			return fmt.Sprintf("orders-down is %v, want paused with the target's error", st)
		}
		return ""
	})
	return e
}

// TestConsoleFlows: the flows' pages list a tenant's flows and show one with its state (a
// paused one with the target's error, since when, its failures and what waits), its
// schedule and polls with a button that polls now, its mapping, and a box that tries a
// sample record: a good one says what the target would do, bad JSON is refused next to
// the box with where. Another tenant's integrator token sees nothing of them.
func TestConsoleFlows(t *testing.T) {
	e := startFlows(t)
	b := newBrowser(t, e.in.APIURL())
	csrf := b.signIn(e.in.AdminToken())

	status, body := b.get("/t/acme/flows")
	if status != http.StatusOK || !strings.Contains(body, `href="/t/acme/flows/orders"`) || !strings.Contains(body, `href="/t/acme/flows/orders-down"`) ||
		!strings.Contains(body, `<span class="state state-paused">paused</span>`) || !strings.Contains(body, `aria-current="page">Flows<`) {
		t.Fatalf("the flows page: %d, want both flows, one paused\n%s", status, body)
	}

	// The paused flow: the target's error, since when, the failures, what waits.
	st := e.flowStatus("acme", "orders-down")
	status, body = b.get("/t/acme/flows/orders-down")
	for _, want := range []string{"Paused: the target fails", "Target's last error", "Since (UTC)", "Failures in a row", "Waiting events"} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("the paused flow's page: %d, want %q\n%s", status, want, body)
		}
	}
	if errText := st.GetLastError(); !strings.Contains(body, strings.ReplaceAll(errText[:min(30, len(errText))], `"`, "&#34;")) {
		t.Errorf("the paused flow's page does not show the target's error %q\n%s", errText, body)
	}

	// The polled flow: its schedule, its last poll and cursor, a poll now.
	const page = "/t/acme/flows/orders"
	eventually(t, 30*time.Second, func() string {
		if p := e.flowStatus("acme", "orders").GetPolls(); p.GetOutcome() != "ok" || p.GetCursor() == "" {
			return fmt.Sprintf("the orders flow's polls are %v, want one done with a cursor", p)
		}
		return ""
	})
	status, body = b.get(page)
	for _, want := range []string{"every 1s", "Last poll (UTC)", "Cursor", "Poll now", "source.customer.email.lowerAscii()", `name="record"`} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("the polled flow's page: %d, want %q\n%s", status, want, body)
		}
	}
	status, body, resp := b.post(page+"/sync", url.Values{"csrf": {csrf}})
	if status != http.StatusOK || resp.Request.URL.RawQuery != "done=sync" || !strings.Contains(body, "A poll of the source was asked for") {
		t.Errorf("poll now: %d at %s, want the flow's page with a notice\n%s", status, resp.Request.URL, body)
	}

	// Try it: a new order would be created, as mapped.
	record := `{"id": 7, "number": "SO-7", "status": "paid", "total": 7.5, "customer": {"email": "Ann@Example.com"}}`
	status, body, _ = b.post(page+"/try", url.Values{"csrf": {csrf}, "record": {record}, "key": {"7"}})
	for _, want := range []string{"Key 7: would be created", `<span class="action action-created">created</span>`, "ann@example.com", "999999"} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("trying a new order: %d, want %q\n%s", status, want, body)
		}
	}
	if !strings.Contains(body, "SO-7") || !strings.Contains(body, `>{&#34;id&#34;: 7`) {
		t.Errorf("the try box does not keep the record it tried\n%s", body)
	}
	// An order the target holds, changed: an update, with the fields that change.
	eventually(t, 30*time.Second, func() string {
		if len(e.rows("orders")) != 1 {
			return "order 1 is not in the target yet"
		}
		return ""
	})
	changed := `{"id": 1, "number": "SO-1", "status": "shipped", "total": 1.5, "customer": {"email": "Buyer1@Example.com"}}`
	status, body, _ = b.post(page+"/try", url.Values{"csrf": {csrf}, "record": {changed}, "key": {"1"}})
	if status != http.StatusOK || !strings.Contains(body, "would be updated") ||
		!regexp.MustCompile(`<td data-label="Field">status</td><td class="reason" data-label="Now"><code>&#34;paid&#34;</code></td><td class="reason" data-label="New"><code>&#34;shipped&#34;</code>`).MatchString(body) {
		t.Errorf("trying a change of order 1: %d, want an update of its status\n%s", status, body)
	}
	// Bad JSON: refused next to the box, with where, the box keeping what was typed.
	status, body, _ = b.post(page+"/try", url.Values{"csrf": {csrf}, "record": {"{\n  \"number\": SO-8\n}"}})
	if status != http.StatusBadRequest || !regexp.MustCompile(`id="record-error" class="field-error">not valid JSON at line 2, column 13`).MatchString(body) ||
		!strings.Contains(body, `aria-describedby="record-error"`) || !strings.Contains(body, "SO-8") || strings.Contains(body, "would be") {
		t.Errorf("trying bad JSON: %d, want it refused next to the box with where\n%s", status, body)
	}
	// No key, where the flow takes its keys from the events: the API's refusal, next to
	// the key.
	status, body, _ = b.post(page+"/try", url.Values{"csrf": {csrf}, "record": {record}})
	if status != http.StatusBadRequest || !regexp.MustCompile(`id="key-error" class="field-error">[^<]*the flow takes its records&#39; keys from the events`).MatchString(body) {
		t.Errorf("trying with a bad key: %d, want the API's refusal next to the key\n%s", status, body)
	}

	// globex's integrator sees nothing of acme's flows, and tries nothing on them.
	g, err := e.resource.RotateToken(context.Background(), &controlplanev1.RotateTokenRequest{Tenant: "globex", Integrator: "books"})
	if err != nil {
		t.Fatal(err)
	}
	o := newBrowser(t, e.in.APIURL())
	ocsrf := o.signIn(g.Token)
	if _, body := o.get("/t/globex/flows"); !strings.Contains(body, "No flows yet") || strings.Contains(body, "orders") {
		t.Errorf("globex's flows page shows acme's flows\n%s", body)
	}
	for _, path := range []string{"/t/acme/flows", page, "/t/acme/flows/orders-down"} {
		if status, body := o.get(path); status != http.StatusForbidden || strings.Contains(body, "orders") || strings.Contains(body, "/t/acme/") {
			t.Errorf("globex's integrator on %s: %d, want refused with nothing of acme\n%s", path, status, body)
		}
	}
	for _, path := range []string{page + "/try", page + "/sync"} {
		if status, body, _ := o.post(path, url.Values{"csrf": {ocsrf}, "record": {record}, "key": {"7"}}); status != http.StatusForbidden || strings.Contains(body, "would be") {
			t.Errorf("globex's integrator posting %s: %d, want refused\n%s", path, status, body)
		}
	}
}

// TestConsoleFlowsInABrowser goes through the flows' pages in Chromium: the list, a paused
// flow, and a record tried in the polled flow's box (a good one, then bad JSON); each
// passes the accessibility checker, fits 1280 and 390 px, and is kept as a screenshot.
func TestConsoleFlowsInABrowser(t *testing.T) {
	e := startFlows(t)
	b := browsertest.New(t)
	b.Navigate(e.in.APIURL() + "/login?next=/t/acme/")
	b.Fill("Token", e.in.AdminToken())
	b.Press("\r")
	b.WaitText("Records")
	b.ClickText("Flows")
	b.WaitText("orders-down")
	b.Accessibility(t)
	b.Screenshots("console-flows")

	b.ClickText("orders-down")
	b.WaitText("Paused: the target fails")
	b.Accessibility(t)
	b.Screenshots("console-flow-paused")

	b.Navigate(e.in.APIURL() + "/t/acme/flows/orders")
	b.Fill("Source record (JSON)", `{"id": 7, "number": "SO-7", "status": "paid", "total": 7.5, "customer": {"email": "Ann@Example.com"}}`)
	b.Fill("Key (optional)", "7")
	b.ClickText("Try it")
	b.WaitText("would be created")
	b.Accessibility(t)
	b.Screenshots("console-flow-try")

	b.Fill("Source record (JSON)", `{"number": SO-8}`)
	b.ClickText("Try it")
	b.WaitText("not valid JSON at line 1, column 12")
	b.Accessibility(t)

	for _, path := range []string{"/t/acme/flows", "/t/acme/flows/orders", "/t/acme/flows/orders-down"} {
		b.Navigate(e.in.APIURL() + path)
		for _, width := range []int{390, 1280} {
			b.Viewport(width, 800)
			if b.Bool(`document.documentElement.scrollWidth > document.documentElement.clientWidth`) {
				t.Errorf("%s scrolls sideways at %d px", path, width)
			}
		}
	}
}
