package tryton

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/recipe"
)

// recipeFlow is the recipe of a flow of entity into tg, as the connector service builds it
// from the flow's compiled config: the target's own capabilities, and its customers',
// products' and invoices' for what documents refer to.
func recipeFlow(t *testing.T, entity, duplicates string, doc *flowconfig.Document) recipe.Flow {
	t.Helper()
	all, err := entities(nil)
	if err != nil {
		t.Fatal(err)
	}
	var caps connector.Capabilities
	var related []connector.Capabilities
	for _, c := range all {
		if c.Entity == entity {
			caps = c
		}
		for _, e := range recipe.Related(entity) {
			if c.Entity == e {
				related = append(related, c)
			}
		}
	}
	f := recipe.For(&flowconfig.Flow{Entity: entity, Target: flowconfig.Endpoint{Name: "erp", Type: Type}, Duplicates: duplicates, Document: doc}, caps, related, nil)
	if err := recipe.Check(f); err != nil {
		t.Fatalf("Tryton cannot serve the flow: %v", err)
	}
	return f
}

// shopOrder is a canonical order of an e-mail, with a company when company is set.
func shopOrder(key, email, company string, skus ...string) connector.Record {
	var lines []string
	for _, sku := range skus {
		lines = append(lines, fmt.Sprintf(`{"sku":%q,"quantity":2,"price":9.9}`, sku))
	}
	customer := map[string]any{"email": email, "name": "Erika Musterfrau"}
	if company != "" {
		customer["company"] = company
	}
	c, _ := json.Marshal(customer) // strings always encode
	return connector.Record{Key: key, Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(fmt.Sprintf(
		`{"number":"SO-%s","customer":%s,"billing_address":{"name":"Erika Musterfrau","street":"Ring","house_number":"1","postcode":"10115","city":"Berlin","country":"DE"},
		  "payment_method":"paypal","employee_number":"999999","lines":[%s]}`, key, c, strings.Join(lines, ",")))}
}

// sales counts the sales of a party with state, over Tryton's API; parties the parties with
// e-mail.
func sales(t *testing.T, db *trytontest.Database) []struct {
	Reference string `json:"reference"`
	State     string `json:"state"`
	Party     int64  `json:"party"`
} {
	t.Helper()
	var out []struct {
		Reference string `json:"reference"`
		State     string `json:"state"`
		Party     int64  `json:"party"`
	}
	db.Call(t, &out, "model.sale.sale.search_read", []any{}, 0, nil, nil, []string{"reference", "state", "party"}, map[string]any{"company": 1})
	return out
}

func partiesWithEmail(t *testing.T, db *trytontest.Database, email string) []int64 {
	t.Helper()
	var ids []int64
	var mechs []struct {
		Party int64 `json:"party"`
	}
	db.Call(t, &mechs, "model.party.contact_mechanism.search_read", []any{[]any{"type", "=", "email"}, []any{"value", "ilike", email}}, 0, nil, nil, []string{"party"}, map[string]any{})
	for _, m := range mechs {
		if !slices.Contains(ids, m.Party) {
			ids = append(ids, m.Party)
		}
	}
	// A company's contact person has the e-mail too: count the companies.
	var persons []int64
	if len(ids) == 0 {
		return ids
	}
	db.Call(t, &persons, "model.party.relation.all.search", []any{[]any{"to", "in", ids}, []any{"type.name", "=", "Contact Person Of"}}, 0, nil, nil, map[string]any{})
	if len(persons) > 0 {
		var rel []struct {
			From int64 `json:"from_"`
		}
		db.Call(t, &rel, "model.party.relation.all.read", persons, []string{"from_"}, map[string]any{})
		for _, r := range rel {
			ids = slices.DeleteFunc(ids, func(id int64) bool { return id == r.From })
		}
	}
	return ids
}

