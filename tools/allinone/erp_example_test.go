package allinone_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	"github.com/syncline/syncline/connectors/tryton/trytontest"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/entity"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/resourcefile"
)

// erpExample is the folder of make demo-erp's webshop and resources.
const erpExample = "../../examples/erp"

// The addresses examples/erp/shop-to-erp.yaml holds, which tools/scripts/demo-erp.sh
// replaces with those of the json-server and the Tryton it starts.
const (
	exampleShopURL   = "http://127.0.0.1:3000"
	exampleTrytonURL = "http://127.0.0.1:8000"
)

// erpStages are the flows of the example in the order demo-erp.sh applies them, each stage
// once the API log has the outcomes of the one before: a stock level needs its product in
// Tryton, an order its customer and products. The first stage also has every resource that
// is not a flow.
var erpStages = [][]string{{"categories"}, {"products"}, {"stock", "customers"}, {"orders"}}

// collectionOf is the shop's collection each flow of the example reads.
var collectionOf = map[string]string{
	"categories": "categories", "products": "products", "stock": "stock", "customers": "customers", "orders": "orders",
}

// exampleShop reads examples/erp/shop.json: the webshop's collections.
func exampleShop(t *testing.T) map[string][]map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(erpExample, "shop.json"))
	if err != nil {
		t.Fatal(err)
	}
	var db map[string][]map[string]any
	if err := json.Unmarshal(data, &db); err != nil {
		t.Fatalf("examples/erp/shop.json: %v", err)
	}
	return db
}

// exampleResources loads examples/erp/shop-to-erp.yaml and orders.yaml as `syncline apply -f`
// does, with the shop's and Tryton's addresses (and Tryton's database) written in where the
// demo script writes them, and returns them in the order of the files.
func exampleResources(t *testing.T, shopURL, trytonURL, database string) []*controlplanev1.Resource {
	t.Helper()
	var out []*controlplanev1.Resource
	for _, f := range []string{"shop-to-erp.yaml", "orders.yaml"} {
		rs, err := resourcefile.Load(filepath.Join(erpExample, f))
		if err != nil {
			t.Fatalf("loading examples/erp/%s: %v", f, err)
		}
		out = append(out, rs...)
	}
	set := func(r *controlplanev1.Resource, key, want, value string) {
		settings := r.GetSpec().GetFields()["settings"].GetStructValue()
		if got := settings.GetFields()[key].GetStringValue(); got != want {
			t.Fatalf("endpoint %s has settings.%s %q, where demo-erp.sh expects %q to replace", r.Metadata.Name, key, got, want)
		}
		settings.Fields[key] = structpb.NewStringValue(value)
	}
	var shop, erp bool
	for _, r := range out {
		if r.Kind != "Endpoint" {
			continue
		}
		switch r.Metadata.Name {
		case "shop":
			set(r, "base_url", exampleShopURL, shopURL)
			shop = true
		case "erp":
			set(r, "url", exampleTrytonURL, trytonURL)
			set(r, "database", "erp", database)
			erp = true
		}
	}
	if !shop || !erp {
		t.Fatalf("examples/erp has no endpoint shop or erp (shop %v, erp %v)", shop, erp)
	}
	return out
}

// stageOf returns the resources of one stage: the flows named, and with first every
// resource that is not a flow.
func stageOf(rs []*controlplanev1.Resource, flows []string, first bool) []*controlplanev1.Resource {
	var out []*controlplanev1.Resource
	for _, r := range rs {
		if (r.Kind != "Flow" && first) || (r.Kind == "Flow" && slices.Contains(flows, r.Metadata.Name)) {
			out = append(out, r)
		}
	}
	return out
}

// trytonHolds is what the README's demo prints of Tryton (tools/scripts/tryton-counts.py).
type trytonHolds struct {
	parties, customers, templates, variants, categories int
	skusOnHand                                          int
	units                                               float64
	sales                                               map[string]string // reference -> state
}

func (h trytonHolds) String() string {
	return fmt.Sprintf("%d parties (%d customers), %d products (%d variants), %d categories, %d SKUs on hand (%g units), sales %v",
		h.parties, h.customers, h.templates, h.variants, h.categories, h.skusOnHand, h.units, h.sales)
}

