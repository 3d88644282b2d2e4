package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/entity"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/resourcefile"
)

// exampleDir holds the demo's webshop and resources (make demo-erp).
const exampleDir = "../../examples/erp"

// TestExampleMapsToCanonicalRecords keeps the demo from rotting: every record of the demo
// webshop (shop.json), fed as shopfeed feeds it by default, is keyed and versioned, passes
// its flow's filter and maps — through the flow's mapping over its entity's default, as the
// control plane compiles it — into a record that entity.Check takes, orders included. What
// the records refer to is in the shop too: each product's categories, the SKU of each stock
// level and order line, the customer of each order. The README's order with an unknown SKU
// (order-unknown-sku.json) maps as well, and only that SKU is unknown.
func TestExampleMapsToCanonicalRecords(t *testing.T) {
	flows := exampleFlows(t)
	data, err := os.ReadFile(filepath.Join(exampleDir, "shop.json"))
	if err != nil {
		t.Fatal(err)
	}
	var db map[string][]json.RawMessage
	if err := json.Unmarshal(data, &db); err != nil {
		t.Fatalf("shop.json: %v", err)
	}
	collections, err := parseCollections(defaultCollections)
	if err != nil {
		t.Fatal(err)
	}
	src := source{Tenant: "acme", Endpoint: "shop", Updated: "updated_at"}
	mapped := map[string][]map[string]any{} // entity -> canonical records
	for _, c := range collections {
		records := db[c.Name]
		if len(records) == 0 {
			t.Errorf("shop.json has no %s: shopfeed feeds it by default", c.Name)
			continue
		}
		flow, ok := flows[c.Entity]
		if !ok {
			t.Errorf("examples/erp has no flow of %s, which shopfeed feeds from %s", c.Entity, c.Name)
			continue
		}
		prog, err := mapping.Compile(flow)
		if err != nil {
			t.Fatalf("the %s flow's mapping: %v", c.Entity, err)
		}
		keys := map[string]bool{}
		for i, raw := range records {
			ch, err := src.change(c, i, raw)
			if err != nil {
				t.Errorf("feeding: %v", err)
				continue
			}
			if keys[ch.Key] {
				t.Errorf("%s: two records have the id %s", c.Name, ch.Key)
			}
			keys[ch.Key] = true
			out, skip, reason, err := prog.ApplyJSON(raw)
			if err != nil || skip {
				t.Errorf("mapping %s %s: %v %s", c.Name, ch.Key, err, reason)
				continue
			}
			if err := entity.Check(c.Entity, out); err != nil {
				t.Errorf("%s %s maps to %s, which is not a canonical %s: %v", c.Name, ch.Key, out, c.Entity, err)
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal(out, &rec); err != nil {
				t.Fatal(err)
			}
			mapped[c.Entity] = append(mapped[c.Entity], rec)
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
	raw, err := os.ReadFile(filepath.Join(exampleDir, "order-unknown-sku.json"))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := mapping.Compile(flows["order"])
	if err != nil {
		t.Fatal(err)
	}
	out, skip, _, err := prog.ApplyJSON(raw)
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

// exampleFlows loads examples/erp/*.yaml with the loader `syncline apply -f` uses and
// returns each flow's mapping as the control plane runs it (the flow's own over its
// entity's canonical default), by entity.
func exampleFlows(t *testing.T) map[string]mapping.Spec {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(exampleDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no resource files in %s (%v)", exampleDir, err)
	}
	var resources []*controlplanev1.Resource
	for _, f := range files {
		rs, err := resourcefile.Load(f)
		if err != nil {
			t.Fatalf("loading %s: %v", f, err)
		}
		resources = append(resources, rs...)
	}
	flows := map[string]mapping.Spec{}
	for _, r := range resources {
		if r.Kind != "Flow" {
			continue
		}
		b, err := protojson.Marshal(r.Spec)
		if err != nil {
			t.Fatal(err)
		}
		var spec struct {
			Entity  string       `json:"entity"`
			Mapping mapping.Spec `json:"mapping"`
		}
		if err := json.Unmarshal(b, &spec); err != nil {
			t.Fatalf("flow %s: %v", r.Metadata.Name, err)
		}
		if _, dup := flows[spec.Entity]; dup {
			t.Fatalf("two flows of %s in %s: the test expects one per entity", spec.Entity, exampleDir)
		}
		own := spec.Mapping
		// Every flow of the example writes to Tryton, which reads each entity in its
		// canonical shape.
		if def, ok := mapping.CanonicalDefault(spec.Entity); ok {
			own = mapping.Merge(def, own)
		}
		flows[spec.Entity] = own
	}
	return flows
}

// texts is a canonical list of names ([]any of strings) as []string.
func texts(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.(string))
	}
	return slices.Clip(out)
}