// TestOrderRecipeIntoTryton runs the order recipe's rules against a real Tryton, reading
// the parties and sales back over Tryton's own API.
func TestOrderRecipeIntoTryton(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		duplicates string // the flow's policy; empty: skip
		doc        *flowconfig.Document
		runs       [][]connector.Record // pushes, one after the other
		want       []string             // the last push's outcomes
		parties    map[string]int       // e-mail -> parties with it
		sales      []string             // reference and state of each sale
	}{
		{name: "a new person customer and a confirmed sale",
			doc:  &flowconfig.Document{State: "confirmed"},
			runs: [][]connector.Record{{shopOrder("1", "Erika@Example.com", "", "MUG-001", "TSHIRT-M")}},
			want: []string{"created"}, parties: map[string]int{"erika@example.com": 1}, sales: []string{"SO-1 processing"}},
		{name: "a company customer with its contact person",
			runs: [][]connector.Record{{shopOrder("1", "erika@acme.example", "ACME GmbH", "MUG-001")}},
			want: []string{"created"}, parties: map[string]int{"erika@acme.example": 1}, sales: []string{"SO-1 draft"}},
		{name: "a missing SKU writes neither the customer nor the sale",
			runs: [][]connector.Record{{shopOrder("1", "new@example.com", "", "MUG-001", "NOPE-1")}},
			want: []string{"failed unknown_product"}, parties: map[string]int{"new@example.com": 0}},
		{name: "the same order twice, then changed, is one sale",
			doc: &flowconfig.Document{State: "quotation"},
			runs: [][]connector.Record{
				{shopOrder("1", "erika@example.com", "", "MUG-001")},
				{shopOrder("1", "erika@example.com", "", "MUG-001")},
				{shopOrder("1", "erika@example.com", "", "MUG-001", "TSHIRT-S")},
			},
			want: []string{"skipped duplicate"}, parties: map[string]int{"erika@example.com": 1}, sales: []string{"SO-1 quotation"}},
		{name: "under the update policy, an order in Tryton unknown to the ledger is updated while a draft",
			duplicates: recipe.DuplicateUpdate,
			runs: [][]connector.Record{
				{shopOrder("1", "erika@example.com", "", "MUG-001")},
				{shopOrder("1", "erika@example.com", "", "MUG-001", "TSHIRT-S")},
			},
			want: []string{"updated"}, parties: map[string]int{"erika@example.com": 1}, sales: []string{"SO-1 draft"}},
		{name: "under the error policy, an order in Tryton unknown to the ledger fails",
			duplicates: recipe.DuplicateError,
			runs: [][]connector.Record{
				{shopOrder("1", "erika@example.com", "", "MUG-001")},
				{shopOrder("1", "erika@example.com", "", "MUG-001", "TSHIRT-S")},
			},
			want: []string{"failed duplicate"}, parties: map[string]int{"erika@example.com": 1}, sales: []string{"SO-1 draft"}},
		{name: "the default customer takes the order, and no party is made",
			doc:  &flowconfig.Document{DefaultCustomer: "max@example.com"},
			runs: [][]connector.Record{{shopOrder("1", "walk-in@example.com", "", "MUG-001")}},
			want: []string{"created"}, parties: map[string]int{"walk-in@example.com": 0, "max@example.com": 1}, sales: []string{"SO-1 draft"}},
		{name: "a source invoice becomes a sale through the flow's type map",
			doc:  &flowconfig.Document{Types: map[string]string{"invoice": "order"}},
			runs: [][]connector.Record{{withType(shopOrder("1", "erika@example.com", "", "MUG-001"), "invoice")}},
			want: []string{"created"}, parties: map[string]int{"erika@example.com": 1}, sales: []string{"SO-1 draft"}},
		{name: "a source invoice without a type map is refused, naming the map",
			runs: [][]connector.Record{{withType(shopOrder("1", "erika@example.com", "", "MUG-001"), "invoice")}},
			want: []string{"failed target_rejected"}, parties: map[string]int{"erika@example.com": 0}},
		{name: "a sale an interrupted write left a draft is confirmed when the order comes again",
			doc: &flowconfig.Document{State: "confirmed"},
			runs: [][]connector.Record{
				{shopOrder("1", "erika@example.com", "", "MUG-001")}, // run with the draft state below
				{shopOrder("1", "erika@example.com", "", "MUG-001")},
			},
			want: []string{"created"}, parties: map[string]int{"erika@example.com": 1}, sales: []string{"SO-1 processing"}},
		{name: "an existing customer is used, not doubled",
			runs: [][]connector.Record{{shopOrder("1", "MAX@example.com", "", "MUG-001")}},
			want: []string{"created"}, parties: map[string]int{"max@example.com": 1}, sales: []string{"SO-1 draft"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newOrderFixture(t)
			policy := tt.duplicates
			if policy == "" {
				policy = recipe.DuplicateSkip
			}
			flow := recipeFlow(t, "order", policy, tt.doc)
			var got []recipe.Outcome
			for n, batch := range tt.runs {
				run := flow
				if strings.HasPrefix(tt.name, "a sale an interrupted write") && n == 0 {
					// The first delivery stopped after the sale was made: a draft.
					run = recipeFlow(t, "order", policy, nil)
				}
				var err error
				if got, err = recipe.Run(ctx, f.tg, run, batch); err != nil {
					t.Fatal(err)
				}
			}
			for i, o := range got {
				if s := strings.TrimSpace(string(o.Action) + " " + o.Code); s != tt.want[i] {
					t.Errorf("record %d: %s (%s), want %s", i, s, o.Reason, tt.want[i])
				}
			}
			for email, n := range tt.parties {
				if ids := partiesWithEmail(t, f.db, email); len(ids) != n {
					t.Errorf("%d parties with e-mail %s, want %d", len(ids), email, n)
				}
			}
			var have []string
			for _, s := range sales(t, f.db) {
				have = append(have, s.Reference+" "+s.State)
			}
			if strings.Join(have, ",") != strings.Join(tt.sales, ",") {
				t.Errorf("sales %v, want %v", have, tt.sales)
			}
		})
	}
}

