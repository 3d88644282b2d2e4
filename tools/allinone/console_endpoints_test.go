package allinone_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/browsertest"
)

// endpointSecret is the credential the tests give an endpoint: no page may show it.
const endpointSecret = "tok-5ecret-never-shown-8c1f"

// crmSettings are a REST endpoint's settings whose API does not answer (downTarget).
const crmSettings = `{"base_url": "http://` + downTarget + `", "auth": "bearer", "entities": {"customer": {"path": "/customers"}}}`

// invoicesSettings are a SQLite target's, in the tenant's folder.
const invoicesSettings = "driver: sqlite\ndsn: invoices.db\ntable: invoices\ncreate_table: true\n"

var uidField = regexp.MustCompile(`name="uid" value="([^"]*)"`)

// signIn signs b in with token and returns the CSRF token of the page it lands on.
func signIn(t *testing.T, b *browser, token, next string) (string, string) {
	t.Helper()
	status, body, _ := b.post("/login", url.Values{"token": {token}, "next": {next}})
	m := csrfField.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("signing in to %s: %d, want the page with a CSRF token\n%s", next, status, body)
	}
	return m[1], body
}

// fieldError is the error a page shows next to its control id, "" if none.
func fieldError(body, id string) string {
	m := regexp.MustCompile(`<p id="` + id + `-error" class="field-error">([^<]*)</p>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TestConsoleEndpoints: the endpoints page lists a tenant's endpoints with what uses them,
// adds one through the API (its refusals shown next to the field they name), edits the
// description and settings with the name read-only (a rename is refused by the API and
// shown), keeps credentials write-only, refuses to delete an endpoint flows use naming them,
// tests a connection, and shows another tenant's integrator nothing.
func TestConsoleEndpoints(t *testing.T) {
	e := start(t, options{dir: t.TempDir(), driver: "sqlite"})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyOrders("acme", "orders")
	e.dsn = tenantFile(t, e.dir, "globex", "erp.db")
	e.applyOrders("globex", "orders", resourceOf(t, "Endpoint", "globex", "archive", map[string]any{
		"type": "sql", "description": "globex-archive-db", "settings": map[string]any{"driver": "sqlite", "dsn": "archive.db", "table": "archive"}}))
	ctx := context.Background()

	b := newBrowser(t, e.in.APIURL())
	csrf, body := signIn(t, b, e.in.AdminToken(), "/t/acme/endpoints")
	for _, want := range []string{`href="/t/acme/endpoints/erp"`, "ERP orders", `data-label="Used by">orders<`, "writes any entity", "publishes its own changes", `<option value="sql">sql (target)</option>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the endpoints page lacks %q\n%s", want, body)
		}
	}
	if strings.Contains(body, "globex") {
		t.Errorf("acme's endpoints page names globex\n%s", body)
	}

	// Adding: the API's refusal is next to the field it names, the input is kept, the
	// credentials are not shown back.
	add := func(name, typ, description, settings, credentials string) (int, string, *http.Response) {
		return b.post("/t/acme/endpoints", url.Values{"csrf": {csrf}, "name": {name}, "type": {typ}, "description": {description},
			"settings": {settings}, "credentials": {credentials}})
	}
	status, body, _ := add("invoices", "sql", "Invoices table", "driver: sqlite\ndsn: invoices.db\n", "")
	if msg := fieldError(body, "settings"); status != http.StatusBadRequest || !strings.Contains(msg, "table") {
		t.Errorf("settings without a table: %d, settings error %q, want the API's refusal naming table next to the settings\n%s", status, msg, body)
	}
	if !strings.Contains(body, `value="Invoices table"`) || !strings.Contains(body, "dsn: invoices.db") {
		t.Errorf("a refused form does not keep what was typed\n%s", body)
	}
	status, body, _ = add("invoices", "sql", "", invoicesSettings, "")
	if msg := fieldError(body, "description"); status != http.StatusBadRequest || msg == "" {
		t.Errorf("no description: %d, description error %q, want it refused next to the description", status, msg)
	}
	status, body, _ = add("invoices", "sql", "Invoices", "driver: [sqlite", "")
	if msg := fieldError(body, "settings"); status != http.StatusBadRequest || !strings.Contains(msg, "neither YAML nor JSON") {
		t.Errorf("settings that are not YAML: %d, settings error %q", status, msg)
	}
	status, body, _ = add("crm", "rest", "CRM", crmSettings, "token "+endpointSecret)
	if msg := fieldError(body, "credentials"); status != http.StatusBadRequest || !strings.Contains(msg, "name=value") || strings.Contains(body, endpointSecret) {
		t.Errorf("a credentials line without =: %d, credentials error %q, want it refused without showing the line", status, msg)
	}
	status, body, _ = add("crm", "rest", "CRM", crmSettings, "tokn="+endpointSecret)
	if msg := fieldError(body, "credentials"); status != http.StatusBadRequest || !strings.Contains(msg, "tokn") || strings.Contains(body, endpointSecret) {
		t.Errorf("an unknown credential: %d, credentials error %q, want the API's refusal without the value", status, msg)
	}
	status, body, _ = add("erp", "sql", "again", invoicesSettings, "")
	if msg := fieldError(body, "name"); status != http.StatusConflict || !strings.Contains(msg, "exists") {
		t.Errorf("adding a name that exists: %d, name error %q, want it refused", status, msg)
	}
	status, body, _ = add("invoices", "sql", "Invoices table", invoicesSettings, "")
	if status != http.StatusOK || !strings.Contains(body, "Endpoint invoices added.") || !strings.Contains(body, `href="/t/acme/endpoints/invoices"`) {
		t.Fatalf("adding a SQLite target: %d, want the grid with it\n%s", status, body)
	}
	status, body, _ = add("crm", "rest", "CRM", crmSettings, "token="+endpointSecret)
	if status != http.StatusOK || !strings.Contains(body, "Endpoint crm added.") {
		t.Fatalf("adding a REST target with a credential: %d\n%s", status, body)
	}

	// Editing: the description changes, the name cannot, the credentials stay.
	status, body = b.get("/t/acme/endpoints/crm")
	m := uidField.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || !strings.Contains(body, `<code>token</code>`) || !strings.Contains(body, `name="name" value="crm" readonly`) {
		t.Fatalf("crm's page: %d, want its form with the uid, the read-only name and the stored credential's name\n%s", status, body)
	}
	crmUID := m[1]
	status, body, _ = b.post("/t/acme/endpoints/crm", url.Values{"csrf": {csrf}, "name": {"crm"}, "uid": {crmUID},
		"description": {"CRM of the sales team"}, "settings": {crmSettings}, "credentials": {""}})
	if status != http.StatusOK || !strings.Contains(body, "Endpoint crm saved.") || !strings.Contains(body, `value="CRM of the sales team"`) {
		t.Fatalf("editing crm's description: %d\n%s", status, body)
	}
	got, err := e.resource.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: "acme", Name: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	if creds := got.Resource.Spec.Fields["credentials"].GetStructValue().GetFields(); creds["token"].GetStringValue() != "(secret)" {
		t.Errorf("an edit without credentials dropped the stored ones: credentials %v", creds)
	}

	status, body = b.get("/t/acme/endpoints/erp")
	m = uidField.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || !strings.Contains(body, "dsn: (secret)") {
		t.Fatalf("erp's page: %d, want its settings with the DSN hidden\n%s", status, body)
	}
	erp := url.Values{"csrf": {csrf}, "name": {"erp"}, "uid": {m[1]}, "description": {"ERP orders, new"},
		"settings": {"driver: sqlite\ndsn: (secret)\ntable: orders\ncreate_table: true\n"}}
	status, body, _ = b.post("/t/acme/endpoints/erp", erp)
	if status != http.StatusOK || !strings.Contains(body, "Endpoint erp saved.") {
		t.Fatalf("editing erp: %d\n%s", status, body)
	}
	// A crafted form that renames it: the API refuses, and the page says so by the name.
	erp.Set("name", "erp2")
	status, body, _ = b.post("/t/acme/endpoints/erp", erp)
	if msg := fieldError(body, "name"); status != http.StatusBadRequest || !strings.Contains(msg, "immutable") {
		t.Errorf("a rename: %d, name error %q, want the API's refusal next to the name\n%s", status, msg, body)
	}
	if _, err := e.resource.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: "acme", Name: "erp2"}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("after a refused rename, erp2: %v, want not found", err)
	}
	erp.Set("name", "erp")
	erp.Del("uid")
	if status, body, _ := b.post("/t/acme/endpoints/erp", erp); status != http.StatusBadRequest || fieldError(body, "name") == "" {
		t.Errorf("an edit without the uid: %d, want it refused", status)
	}

	if status, body := b.get("/t/acme/endpoints/nope"); status != http.StatusNotFound || strings.Contains(body, `name="uid"`) {
		t.Errorf("an endpoint that does not exist: %d, want 404 without a form\n%s", status, body)
	}

	// Test connection: the SQLite target answers, the REST API does not, a NATS source has
	// nothing to connect to; each says so.
	for _, c := range []struct{ name, want string }{
		{"erp", "Connected"}, {"crm", "Failed"}, {"shop", "publishes its own events"},
	} {
		status, body, _ := b.post("/t/acme/endpoints/"+c.name+"/test", url.Values{"csrf": {csrf}})
		if status != http.StatusOK || !strings.Contains(body, c.want) || !strings.Contains(body, `class="test test-`) {
			t.Errorf("testing %s: %d, want %q\n%s", c.name, status, c.want, body)
		}
	}
	if _, body, _ := b.post("/t/acme/endpoints/erp/test", url.Values{"csrf": {csrf}}); !strings.Contains(body, "It serves:") {
		t.Errorf("erp's test does not say what it serves\n%s", body)
	}

	// Deleting: confirmed; one in use is refused naming its flow.
	if status, body := b.get("/t/acme/endpoints/erp/delete"); status != http.StatusOK || !strings.Contains(body, "Flows use it (orders)") {
		t.Errorf("erp's delete confirmation: %d, want it to name the flow\n%s", status, body)
	}
	status, body, _ = b.post("/t/acme/endpoints/erp/delete", url.Values{"csrf": {csrf}})
	if status != http.StatusBadRequest || !strings.Contains(body, "flows use it: &#34;orders&#34;") {
		t.Errorf("deleting erp, which flow orders uses: %d, want the API's refusal naming it\n%s", status, body)
	}
	if status, _, _ := b.post("/t/acme/endpoints/invoices/delete", url.Values{}); status != http.StatusForbidden {
		t.Errorf("a delete without the CSRF token: %d, want 403", status)
	}
	status, body, _ = b.post("/t/acme/endpoints/invoices/delete", url.Values{"csrf": {csrf}})
	if status != http.StatusOK || !strings.Contains(body, "Endpoint invoices deleted.") || strings.Contains(body, `href="/t/acme/endpoints/invoices"`) {
		t.Errorf("deleting invoices: %d, want the grid without it\n%s", status, body)
	}

	// No page shows the credential.
	for _, path := range []string{"/t/acme/endpoints", "/t/acme/endpoints/crm", "/t/acme/endpoints/crm/delete"} {
		if _, body := b.get(path); strings.Contains(body, endpointSecret) {
			t.Errorf("%s shows the credential", path)
		}
	}

	// An integrator of acme sees acme's endpoints and nothing of globex's, and changes none.
	rot, err := e.resource.RotateToken(ctx, &controlplanev1.RotateTokenRequest{Tenant: "acme", Integrator: "shop-to-erp"})
	if err != nil {
		t.Fatal(err)
	}
	i := newBrowser(t, e.in.APIURL())
	icsrf, body := signIn(t, i, rot.Token, "/t/acme/endpoints")
	if !strings.Contains(body, "CRM of the sales team") || strings.Contains(body, "globex") {
		t.Errorf("acme's integrator on acme's endpoints: want crm and no word of globex\n%s", body)
	}
	for _, path := range []string{"/t/globex/endpoints", "/t/globex/endpoints/archive", "/t/globex/endpoints/archive/delete"} {
		if status, body := i.get(path); status != http.StatusForbidden || strings.Contains(body, "globex-archive-db") || strings.Contains(body, "archive.db") {
			t.Errorf("acme's integrator on %s: %d, want refused with nothing of globex\n%s", path, status, body)
		}
	}
	for path, form := range map[string]url.Values{
		"/t/globex/endpoints":                {"csrf": {icsrf}, "name": {"sneaky"}, "type": {"sql"}, "description": {"x"}, "settings": {invoicesSettings}},
		"/t/globex/endpoints/archive":        {"csrf": {icsrf}, "name": {"archive"}, "uid": {"x"}, "description": {"changed"}, "settings": {invoicesSettings}},
		"/t/globex/endpoints/archive/delete": {"csrf": {icsrf}},
		"/t/globex/endpoints/archive/test":   {"csrf": {icsrf}},
	} {
		if status, body, _ := i.post(path, form); status != http.StatusForbidden || strings.Contains(body, "globex-archive-db") {
			t.Errorf("acme's integrator posting to %s: %d, want refused", path, status)
		}
	}
	list, err := e.resource.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Endpoint", Tenant: "globex"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list.Resources {
		names = append(names, r.Metadata.Name+": "+r.Spec.Fields["description"].GetStringValue())
	}
	if strings.Join(names, ", ") != "archive: globex-archive-db, erp: ERP orders, shop: webshop" {
		t.Errorf("globex's endpoints after acme's integrator tried: %v", names)
	}
}

