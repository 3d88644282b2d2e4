package allinone_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestOrdersVouchersAndPaymentsIntoTryton runs a webshop's products, orders, invoices and
// payments through the whole pipeline into a real Tryton, on the platform's default mappings,
// and checks each rule by what the API log says and what Tryton holds, read over its own
// JSON-RPC.
func TestOrdersVouchersAndPaymentsIntoTryton(t *testing.T) {
	srv := trytonServer(t)
	db := srv.NewDatabase(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// Tryton books payments through a journal's payment method, which an accountant sets up.
	ctx := map[string]any{"company": 1}
	var journals, accounts []int64
	db.Call(t, &journals, "model.account.journal.search", []any{[]any{"code", "=", "CASH"}}, 0, nil, nil, ctx)
	db.Call(t, &accounts, "model.account.account.search", []any{[]any{"name", "=", "Main Cash"}}, 0, nil, nil, ctx)
	db.Call(t, nil, "model.account.invoice.payment.method.create", []any{map[string]any{"name": "Cash", "company": 1,
		"journal": journals[0], "debit_account": accounts[0], "credit_account": accounts[0]}}, ctx)

	e := start(t, options{dir: t.TempDir(), driver: "sqlite", allow: []string{u.Host}})
	flow := func(name, entity string, extra map[string]any) *controlplanev1.Resource {
		spec := map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": entity}
		for k, v := range extra {
			spec[k] = v
		}
		return resourceOf(t, "Flow", "acme", name, spec)
	}
	if _, err := e.resource.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "shop-to-erp", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		resourceOf(t, "Endpoint", "acme", "erp", map[string]any{"type": "tryton", "description": "Tryton ERP",
			"settings":    map[string]any{"url": srv.URL, "database": db.Name, "user": "admin", "account_category": "Goods"},
			"credentials": map[string]any{"password": "admin"}}),
		flow("products", "product", nil),
		flow("orders", "order", map[string]any{"document": map[string]any{"state": "confirmed"},
			// The shop's payment terms as Tryton names them, with a fallback.
			"mapping": map[string]any{"valueMaps": map[string]any{"payment_term": map[string]any{
				"values": map[string]any{"14 days": "Net 14"}, "fallback": "Immediate"}}}}),
		flow("vouchers", "invoice", map[string]any{"document": map[string]any{"state": "posted"}}),
		flow("payments", "payment", nil),
	}}); err != nil {
		t.Fatalf("applying: %v", err)
	}
	change := func(entity, key string, version int64, payload string) ingest.Change {
		return ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: entity, Key: key, Version: version, Payload: []byte(payload)}
	}
	order := func(key string, version int64, email, company string, skus ...string) ingest.Change {
		var lines []string
		for _, s := range skus {
			lines = append(lines, fmt.Sprintf(`{"sku":%q,"name":"Item","quantity":1,"price":"19.90"}`, s))
		}
		return change("order", key, version, fmt.Sprintf(`{"number":"SO-%s","status":"processing","currency":"EUR",
			"billing":{"first_name":"Erika","last_name":"Muster","company":%q,"address_1":"Ring 1","postcode":"10115","city":"Berlin","country":"DE","email":%q},
			"payment_method":"paypal","payment_term":"14 days","line_items":[%s]}`, key, company, email, strings.Join(lines, ",")))
	}
	// logged waits until the API log holds want (remote id -> "action status code") for
	// flow, the latest record of each.
	logged := func(flow string, want map[string]string) {
		t.Helper()
		eventually(t, 90*time.Second, func() string {
			got := map[string]*eventlogv1.LogRecord{}
			for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: flow}) {
				if cur, ok := got[r.RemoteId]; !ok || r.OccurredAt.AsTime().After(cur.OccurredAt.AsTime()) {
					got[r.RemoteId] = r
				}
			}
			for k, w := range want {
				r := got[k]
				if r == nil {
					return fmt.Sprintf("no API log record of %s %s yet", flow, k)
				}
				if s := strings.TrimSpace(r.Action + " " + r.Status + " " + r.Code); s != w {
					return fmt.Sprintf("%s %s: %q (%s), want %q", flow, k, s, r.Reason, w)
				}
			}
			return ""
		})
	}

	e.publish(
		change("product", "p-1", 1, `{"sku":"MUG-1","name":"Mug","price":9.9}`),
		change("product", "p-2", 1, `{"sku":"TEE","name":"T-shirt","price":19.9,"variants":[{"sku":"TEE-M","attributes":{"size":"M"}},{"sku":"TEE-L","attributes":{"size":"L"}}]}`),
	)
	logged("products", map[string]string{"p-1": "created success", "p-2": "created success"})

	// Orders: a new person, a new company (two orders at once), a missing SKU.
	e.publish(
		order("1001", 1, "Erika@Example.com", "", "MUG-1", "TEE-M"),
		order("1002", 1, "buyer@acme.example", "ACME GmbH", "TEE-L"),
		order("1003", 1, "buyer@acme.example", "ACME GmbH", "MUG-1"),
		order("1004", 1, "nobody@example.com", "", "MUG-1", "GONE-1"),
	)
	logged("orders", map[string]string{"1001": "created success", "1002": "created success", "1003": "created success",
		"1004": "failed failure unknown_product"})
	// syncline flow test: what the flow would do with an order, writing nothing.
	for _, tt := range []struct {
		key, email string
		skus       []string
		want       string
	}{
		{"2001", "dry@example.com", []string{"MUG-1"}, "created"},
		{"2002", "dry@example.com", []string{"MUG-1", "GONE-2"}, "failed unknown_product"},
		// In Tryton already: shown as what the ledger would make of it, with the policy.
		{"1002", "buyer@acme.example", []string{"TEE-L"}, "updated"},
	} {
		var rec map[string]any
		if err := json.Unmarshal(order(tt.key, 1, tt.email, "", tt.skus...).Payload, &rec); err != nil {
			t.Fatal(err)
		}
		st, err := structpb.NewStruct(rec)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.resource.TestFlow(t.Context(), &controlplanev1.TestFlowRequest{Tenant: "acme", Flow: "orders", Record: st, Key: tt.key})
		if err != nil {
			t.Fatalf("flow test of %s: %v", tt.key, err)
		}
		if got := strings.TrimSpace(resp.Action + " " + resp.Code); got != tt.want {
			t.Errorf("flow test of order %s: %s (%s), want %s", tt.key, got, resp.Reason, tt.want)
		}
		if tt.want == "updated" && !strings.Contains(resp.Note, "duplicate policy skip") {
			t.Errorf("flow test of order %s: note %q, want the skip policy named", tt.key, resp.Note)
		}
	}
	var dry int
	db.Call(t, &dry, "model.party.contact_mechanism.search_count", []any{[]any{"value", "=", "dry@example.com"}}, map[string]any{})
	if dry != 0 {
		t.Errorf("flow test made the order's customer")
	}

	// The same order again, changed: kept (the skip policy of orders).
	e.publish(order("1001", 2, "erika@example.com", "", "MUG-1"))
	logged("orders", map[string]string{"1001": "skipped success duplicate"})

	type sale struct {
		Reference string `json:"reference"`
		State     string `json:"state"`
		Party     int64  `json:"party"`
		Comment   string `json:"comment"`
		Term      *struct {
			Name string `json:"name"`
		} `json:"payment_term."`
	}
	var sales []sale
	db.Call(t, &sales, "model.sale.sale.search_read", []any{}, 0, nil, [][]string{{"reference", "ASC"}}, []string{"reference", "state", "party", "comment", "payment_term.name"}, ctx)
	var got []string
	for _, s := range sales {
		got = append(got, s.Reference+" "+s.State)
		// Enriched with the default employee number, the payment term translated.
		if !strings.Contains(s.Comment, "Employee: 999999") || !strings.Contains(s.Comment, "Payment method: paypal") || s.Term == nil || s.Term.Name != "Net 14" {
			t.Errorf("sale %s: comment %q, payment term %+v; want employee 999999, paypal and Net 14", s.Reference, s.Comment, s.Term)
		}
	}
	if strings.Join(got, ",") != "SO-1001 processing,SO-1002 processing,SO-1003 processing" {
		t.Errorf("Tryton's sales: %v", got)
	}
	if len(sales) == 3 && sales[1].Party != sales[2].Party {
		t.Errorf("the two orders of ACME GmbH went to parties %d and %d, want one", sales[1].Party, sales[2].Party)
	}
	var nobody int
	db.Call(t, &nobody, "model.party.contact_mechanism.search_count", []any{[]any{"value", "=", "nobody@example.com"}}, map[string]any{})
	if nobody != 0 {
		t.Errorf("the order with a missing SKU made its customer")
	}

	// Vouchers and payments: a sales invoice posted, paid by a receipt sent twice.
	year := time.Now().Year()
	e.publish(change("invoice", "inv-1", 1, fmt.Sprintf(`{"number":"INV-1","date":"%d-01-10","customer":{"name":"Erika Muster","email":"erika@example.com"},
		"lines":[{"sku":"MUG-1","quantity":10,"price":10,"tax_rate":19}],"total":119}`, year)))
	logged("vouchers", map[string]string{"inv-1": "created success"})
	receipt := fmt.Sprintf(`{"reference":"PAY-1","amount":119,"currency":"EUR","date":"%d-01-20","invoice":"INV-1"}`, year)
	e.publish(change("payment", "PAY-1", 1, receipt))
	logged("payments", map[string]string{"PAY-1": "created success"})
	e.publish(change("payment", "PAY-1", 2, receipt), change("payment", "PAY-2", 1, `{"reference":"PAY-2","amount":5,"currency":"EUR","invoice":"INV-404"}`))
	logged("payments", map[string]string{"PAY-1": "skipped success unchanged", "PAY-2": "failed failure unknown_invoice"})
	var invoices []struct {
		State string `json:"state"`
	}
	db.Call(t, &invoices, "model.account.invoice.search_read", []any{[]any{"reference", "=", "INV-1"}}, 0, nil, nil, []string{"state"}, ctx)
	var moves int
	db.Call(t, &moves, "model.account.move.search_count", []any{[]any{"journal.code", "=", "CASH"}}, ctx)
	if len(invoices) != 1 || invoices[0].State != "paid" || moves != 1 {
		t.Errorf("INV-1 in Tryton: %+v with %d payment moves, want one paid invoice and one payment", invoices, moves)
	}
}