func withType(r connector.Record, typ string) connector.Record {
	var m map[string]any
	if err := json.Unmarshal(r.Payload, &m); err != nil {
		panic(err)
	}
	m["type"] = typ
	r.Payload, _ = json.Marshal(m) // decoded JSON always encodes
	return r
}

// faultyTryton fails the first write of an entity as a lost connection would.
type faultyTryton struct {
	connector.Target
	entity string
	fails  atomic.Int32
}

func (f *faultyTryton) Write(ctx context.Context, entity string, writes []connector.Write) ([]connector.Result, error) {
	if entity == f.entity && f.fails.Add(-1) >= 0 {
		return nil, errors.New("connection reset by peer")
	}
	return f.Target.Write(ctx, entity, writes)
}

// TestOrderRecipeIntoTrytonAfterAFault stops the recipe between the customer and the sale;
// the redelivery finds the customer the first made: one party, one sale.
func TestOrderRecipeIntoTrytonAfterAFault(t *testing.T) {
	f := newOrderFixture(t)
	target := &faultyTryton{Target: f.tg, entity: EntityOrder}
	target.fails.Store(1)
	flow := recipeFlow(t, "order", recipe.DuplicateSkip, &flowconfig.Document{State: "confirmed"})
	rec := shopOrder("1", "fault@example.com", "", "MUG-001")
	if _, err := recipe.Run(context.Background(), target, flow, []connector.Record{rec}); err == nil {
		t.Fatal("the push with the fault succeeded")
	}
	if n := len(partiesWithEmail(t, f.db, "fault@example.com")); n != 1 || len(sales(t, f.db)) != 0 {
		t.Fatalf("after the fault: %d parties, %d sales; want the party alone", n, len(sales(t, f.db)))
	}
	got, err := recipe.Run(context.Background(), target, flow, []connector.Record{rec})
	if err != nil || got[0].Action != recipe.Created {
		t.Fatalf("redelivery: %v %+v", err, got)
	}
	if n, s := len(partiesWithEmail(t, f.db, "fault@example.com")), sales(t, f.db); n != 1 || len(s) != 1 || s[0].State != "processing" {
		t.Errorf("after redelivery: %d parties, sales %+v; want one party and one processing sale", n, s)
	}
}