// TestConsoleEndpointsInABrowser goes through the endpoints page in Chromium: add a SQLite
// target (first refused, the API's reason by the settings), see it in the grid, edit its
// description, a rename refused, test the connection, a delete of an endpoint in use refused
// naming its flow, a credential that no page holds; every page passes axe-core and fits 1280
// and 390 px.
func TestConsoleEndpointsInABrowser(t *testing.T) {
	e := start(t, options{dir: t.TempDir(), driver: "sqlite"})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyOrders("acme", "orders")

	b := browsertest.New(t)
	b.Navigate(e.in.APIURL() + "/login?next=/t/acme/endpoints")
	b.Fill("Token", e.in.AdminToken())
	b.Press("\r")
	b.WaitText("Add an endpoint")
	if got := b.Title(); !strings.HasPrefix(got, "Endpoints") {
		t.Fatalf("after signing in the page is %q, want the endpoints page", got)
	}
	b.Accessibility(t)

	// Added without a table: the API refuses, and says so by the settings.
	b.Fill("Name", "invoices")
	b.Fill("Type", "sql (target)")
	b.Fill("Description", "Invoices table")
	b.Fill("Settings", "driver: sqlite\ndsn: erp.db\n")
	b.ClickText("Add endpoint")
	b.WaitText("settings.table")
	if !strings.Contains(b.Text("#settings-error"), "table") || b.Value("Name") != "invoices" {
		t.Errorf("a refused add: settings error %q, name %q; want the refusal by the settings and the input kept", b.Text("#settings-error"), b.Value("Name"))
	}
	b.Accessibility(t)
	b.Fill("Settings", "driver: sqlite\ndsn: erp.db\ntable: invoices\ncreate_table: true\n")
	b.ClickText("Add endpoint")
	b.WaitText("Endpoint invoices added.")
	if grid := b.Text("table"); !strings.Contains(grid, "Invoices table") || !strings.Contains(grid, "orders") {
		t.Errorf("the grid after adding invoices: %s", grid)
	}
	// A REST target with a credential, which no page shows again.
	b.Fill("Name", "crm")
	b.Fill("Type", "rest (target)")
	b.Fill("Description", "CRM")
	b.Fill("Settings", crmSettings)
	b.Fill("Credentials", "token="+endpointSecret)
	b.ClickText("Add endpoint")
	b.WaitText("Endpoint crm added.")
	b.Accessibility(t)
	b.Screenshots("console-endpoints")
	noSecret := `!document.documentElement.outerHTML.includes("` + endpointSecret + `")`
	if !b.Bool(noSecret) {
		t.Errorf("the endpoints page holds the credential")
	}

	// Edit the description; the name is read-only.
	b.ClickText("invoices")
	b.WaitText("Test connection")
	b.Fill("Description", "Invoices, from the ERP")
	b.ClickText("Save")
	b.WaitText("Endpoint invoices saved.")
	if got := b.Value("Description"); got != "Invoices, from the ERP" {
		t.Errorf("the description after saving: %q", got)
	}
	if !b.Bool(`document.getElementById("name").readOnly`) {
		t.Errorf("the name can be edited")
	}
	b.ClickText("Test connection")
	b.WaitText("Connected")
	if got := b.Text(".test"); !strings.Contains(got, "It serves:") {
		t.Errorf("the test's outcome: %s", got)
	}
	b.Accessibility(t)
	b.Screenshots("console-endpoint")

	// A form sent with another name (made writable and changed in the page) is a rename the
	// API refuses; the page says so by the name.
	b.Bool(`(() => { const n = document.getElementById("name"); n.readOnly = false; n.value = "invoices2"; return true })()`)
	b.ClickText("Save")
	b.WaitText("immutable")
	if got := b.Value("Name"); got != "invoices" {
		t.Errorf("after a refused rename the name shows %q", got)
	}
	b.Accessibility(t)

	// The credential is on no page of crm's.
	b.Navigate(e.in.APIURL() + "/t/acme/endpoints/crm")
	b.WaitText("Stored (never shown)")
	if !b.Bool(noSecret) {
		t.Errorf("crm's page holds the credential")
	}
	b.ClickText("Test connection")
	b.WaitText("Failed")

	// erp is used by flow orders: the delete is confirmed, then refused naming it.
	b.Navigate(e.in.APIURL() + "/t/acme/endpoints/erp")
	b.ClickText("Delete this endpoint…")
	b.WaitText("Flows use it (orders)")
	b.Accessibility(t)
	b.ClickText("Delete endpoint")
	b.WaitText(`flows use it: "orders"`)
	b.Accessibility(t)
	b.Navigate(e.in.APIURL() + "/t/acme/endpoints/invoices/delete")
	b.ClickText("Delete endpoint")
	b.WaitText("Endpoint invoices deleted.")

	for _, path := range []string{"/t/acme/endpoints", "/t/acme/endpoints/crm", "/t/acme/endpoints/erp/delete"} {
		b.Navigate(e.in.APIURL() + path)
		for _, width := range []int{390, 1280} {
			b.Viewport(width, 800)
			if b.Bool(`document.documentElement.scrollWidth > document.documentElement.clientWidth`) {
				t.Errorf("%s scrolls sideways at %d px", path, width)
			}
		}
	}
}
