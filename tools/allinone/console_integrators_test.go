package allinone_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/browsertest"
	"github.com/syncline/syncline/pkg/ingest"
)

var tokenValue = regexp.MustCompile(`id="token-value">([^<]+)<`)

// signIn signs b in with token and returns the page's CSRF token.
func (b *browser) signIn(token string) string {
	b.t.Helper()
	status, body, _ := b.post("/login", url.Values{"token": {token}, "next": {"/"}})
	m := csrfField.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		b.t.Fatalf("signing in: %d, want a page with a CSRF token\n%s", status, body)
	}
	return m[1]
}

// TestConsoleIntegrators: the integrators' pages list a tenant's integrators and show one
// with its stage, its services and its flows; the stage changes (holding the flows) within
// the API's rules, whose refusal is shown next to the stage; a rotated token is shown once,
// on the page that answers, and the old one no longer signs in; a revoked one neither; and
// another tenant's integrator token sees nothing of them.
func TestConsoleIntegrators(t *testing.T) {
	ctx := context.Background()
	e := start(t, options{dir: t.TempDir(), driver: "sqlite"})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyOrders("acme", "orders", resourceOf(t, "Integrator", "acme", "old", map[string]any{}))
	e.dsn = tenantFile(t, e.dir, "globex", "erp.db")
	e.applyOrders("globex", "orders")
	if _, err := e.resource.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Integrator", Tenant: "acme", Name: "old"}); err != nil {
		t.Fatal(err)
	}
	first, err := e.resource.RotateToken(ctx, &controlplanev1.RotateTokenRequest{Tenant: "acme", Integrator: "shop-to-erp"})
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, e.in.APIURL())
	csrf := b.signIn(e.in.AdminToken())
	status, body := b.get("/t/acme/integrators")
	if status != http.StatusOK || !strings.Contains(body, `href="/t/acme/integrators/shop-to-erp"`) || !strings.Contains(body, ">deleted<") ||
		!strings.Contains(body, `aria-current="page">Integrators<`) {
		t.Fatalf("the integrators page: %d, want shop-to-erp linked, old deleted, and the page current in the nav\n%s", status, body)
	}
	const page = "/t/acme/integrators/shop-to-erp"
	status, body = b.get(page)
	for _, want := range []string{
		`<option value="active" selected>`,
		// Its services: vouchers and payments always, its orders with the flow.
		`<td data-label="Service">vouchers</td>`, "not set up: apply a flow of entity invoice",
		`<td data-label="Service">payments</td>`, "not set up: apply a flow of entity payment",
		`<td data-label="Service">orders</td>`, `href="/t/acme/flows/orders"`,
		`<td data-label="Duplicates">update</td>`,
	} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("the integrator's page: %d, want %q in it\n%s", status, want, body)
		}
	}
	if tokenValue.MatchString(body) {
		t.Fatalf("the integrator's page shows a token before any was rotated\n%s", body)
	}

	// Rotate: the new token on the page that answers, this once, in no URL.
	status, body, resp := b.post(page+"/token", url.Values{"csrf": {csrf}})
	m := tokenValue.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || !strings.Contains(body, "will not be shown again") {
		t.Fatalf("rotating: %d, want the new token with the note that it is shown once\n%s", status, body)
	}
	token := m[1]
	if resp.Request.URL.Path != page+"/token" || strings.Contains(resp.Request.URL.String(), token) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the token is answered at %s with Cache-Control %q: want it on the POST's own answer, kept by no cache", resp.Request.URL, resp.Header.Get("Cache-Control"))
	}
	if _, body := b.get(page); strings.Contains(body, token) || tokenValue.MatchString(body) {
		t.Errorf("reloading the integrator's page shows the token again\n%s", body)
	}
	if status, body, _ := newBrowser(t, e.in.APIURL()).post("/login", url.Values{"token": {first.Token}}); status != http.StatusUnauthorized {
		t.Errorf("the old token signs in after rotating: %d\n%s", status, body)
	}
	i := newBrowser(t, e.in.APIURL())
	i.signIn(token)
	if status, body := i.get("/t/acme/integrators"); status != http.StatusOK || !strings.Contains(body, "shop-to-erp") {
		t.Errorf("the new token does not show acme's integrators: %d\n%s", status, body)
	}

	// The stage: inactive holds the flow's events; a deleted integrator stays deleted.
	status, body, resp = b.post(page+"/stage", url.Values{"csrf": {csrf}, "stage": {"inactive"}})
	if status != http.StatusOK || resp.Request.URL.RawQuery != "done=stage" || !strings.Contains(body, "The stage was changed") ||
		!strings.Contains(body, `<option value="inactive" selected>`) {
		t.Fatalf("making it inactive: %d at %s, want the page with the new stage and a notice\n%s", status, resp.Request.URL, body)
	}
	got, err := e.resource.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Integrator", Tenant: "acme", Name: "shop-to-erp"})
	if err != nil || got.Resource.GetSpec().GetFields()["stage"].GetStringValue() != "inactive" {
		t.Fatalf("after the stage form the integrator is %v (%v), want inactive", got.GetResource().GetSpec(), err)
	}
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1001", Version: 1, Payload: order(1001, "paid")})
	eventually(t, 30*time.Second, func() string {
		if _, body := b.get(page); !strings.Contains(body, `<span class="state state-held">held</span>`) || !strings.Contains(body, `<td data-label="Waiting">1</td>`) {
			return "the integrator's page does not show its flow held with 1 waiting"
		}
		return ""
	})
	if status, body, _ := b.post(page+"/stage", url.Values{"csrf": {csrf}, "stage": {"active"}}); status != http.StatusOK || !strings.Contains(body, `<option value="active" selected>`) {
		t.Fatalf("making it active again: %d\n%s", status, body)
	}
	e.waitCreatedOnly(1)
	status, body, _ = b.post("/t/acme/integrators/old/stage", url.Values{"csrf": {csrf}, "stage": {"active"}})
	if status != http.StatusBadRequest || !regexp.MustCompile(`id="stage-error" class="field-error">[^<]*deleted, which is final`).MatchString(body) ||
		!strings.Contains(body, `aria-describedby="stage-error"`) {
		t.Errorf("activating a deleted integrator: %d, want the API's refusal next to the stage\n%s", status, body)
	}
	if status, body, _ := b.post(page+"/stage", url.Values{"csrf": {csrf}, "stage": {"deleted"}}); status != http.StatusBadRequest || !strings.Contains(body, `id="stage-error"`) {
		t.Errorf("the stage form with stage deleted: %d, want it refused next to the stage\n%s", status, body)
	}

	// Another tenant's integrator sees nothing of acme's integrators, and changes nothing.
	g, err := e.resource.RotateToken(ctx, &controlplanev1.RotateTokenRequest{Tenant: "globex", Integrator: "shop-to-erp"})
	if err != nil {
		t.Fatal(err)
	}
	o := newBrowser(t, e.in.APIURL())
	ocsrf := o.signIn(g.Token)
	for _, path := range []string{"/t/acme/integrators", page, "/t/acme/integrators/old"} {
		if status, body := o.get(path); status != http.StatusForbidden || strings.Contains(body, "/t/acme/") || strings.Contains(body, "old") {
			t.Errorf("globex's integrator on %s: %d, want refused with nothing of acme\n%s", path, status, body)
		}
	}
	for _, path := range []string{page + "/token", page + "/revoke", page + "/stage"} {
		if status, body, _ := o.post(path, url.Values{"csrf": {ocsrf}, "confirm": {"yes"}, "stage": {"inactive"}}); status != http.StatusForbidden || tokenValue.MatchString(body) {
			t.Errorf("globex's integrator posting %s: %d, want refused\n%s", path, status, body)
		}
	}
	if _, body := i.get("/t/acme/integrators"); !strings.Contains(body, "shop-to-erp") {
		t.Errorf("acme's token stopped working after globex's integrator posted to acme's forms\n%s", body)
	}

	// Revoke: only when confirmed; then the token no longer signs in.
	if status, body, _ := b.post(page+"/revoke", url.Values{"csrf": {csrf}}); status != http.StatusBadRequest || !strings.Contains(body, `id="confirm-error"`) {
		t.Errorf("revoking unconfirmed: %d, want it refused next to the box\n%s", status, body)
	}
	if status, body := i.get("/t/acme/integrators"); status != http.StatusOK {
		t.Fatalf("the token stopped working without a confirmed revoke: %d\n%s", status, body)
	}
	status, body, resp = b.post(page+"/revoke", url.Values{"csrf": {csrf}, "confirm": {"yes"}})
	if status != http.StatusOK || resp.Request.URL.RawQuery != "done=revoked" || !strings.Contains(body, "The token was revoked") {
		t.Fatalf("revoking: %d at %s\n%s", status, resp.Request.URL, body)
	}
	if status, _, _ := newBrowser(t, e.in.APIURL()).post("/login", url.Values{"token": {token}}); status != http.StatusUnauthorized {
		t.Errorf("the revoked token signs in: %d", status)
	}

	// An integrator rotating its own token: the page shows the new one, and the session,
	// signed in with the old one, ends.
	r := newBrowser(t, e.in.APIURL())
	rcsrf := r.signIn(g.Token)
	status, body, _ = r.post("/t/globex/integrators/shop-to-erp/token", url.Values{"csrf": {rcsrf}})
	m = tokenValue.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || !strings.Contains(body, "you are signed out") {
		t.Fatalf("an integrator rotating its own token: %d, want the new token and that it is signed out\n%s", status, body)
	}
	if _, body := r.get("/t/globex/"); !strings.Contains(body, `name="token"`) {
		t.Errorf("after rotating its own token the session goes on\n%s", body)
	}
	newBrowser(t, e.in.APIURL()).signIn(m[1])
}