// readTryton reads over Tryton's own JSON-RPC what tryton-counts.py counts.
func readTryton(t *testing.T, db *trytontest.Database) trytonHolds {
	t.Helper()
	var ctx map[string]any
	db.Call(t, &ctx, "model.res.user.get_preferences", true, map[string]any{})
	count := func(model string, domain ...any) int {
		var n int
		db.Call(t, &n, "model."+model+".search_count", domain, ctx)
		return n
	}
	h := trytonHolds{
		parties:    count("party.party"),
		customers:  count("party.identifier", []any{"code", "like", "syncline:%"}),
		templates:  count("product.template"),
		variants:   count("product.product"),
		categories: count("product.category", []any{"accounting", "=", false}),
		sales:      map[string]string{},
	}
	var warehouses []struct {
		Storage int64 `json:"storage_location"`
	}
	db.Call(t, &warehouses, "model.stock.location.search_read",
		[]any{[]any{"type", "=", "warehouse"}, []any{"code", "=", "WH"}}, 0, 1, nil, []string{"storage_location"}, ctx)
	if len(warehouses) != 1 {
		t.Fatalf("Tryton has %d warehouses WH, want 1", len(warehouses))
	}
	stockCtx := map[string]any{"locations": []int64{warehouses[0].Storage}}
	for k, v := range ctx {
		stockCtx[k] = v
	}
	var levels []struct {
		Quantity float64 `json:"quantity"`
	}
	db.Call(t, &levels, "model.product.product.search_read", []any{[]any{"type", "=", "goods"}}, 0, nil, nil, []string{"quantity"}, stockCtx)
	for _, l := range levels {
		if l.Quantity != 0 {
			h.skusOnHand++
			h.units += l.Quantity
		}
	}
	var sales []struct {
		Reference string `json:"reference"`
		State     string `json:"state"`
	}
	db.Call(t, &sales, "model.sale.sale.search_read", []any{}, 0, nil, nil, []string{"reference", "state"}, ctx)
	for _, s := range sales {
		h.sales[s.Reference] = s.State
	}
	return h
}