// TestConcurrentOrdersIntoTrytonMakeOneCustomer pushes orders of one new customer from
// several goroutines at once, as partitions do: one party.
func TestConcurrentOrdersIntoTrytonMakeOneCustomer(t *testing.T) {
	f := newOrderFixture(t)
	flow := recipeFlow(t, "order", recipe.DuplicateSkip, nil)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			got, err := recipe.Run(context.Background(), f.tg, flow, []connector.Record{shopOrder(fmt.Sprint(i), "together@example.com", "", "MUG-001")})
			if err != nil || got[0].Action != recipe.Created {
				t.Errorf("order %d: %v %+v", i, err, got)
			}
		})
	}
	wg.Wait()
	if n := len(partiesWithEmail(t, f.db, "together@example.com")); n != 1 {
		t.Errorf("%d parties for one e-mail, want 1", n)
	}
	if n := len(sales(t, f.db)); n != 4 {
		t.Errorf("%d sales, want 4", n)
	}
}

// TestVouchersAndPaymentsIntoTryton: a purchase invoice of a supplier without an e-mail
// finds or makes the supplier by name and is posted; a receipt settles a sales invoice once,
// however often it is delivered.
func TestVouchersAndPaymentsIntoTryton(t *testing.T) {
	ctx := context.Background()
	inv := newInvoicing(t, nil)
	addPaymentMethod(t, inv.db)
	posted := &flowconfig.Document{State: "posted"}
	rec := func(key, payload string) connector.Record {
		return connector.Record{Key: key, Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(payload)}
	}
	run := func(entity string, r connector.Record, doc *flowconfig.Document) recipe.Outcome {
		t.Helper()
		got, err := recipe.Run(ctx, inv.tg, recipeFlow(t, entity, recipe.DuplicateSkip, doc), []connector.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	purchase := fmt.Sprintf(`{"number":"R-88","kind":"purchase","date":%q,"party":{"name":"Paper Mill Ltd"},"lines":[{"sku":"MUG-001","quantity":1,"price":10,"tax_rate":19}]}`, thisYear("01-10"))
	if o := run("invoice", rec("inv-p1", purchase), posted); o.Action != recipe.Created {
		t.Fatalf("purchase invoice: %+v", o)
	}
	if o := run("invoice", rec("inv-p2", strings.Replace(purchase, "R-88", "R-89", 1)), posted); o.Action != recipe.Created {
		t.Fatalf("second purchase invoice: %+v", o)
	}
	var suppliers []int64
	inv.db.Call(t, &suppliers, "model.party.party.search", []any{[]any{"name", "=", "Paper Mill Ltd"}}, 0, nil, nil, map[string]any{})
	if len(suppliers) != 1 {
		t.Errorf("%d parties Paper Mill Ltd, want 1", len(suppliers))
	}

	sales := fmt.Sprintf(`{"number":"INV-1","date":%q,"party":{"name":"Jane Doe","email":"jane@acme.example","company":"ACME GmbH"},"lines":[{"sku":"MUG-001","quantity":10,"price":10,"tax_rate":19}],"totals":{"gross":119}}`, thisYear("01-10"))
	o := run("invoice", rec("inv-s1", sales), posted)
	if o.Action != recipe.Created {
		t.Fatalf("sales invoice: %+v", o)
	}
	payment := rec("PAY-1", fmt.Sprintf(`{"reference":"PAY-1","amount":119,"currency":"EUR","date":%q,"invoice":"INV-1"}`, thisYear("01-20")))
	if p := run("payment", payment, nil); p.Action != recipe.Created {
		t.Fatalf("payment: %+v", p)
	}
	// Delivered again, it is found by its key and kept: a payment is never booked twice.
	if p := run("payment", payment, nil); p.Action != recipe.Skipped || p.Code != recipe.CodeDuplicate {
		t.Fatalf("payment again: %+v", p)
	}
	if got := openAmount(t, inv.db, o.TargetID); got != "paid 0 in 1 payments" && got != "paid 0.00 in 1 payments" {
		t.Errorf("the invoice is %s, want paid by one payment", got)
	}
	if p := run("payment", rec("PAY-2", `{"reference":"PAY-2","amount":5,"currency":"EUR","invoice":"INV-404"}`), nil); p.Code != recipe.CodeUnknownInvoice {
		t.Errorf("a payment of an unknown invoice: %+v", p)
	}
}