// TestConsoleIntegratorsInABrowser goes through the integrators' pages in Chromium: the
// list, one integrator, its stage changed and its token rotated with the keyboard and the
// mouse; each passes the accessibility checker, fits 1280 and 390 px, and is kept as a
// screenshot.
func TestConsoleIntegratorsInABrowser(t *testing.T) {
	e := start(t, options{dir: t.TempDir(), driver: "sqlite"})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyOrders("acme", "orders", resourceOf(t, "Flow", "acme", "invoices", map[string]any{
		"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "invoice",
		"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number"}, "exclude": []any{"*"}}}))

	b := browsertest.New(t)
	b.Navigate(e.in.APIURL() + "/login?next=/t/acme/")
	b.Fill("Token", e.in.AdminToken())
	b.Press("\r")
	b.WaitText("Records")
	b.ClickText("Integrators")
	b.WaitText("shop-to-erp")
	b.Accessibility(t)
	b.Screenshots("console-integrators")

	b.ClickText("shop-to-erp")
	b.WaitText("Services")
	if got := b.Text("main"); !strings.Contains(got, "vouchers") || !strings.Contains(got, "invoices") {
		t.Errorf("the integrator's page does not show its vouchers made by the invoices flow: %s", got)
	}
	b.Accessibility(t)
	b.Screenshots("console-integrator")

	b.Fill("Stage", "inactive")
	b.ClickText("Change the stage")
	b.WaitText("The stage was changed")
	b.Accessibility(t)

	b.ClickText("Revoke token")
	b.WaitText("tick the box to confirm")
	b.Accessibility(t)

	b.ClickText("Rotate token")
	b.WaitText("will not be shown again")
	if got := b.Text("#token-value"); !strings.HasPrefix(got, auth.IntegratorPrefix) {
		t.Errorf("the new token shown is %q, want an integrator token", got)
	}
	b.Accessibility(t)

	for _, path := range []string{"/t/acme/integrators", "/t/acme/integrators/shop-to-erp"} {
		b.Navigate(e.in.APIURL() + path)
		for _, width := range []int{390, 1280} {
			b.Viewport(width, 800)
			if b.Bool(`document.documentElement.scrollWidth > document.documentElement.clientWidth`) {
				t.Errorf("%s scrolls sideways at %d px", path, width)
			}
		}
	}
}