// TestWebshopDemoPolledIntoTryton runs make demo-erp's configuration for real: json-server
// seeded with examples/erp/shop.json, a Tryton database seeded as the demo's, and
// examples/erp/shop-to-erp.yaml and orders.yaml applied as the demo script applies them (the
// addresses written in, a stage at a time). Nothing is published: every flow polls the shop.
// Tryton ends up holding what the README says the demo prints (10 categories, 8 products of
// 17 variants, 17 SKUs with 299 units on hand, 5 customers with 2 contact persons, 5
// processing sales), and an order added to the shop afterwards becomes a sale by the next
// poll.
func TestWebshopDemoPolledIntoTryton(t *testing.T) {
	srv := trytonServer(t)
	db := srv.NewDatabase(t)
	shop := shopServer(t)
	seed := exampleShop(t)
	shop.Reset(t, jsonservertest.State{DB: seed})

	hosts := []string{}
	for _, raw := range []string{srv.URL, shop.URL} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, u.Host)
	}
	e := start(t, options{dir: t.TempDir(), driver: "sqlite", allow: hosts})
	rs := exampleResources(t, shop.URL, srv.URL, db.Name)

	// outcomes waits until flow has a success for every record of its collection, and
	// returns the actions by key.
	outcomes := func(flow string, want int) map[string]string {
		t.Helper()
		var got map[string]string
		eventually(t, 2*time.Minute, func() string {
			got = map[string]string{}
			for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: flow}) {
				if r.Status != "success" {
					t.Fatalf("flow %s: %s %s %s %s: %s", flow, r.RemoteId, r.Action, r.Status, r.Code, r.Reason)
				}
				got[r.RemoteId] = r.Action
			}
			if len(got) != want {
				return fmt.Sprintf("flow %s has outcomes for %d records, want %d: %v", flow, len(got), want, got)
			}
			return ""
		})
		return got
	}
	for i, flows := range erpStages {
		stage := stageOf(rs, flows, i == 0)
		if len(stage) == 0 {
			t.Fatalf("examples/erp has no flows %v", flows)
		}
		if _, err := e.resource.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: stage}); err != nil {
			t.Fatalf("applying stage %d (%v): %v", i+1, flows, err)
		}
		for _, flow := range flows {
			records := seed[collectionOf[flow]]
			for key, action := range outcomes(flow, len(records)) {
				if action != "created" {
					t.Errorf("flow %s: record %s was %s, want created", flow, key, action)
				}
			}
		}
	}
	// Every resource of the files was applied by one of the stages.
	applied := 0
	for i, flows := range erpStages {
		applied += len(stageOf(rs, flows, i == 0))
	}
	if applied != len(rs) {
		t.Fatalf("the stages applied %d of the example's %d resources: a flow is in no stage", applied, len(rs))
	}

	sales := map[string]string{}
	for _, o := range seed["orders"] {
		sales[o["number"].(string)] = "processing"
	}
	want := trytonHolds{parties: 8, customers: 5, templates: 8, variants: 17, categories: 10, skusOnHand: 17, units: 299, sales: sales}
	if got := readTryton(t, db); got.String() != want.String() {
		t.Fatalf("Tryton holds\n  %s\nwant (the README's)\n  %s", got, want)
	}

	// An order added to the shop, as the README's curl adds one, becomes a sale by the next
	// poll; its customer is one Tryton has.
	var order map[string]any
	data, err := json.Marshal(seed["orders"][0])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &order); err != nil {
		t.Fatal(err)
	}
	order["id"], order["number"] = 36, "1006"
	order["updated_at"] = time.Now().UTC().Format("2006-01-02T15:04:05Z")
	added := time.Now()
	shop.Add(t, jsonservertest.Auth{}, "orders", order)
	eventually(t, time.Minute, func() string {
		r := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "orders", RemoteId: "36"})
		if len(r) == 0 {
			return "order 36 has no outcome yet"
		}
		if r[0].Action != "created" || r[0].Status != "success" {
			t.Fatalf("order 36: %s %s %s: %s", r[0].Action, r[0].Status, r[0].Code, r[0].Reason)
		}
		return ""
	})
	t.Logf("order 36 reached Tryton %s after it was added to the shop", time.Since(added).Round(time.Millisecond))
	want.sales["1006"] = "processing"
	if got := readTryton(t, db); got.String() != want.String() {
		t.Fatalf("after order 1006, Tryton holds\n  %s\nwant\n  %s", got, want)
	}

	// The README's order with a SKU Tryton lacks fails, writing nothing; once the product
	// is added to the shop and polled into Tryton, the order's dead letter replayed makes
	// its sale.
	var unknown map[string]any
	raw, err := os.ReadFile(filepath.Join(erpExample, "order-unknown-sku.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &unknown); err != nil {
		t.Fatal(err)
	}
	unknown["id"], unknown["number"] = 37, "1007"
	unknown["updated_at"] = time.Now().UTC().Format(changedLayout)
	shop.Add(t, jsonservertest.Auth{}, "orders", unknown)
	last := func(flow, key string) *eventlogv1.LogRecord {
		var newest *eventlogv1.LogRecord
		for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: flow, RemoteId: key}) {
			if newest == nil || r.OccurredAt.AsTime().After(newest.OccurredAt.AsTime()) {
				newest = r
			}
		}
		return newest
	}
	eventually(t, time.Minute, func() string {
		r := last("orders", "37")
		if r == nil {
			return "order 37 has no outcome yet"
		}
		if r.Action != "failed" || r.Code != "unknown_product" || !strings.Contains(r.Reason, "TS-999-XL-PINK") {
			t.Fatalf("order 37: %s %s %s: %s; want failed for its unknown SKU", r.Action, r.Status, r.Code, r.Reason)
		}
		return ""
	})
	shop.Add(t, jsonservertest.Auth{}, "products", map[string]any{"id": 99, "sku": "TS-999-XL-PINK", "type": "simple", "status": "publish",
		"name": "Pink T-shirt XL", "price": "24.95", "regular_price": "24.95", "prices_include_tax": true, "currency": "EUR",
		"categories": []any{}, "updated_at": time.Now().UTC().Format(changedLayout)})
	eventually(t, time.Minute, func() string {
		if r := last("products", "99"); r == nil || r.Action != "created" {
			return fmt.Sprintf("product 99 is not created yet: %v", r)
		}
		return ""
	})
	letters := eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))
	if rep, err := letters.ReplayDeadLetters(t.Context(), &eventlogv1.ReplayDeadLettersRequest{Tenant: "acme", Filter: &eventlogv1.DeadLetterFilter{Flow: "orders"}}); err != nil || len(rep.Replayed) != 1 {
		t.Fatalf("replaying order 37: %v (%v)", rep, err)
	}
	eventually(t, time.Minute, func() string {
		if r := last("orders", "37"); r.Action != "created" {
			return fmt.Sprintf("after its replay order 37 is %s %s: %s", r.Action, r.Code, r.Reason)
		}
		return ""
	})
	want.sales["1007"] = "processing"
	want.templates, want.variants = 9, 18
	if got := readTryton(t, db); got.String() != want.String() {
		t.Fatalf("after the replay of order 1007, Tryton holds\n  %s\nwant\n  %s", got, want)
	}
}

