package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/recipe"
)

// erpSettings are those of an ERP API that takes customers, products, orders, invoices,
// payments and goods receipts in their canonical shapes.
func erpSettings(baseURL string) map[string]any {
	doc := func(path string) map[string]any {
		return map[string]any{"path": path, "canonical": true, "lookup": map[string]any{"number": "number"},
			"refs_field": "refs", "state_field": "state", "states": []any{"open", "confirmed"}}
	}
	payment := doc("/payments")
	payment["lookup"] = map[string]any{"reference": "reference"}
	return map[string]any{
		"base_url": baseURL,
		"entities": map[string]any{
			"customer":      map[string]any{"path": "/customers", "canonical": true, "lookup": map[string]any{"email": "email", "name": "name"}},
			"product":       map[string]any{"path": "/products", "canonical": true, "lookup": map[string]any{"sku": "sku"}},
			"order":         doc("/orders"),
			"invoice":       doc("/invoices"),
			"payment":       payment,
			"goods-receipt": doc("/goods-receipts"),
		},
	}
}

// erpFlow is the recipe of a flow of entity into the ERP, as the connector service builds it
// from the flow's compiled config.
func erpFlow(t *testing.T, entity string, doc *flowconfig.Document) recipe.Flow {
	t.Helper()
	r := registry(t)
	valid, err := r.ValidateSettings("rest", erpSettings(peer.URL))
	if err != nil {
		t.Fatal(err)
	}
	caps, err := r.Capabilities("rest", valid, entity)
	if err != nil {
		t.Fatal(err)
	}
	var related []connector.Capabilities
	for _, e := range recipe.Related(entity) {
		c, err := r.Capabilities("rest", valid, e)
		if err != nil {
			t.Fatal(err)
		}
		related = append(related, c)
	}
	f := recipe.For(&flowconfig.Flow{Entity: entity, Target: flowconfig.Endpoint{Name: "erp", Type: "rest"}, Duplicates: recipe.DuplicateSkip, Document: doc}, caps, related, nil)
	if err := recipe.Check(f); err != nil {
		t.Fatalf("the ERP cannot serve the flow: %v", err)
	}
	return f
}

func restOrder(key, email string, skus ...string) connector.Record {
	var lines []string
	for _, sku := range skus {
		lines = append(lines, fmt.Sprintf(`{"sku":%q,"quantity":2,"price":19.95}`, sku))
	}
	return connector.Record{Key: key, Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(fmt.Sprintf(
		`{"number":"SO-%s","customer":{"email":%q,"name":"Jane Doe","company":"Doe Trading GmbH"},"lines":[%s]}`, key, email, strings.Join(lines, ",")))}
}

// TestOrdersThroughTheRecipe runs orders through the order recipe into json-server as an ERP,
// and reads the customers and orders back over its own API.
func TestOrdersThroughTheRecipe(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		doc     *flowconfig.Document
		seed    []map[string]any // customers the ERP holds first
		records []connector.Record
		want    []string
		// customers and orders the ERP holds after, and a check of them.
		customers, orders int
		check             func(t *testing.T, customers, orders []map[string]any)
	}{
		{name: "a new company customer, then the order with its refs and state",
			doc:     &flowconfig.Document{State: "confirmed"},
			records: []connector.Record{restOrder("1", "Jane@Example.com", "TS-1", "CUP")},
			want:    []string{"created"}, customers: 1, orders: 1,
			check: func(t *testing.T, customers, orders []map[string]any) {
				c, o := customers[0], orders[0]
				if c["email"] != "jane@example.com" || c["company"] != "Doe Trading GmbH" || c["name"] != "Jane Doe" {
					t.Errorf("customer %v", c)
				}
				refs, _ := o["refs"].(map[string]any)
				if fmt.Sprint(refs["customer"]) != fmt.Sprint(c["id"]) || refs["sku:TS-1"] != "1" || refs["sku:CUP"] != "2" || o["state"] != "confirmed" || o["external_ref"] != "1" {
					t.Errorf("order %v, want refs to customer %v and products 1 and 2, state confirmed", o, c["id"])
				}
			}},
		{name: "a missing SKU writes nothing, and says which",
			records: []connector.Record{restOrder("1", "jane@example.com", "TS-1", "GONE-1")},
			want:    []string{"failed unknown_product"}, customers: 0, orders: 0},
		{name: "the same order twice, and a second order of its customer: one customer",
			records: []connector.Record{restOrder("1", "jane@example.com", "TS-1")},
			want:    []string{"created"}, customers: 1, orders: 2,
			check: func(t *testing.T, _, _ []map[string]any) {
				for _, r := range []connector.Record{restOrder("1", "jane@example.com", "TS-1"), restOrder("2", "JANE@example.com", "CUP")} {
					if got, err := recipe.Run(ctx, openERP(t), erpFlow(t, "order", nil), []connector.Record{r}); err != nil || got[0].Action != recipe.Created {
						t.Errorf("order %s: %v %+v", r.Key, err, got)
					}
				}
			}},
		{name: "the default customer takes the order",
			doc:     &flowconfig.Document{DefaultCustomer: "pos@shop.example"},
			seed:    []map[string]any{{"id": 7, "email": "pos@shop.example", "name": "Cash sales"}},
			records: []connector.Record{restOrder("1", "jane@example.com", "TS-1")},
			want:    []string{"created"}, customers: 1, orders: 1,
			check: func(t *testing.T, customers, orders []map[string]any) {
				if refs, _ := orders[0]["refs"].(map[string]any); fmt.Sprint(refs["customer"]) != fmt.Sprint(customers[0]["id"]) {
					t.Errorf("order %v, want it booked on %v", orders[0], customers[0])
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{
				"customers": tt.seed, "orders": nil,
				"products": {{"id": 1, "sku": "TS-1", "name": "T-shirt"}, {"id": 2, "sku": "CUP", "name": "Cup"}},
			}})
			got, err := recipe.Run(ctx, openERP(t), erpFlow(t, "order", tt.doc), tt.records)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range got {
				s := string(o.Action)
				if o.Code != "" {
					s += " " + o.Code
				}
				if s != tt.want[i] {
					t.Errorf("record %d: %s (%s), want %s", i, s, o.Reason, tt.want[i])
				}
			}
			if tt.check != nil {
				tt.check(t, peer.Items(t, jsonservertest.Auth{}, "customers", nil), peer.Items(t, jsonservertest.Auth{}, "orders", nil))
			}
			customers, orders := peer.Items(t, jsonservertest.Auth{}, "customers", nil), peer.Items(t, jsonservertest.Auth{}, "orders", nil)
			if len(customers) != tt.customers || len(orders) != tt.orders {
				t.Errorf("the ERP holds %d customers and %d orders, want %d and %d: %v %v", len(customers), len(orders), tt.customers, tt.orders, customers, orders)
			}
		})
	}
}

