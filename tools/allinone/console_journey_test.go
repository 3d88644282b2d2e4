package allinone_test

import (
	"context"
	"strings"
	"testing"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/browsertest"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestConsoleJourney is the console's whole story in one browser: sign in, add the shop and
// the ERP as endpoints, try to rename one (refused), apply a flow between them, publish an
// order the flow cannot map and watch it arrive in the API log as a failure, open its dead
// letter, fix the record and replay it, see the order created, and rotate the integrator's
// token; then acme's integrator, signed in with that token, finds nothing of globex.
func TestConsoleJourney(t *testing.T) {
	e := start(t, options{dir: t.TempDir(), driver: "sqlite"})
	e.dsn = tenantFile(t, e.dir, "globex", "erp.db")
	e.applyOrders("globex", "orders")
	e.publish(ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "G-7", Version: 1, Payload: order(7, "paid")})
	if _, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "shop-to-erp", map[string]any{}),
	}}); err != nil {
		t.Fatal(err)
	}

	b := browsertest.New(t)
	b.Navigate(e.in.APIURL() + "/")
	b.Fill("Token", e.in.AdminToken())
	b.Press("\r")
	b.WaitText("Tenants")
	b.ClickText("acme")
	b.WaitText("Flows paused")

	// The endpoints: the shop publishes its orders, the ERP is a table.
	b.ClickText("Endpoints")
	b.WaitText("Add an endpoint")
	b.Fill("Name", "shop")
	b.Fill("Type", "nats (source)")
	b.Fill("Description", "The webshop")
	b.ClickText("Add endpoint")
	b.WaitText("Endpoint shop added.")
	b.Fill("Name", "erp")
	b.Fill("Type", "sql (target)")
	b.Fill("Description", "The ERP's orders")
	b.Fill("Settings", "driver: sqlite\ndsn: erp.db\ntable: orders\ncreate_table: true\n")
	b.ClickText("Add endpoint")
	b.WaitText("Endpoint erp added.")
	// A rename, made by changing the read-only name in the page, is refused.
	b.ClickText("erp")
	b.WaitText("Test connection")
	b.Bool(`(() => { const n = document.getElementById("name"); n.readOnly = false; n.value = "erp2"; return true })()`)
	b.ClickText("Save")
	b.WaitText("immutable")
	b.Accessibility(t)

	// The flow, applied as `syncline apply` does.
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	if _, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Flow", "acme", "orders", map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "erp",
			"entity": "order", "duplicates": "update", "mapping": map[string]any{"fields": map[string]any{
				"order_number": "source.number", "total": "double(source.total)", "status": "source.status",
				"customer_email": "source.customer.email.lowerAscii()"}, "defaults": map[string]any{"employee_number": 999999}}}),
	}}); err != nil {
		t.Fatal(err)
	}

	// An order the flow cannot map arrives in the open API log, as a failure.
	b.ClickText("API log")
	b.WaitText("No records match")
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "J1", Version: 1, Payload: unmappable(1)})
	b.WaitText("J1")
	if got := b.Text("table"); !strings.Contains(got, "failure") {
		t.Fatalf("the API log shows J1 as %s, want a failure", got)
	}

	// Its dead letter, fixed and replayed.
	b.ClickText("Dead letters")
	b.WaitText("J1")
	b.ClickText("J1")
	b.WaitText("Show the record")
	b.ClickText("Show the record")
	b.WaitText("Save the corrected record")
	b.Fill("Record (JSON)", corrected(1))
	b.ClickText("Save the corrected record")
	b.WaitText("The corrected record is saved")
	b.ClickText("Replay")
	b.WaitText("Replay this dead letter?")
	b.ClickText("Yes, replay it")
	b.WaitText("Its new event is")
	b.ClickText("API log of J1")
	b.WaitText("created")
	if rows := e.rowsOf("acme", "orders"); rows["J1"].orderNumber != "SO-1" {
		t.Fatalf("after the replay the ERP holds %+v for J1, want order SO-1", rows["J1"])
	}

	// The integrator's token, rotated and shown once.
	b.ClickText("Integrators")
	b.WaitText("shop-to-erp")
	b.ClickText("shop-to-erp")
	b.WaitText("Services")
	b.ClickText("Rotate token")
	b.WaitText("will not be shown again")
	token := strings.TrimSpace(b.Text("#token-value"))
	b.Accessibility(t)

	// Signed in with it, acme's integrator sees acme, and nothing of globex: no link, no page,
	// no record.
	i := browsertest.New(t)
	i.Navigate(e.in.APIURL() + "/")
	i.Fill("Token", token)
	i.Press("\r")
	i.WaitText("Flows paused")
	if i.Bool(`document.body.innerHTML.includes("globex")`) {
		t.Errorf("acme's integrator's dashboard names globex")
	}
	for _, path := range []string{"/t/globex/", "/t/globex/logs?remote_id=G-7", "/t/globex/endpoints", "/t/globex/flows/orders", "/t/globex/deadletters", "/t/globex/reports", "/t/globex/integrators"} {
		if status := i.NavigateStatus(e.in.APIURL() + path); status != 403 {
			t.Errorf("acme's integrator on %s: %d, want 403", path, status)
		}
		if i.Bool(`document.body.innerText.includes("G-7") || document.querySelector('a[href*="/t/globex"]') !== null`) {
			t.Errorf("acme's integrator's page %s shows globex's record or links into globex", path)
		}
	}
}