// changedLayout is how every updated_at of the example shop is written: json-server compares
// the polls' updated_at_gte as text, which orders the times only when all are written alike.
const changedLayout = "2006-01-02T15:04:05Z"

// TestERPExampleMapsToCanonicalRecords keeps the demo from rotting, without running anything:
// every flow of examples/erp polls the shop's endpoint for its entity's collection by
// updated_at, every record of shop.json has an id and an updated_at written as changedLayout,
// passes its flow's filter and maps — through the flow's mapping over its entity's default,
// as the control plane compiles it — into a record that entity.Check takes. What the records
// refer to is in the shop too: each product's categories, the SKU of each stock level and
// order line, the customer of each order. The README's order with an unknown SKU
// (order-unknown-sku.json) maps as well, and only that SKU is unknown.
func TestERPExampleMapsToCanonicalRecords(t *testing.T) {
	db := exampleShop(t)
	rs := exampleResources(t, exampleShopURL, exampleTrytonURL, "erp")
	var entities map[string]any // the shop endpoint's, by entity
	for _, r := range rs {
		if r.Kind == "Endpoint" && r.Metadata.Name == "shop" {
			entities = r.Spec.AsMap()["settings"].(map[string]any)["entities"].(map[string]any)
		}
	}
	type flow struct {
		name, collection string
		prog             *mapping.Program
	}
	flows := map[string]flow{} // by entity
	for _, r := range rs {
		if r.Kind != "Flow" {
			continue
		}
		b, err := protojson.Marshal(r.Spec)
		if err != nil {
			t.Fatal(err)
		}
		var spec struct {
			Entity   string       `json:"entity"`
			Source   string       `json:"source"`
			Mapping  mapping.Spec `json:"mapping"`
			Schedule struct {
				Mode string `json:"mode"`
			} `json:"schedule"`
		}
		if err := json.Unmarshal(b, &spec); err != nil {
			t.Fatalf("flow %s: %v", r.Metadata.Name, err)
		}
		if spec.Source != "shop" || spec.Schedule.Mode != "interval" {
			t.Errorf("flow %s reads %s on the schedule %q, want the shop polled at an interval", r.Metadata.Name, spec.Source, spec.Schedule.Mode)
		}
		settings, _ := entities[spec.Entity].(map[string]any)
		source, _ := settings["source"].(map[string]any)
		if source["changed_field"] != "updated_at" || source["since_param"] != "updated_at_gte" {
			t.Errorf("the shop's %s is polled by %v, want changed_field updated_at and since_param updated_at_gte", spec.Entity, source)
		}
		path, _ := settings["path"].(string)
		if _, dup := flows[spec.Entity]; dup {
			t.Fatalf("two flows of %s in examples/erp: the test expects one per entity", spec.Entity)
		}
		// Every flow of the example writes to Tryton, which reads each entity in its
		// canonical shape.
		own := spec.Mapping
		if def, ok := mapping.CanonicalDefault(spec.Entity); ok {
			own = mapping.Merge(def, own)
		}
		prog, err := mapping.Compile(own)
		if err != nil {
			t.Fatalf("flow %s's mapping: %v", r.Metadata.Name, err)
		}
		flows[spec.Entity] = flow{name: r.Metadata.Name, collection: strings.TrimPrefix(path, "/"), prog: prog}
	}
	if len(flows) != len(collectionOf) {
		t.Fatalf("examples/erp has flows of %d entities, want %d (%v)", len(flows), len(collectionOf), collectionOf)
	}

	mapped := map[string][]map[string]any{} // entity -> canonical records
	for entityName, f := range flows {
		records := db[f.collection]
		if len(records) == 0 {
			t.Errorf("shop.json has no %s, which flow %s reads", f.collection, f.name)
		}
		keys := map[string]bool{}
		for i, rec := range records {
			id, ok := rec["id"].(float64)
			key := fmt.Sprint(rec["id"])
			if !ok || keys[key] {
				t.Errorf("%s record %d: id %v is not a number, or another record has it", f.collection, i, rec["id"])
			}
			keys[key] = true
			changed, _ := rec["updated_at"].(string)
			if at, err := time.Parse(changedLayout, changed); err != nil || at.Format(changedLayout) != changed {
				t.Errorf("%s %v: updated_at %q is not written as %s (UTC, no fraction), as every other is", f.collection, id, changed, changedLayout)
			}
			raw, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			out, skip, reason, err := f.prog.ApplyJSON(raw)
			if err != nil || skip {
				t.Errorf("mapping %s %s: %v %s", f.collection, key, err, reason)
				continue
			}
			if err := entity.Check(entityName, out); err != nil {
				t.Errorf("%s %s maps to %s, which is not a canonical %s: %v", f.collection, key, out, entityName, err)
				continue
			}
			var canonical map[string]any
			if err := json.Unmarshal(out, &canonical); err != nil {
				t.Fatal(err)
			}
			mapped[entityName] = append(mapped[entityName], canonical)
		}
	}
	if t.Failed() {
		return
	}

	categories := map[string]bool{}
	for _, c := range mapped["category"] {
		categories[strings.Join(append(texts(c["parent"]), c["name"].(string)), " > ")] = true
	}
	skus := map[string]bool{}
	for _, p := range mapped["product"] {
		variants, _ := p["variants"].([]any)
		if len(variants) == 0 {
			skus[p["sku"].(string)] = true
		}
		for _, v := range variants {
			skus[v.(map[string]any)["sku"].(string)] = true
		}
		for _, path := range p["categories"].([]any) {
			if name := strings.Join(texts(path), " > "); !categories[name] {
				t.Errorf("product %s is in the category %q, which the shop's categories do not have", p["sku"], name)
			}
		}
	}
	for _, s := range mapped["stock"] {
		if !skus[s["sku"].(string)] {
			t.Errorf("a stock level names the SKU %s, which no product has", s["sku"])
		}
	}
	emails := map[string]bool{}
	for _, c := range mapped["customer"] {
		emails[c["email"].(string)] = true
	}
	for _, o := range mapped["order"] {
		if email := o["customer"].(map[string]any)["email"].(string); !emails[email] {
			t.Errorf("order %s is of %s, who is not a customer of the shop", o["number"], email)
		}
		for _, l := range o["lines"].([]any) {
			if sku := l.(map[string]any)["sku"].(string); !skus[sku] {
				t.Errorf("order %s has a line of the SKU %s, which no product has", o["number"], sku)
			}
		}
	}

	// The README's order to break the demo with maps as well, and only its SKU is unknown.
	raw, err := os.ReadFile(filepath.Join(erpExample, "order-unknown-sku.json"))
	if err != nil {
		t.Fatal(err)
	}
	out, skip, _, err := flows["order"].prog.ApplyJSON(raw)
	if err != nil || skip {
		t.Fatalf("mapping order-unknown-sku.json: %v (skipped: %v)", err, skip)
	}
	if err := entity.Check("order", out); err != nil {
		t.Fatalf("order-unknown-sku.json maps to %s, which is not a canonical order: %v", out, err)
	}
	var order struct {
		Lines []struct {
			SKU string `json:"sku"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(out, &order); err != nil {
		t.Fatal(err)
	}
	var unknown []string
	for _, l := range order.Lines {
		if !skus[l.SKU] {
			unknown = append(unknown, l.SKU)
		}
	}
	if !slices.Equal(unknown, []string{"TS-999-XL-PINK"}) {
		t.Errorf("order-unknown-sku.json's SKUs unknown to the shop: %v, want TS-999-XL-PINK alone", unknown)
	}
}

// texts is a canonical list of names ([]any of strings) as []string.
func texts(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.(string))
	}
	return out
}