// TestDocumentsThroughTheRecipe: an invoice finds or makes its party, a payment finds the
// invoice it settles and is recorded once, and a goods receipt is written as it is.
func TestDocumentsThroughTheRecipe(t *testing.T) {
	ctx := context.Background()
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{
		"customers": nil, "orders": nil, "invoices": nil, "payments": nil, "goods-receipts": nil,
		"products": {{"id": 1, "sku": "TS-1", "name": "T-shirt"}},
	}})
	erp := openERP(t)
	run := func(entity string, rec connector.Record) recipe.Outcome {
		t.Helper()
		got, err := recipe.Run(ctx, erp, erpFlow(t, entity, nil), []connector.Record{rec})
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	rec := func(key, payload string) connector.Record {
		return connector.Record{Key: key, Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(payload)}
	}
	if o := run("invoice", rec("inv-1", `{"number":"R-88","kind":"purchase","party":{"name":"Paper Mill Ltd"},"lines":[{"sku":"TS-1","quantity":1,"price":2}]}`)); o.Action != recipe.Created {
		t.Fatalf("invoice: %+v", o)
	}
	if o := run("payment", rec("PAY-1", `{"reference":"PAY-1","amount":2,"currency":"EUR","invoice":"R-88"}`)); o.Action != recipe.Created {
		t.Fatalf("payment: %+v", o)
	}
	if o := run("payment", rec("PAY-1", `{"reference":"PAY-1","amount":2,"currency":"EUR","invoice":"R-88"}`)); o.Action != recipe.Created {
		t.Fatalf("payment again: %+v, want it found as written", o)
	}
	if o := run("payment", rec("PAY-2", `{"reference":"PAY-2","amount":2,"currency":"EUR","invoice":"R-404"}`)); o.Code != recipe.CodeUnknownInvoice {
		t.Fatalf("payment of an unknown invoice: %+v", o)
	}
	if o := run("goods-receipt", rec("gr-1", `{"number":"GR-1","party":{"name":"Paper Mill Ltd"},"lines":[{"sku":"TS-1","quantity":24}]}`)); o.Action != recipe.Created {
		t.Fatalf("goods receipt: %+v", o)
	}
	invoices := peer.Items(t, jsonservertest.Auth{}, "invoices", nil)
	payments := peer.Items(t, jsonservertest.Auth{}, "payments", nil)
	parties := peer.Items(t, jsonservertest.Auth{}, "customers", url.Values{"name": {"Paper Mill Ltd"}})
	if len(invoices) != 1 || len(payments) != 1 || len(parties) != 1 {
		t.Fatalf("the ERP holds %d invoices, %d payments, %d suppliers; want one each", len(invoices), len(payments), len(parties))
	}
	if refs, _ := payments[0]["refs"].(map[string]any); fmt.Sprint(refs["invoice"]) != fmt.Sprint(invoices[0]["id"]) {
		t.Errorf("payment %v, want it to refer to invoice %v", payments[0], invoices[0]["id"])
	}
	if refs, _ := invoices[0]["refs"].(map[string]any); fmt.Sprint(refs["customer"]) != fmt.Sprint(parties[0]["id"]) {
		t.Errorf("invoice %v, want its supplier %v", invoices[0], parties[0]["id"])
	}
}

func openERP(t *testing.T) connector.Target {
	t.Helper()
	return open(t, erpSettings(peer.URL), localEnv(t, nil))
}
