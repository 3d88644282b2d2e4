package recipe_test

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
	"time"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
	"github.com/syncline/syncline/pkg/recipe"
)

// shopCaps are the capabilities of a target that takes orders as an ERP does.
var shopCaps = map[string]connector.Capabilities{
	"order": {Entity: "order", FindBy: []string{connector.FieldExternalRef, connector.FieldNumber}, Read: true,
		Create: true, Update: true, Canonical: true, States: []string{"draft", "confirmed"}, Types: []string{"order"}},
	"customer": {Entity: "customer", FindBy: []string{connector.FieldExternalRef, connector.FieldEmail, connector.FieldName}, Read: true,
		Create: true, Update: true, Canonical: true},
	"product": {Entity: "product", FindBy: []string{connector.FieldExternalRef, connector.FieldSKU}, Read: true,
		Create: true, Update: true, Canonical: true},
	"invoice": {Entity: "invoice", FindBy: []string{connector.FieldExternalRef, connector.FieldNumber}, Read: true,
		Create: true, Update: true, Canonical: true},
	"payment": {Entity: "payment", FindBy: []string{connector.FieldExternalRef}, Create: true, Canonical: true},
}

// newShop returns an ERP in memory with the products of skus.
func newShop(t *testing.T, skus ...string) connectortest.Multi {
	t.Helper()
	shop := connectortest.NewMulti("order", "customer", "product", "invoice", "payment")
	for _, sku := range skus {
		if _, err := shop.Write(context.Background(), "product", []connector.Write{{Op: connector.WriteCreate, Key: "p-" + sku,
			Payload: json.RawMessage(fmt.Sprintf(`{"sku":%q,"name":"Product %s"}`, sku, sku))}}); err != nil {
			t.Fatal(err)
		}
	}
	return shop
}

func orderFlow(entity string, doc recipe.Document) recipe.Flow {
	doc.Customer, doc.Product, doc.Invoice = shopCaps["customer"], shopCaps["product"], shopCaps["invoice"]
	return recipe.Flow{Target: "erp", Entity: entity, Caps: shopCaps[entity], Duplicates: recipe.DuplicateSkip, Document: &doc}
}

func order(key, email, company string, skus ...string) connector.Record {
	var lines []string
	for _, sku := range skus {
		lines = append(lines, fmt.Sprintf(`{"sku":%q,"quantity":1,"price":9.5}`, sku))
	}
	customer := fmt.Sprintf(`{"email":%q,"name":"Jane Doe"}`, email)
	if company != "" {
		customer = fmt.Sprintf(`{"email":%q,"name":"Jane Doe","company":%q}`, email, company)
	}
	if email == "" {
		customer = "null"
	}
	return connector.Record{Key: key, Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(fmt.Sprintf(
		`{"number":"SO-%s","customer":%s,"billing_address":{"name":"Jane Doe","street":"Main St 1","postcode":"10117","city":"Berlin","country":"DE"},"lines":[%s]}`,
		key, customer, strings.Join(lines, ",")))}
}

func customersOf(shop connectortest.Multi) []map[string]any {
	var out []map[string]any
	keys, _ := shop["customer"].Keys(context.Background(), "customer")
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		out = append(out, shop["customer"].Records(k)...)
	}
	return out
}

// TestOrderRecipe runs each rule of the order recipe and checks what the target holds after
// it: customers, orders and what each order was written with.
func TestOrderRecipe(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		doc  recipe.Document
		// before writes what the ERP holds before the orders come.
		before  func(t *testing.T, shop connectortest.Multi)
		records []connector.Record
		// want is each record's action and code.
		want []string
		// customers and orders the ERP holds after.
		customers, orders int
		check             func(t *testing.T, shop connectortest.Multi, got []recipe.Outcome)
	}{
		{name: "a new person customer is made, then the order with its refs",
			doc:     recipe.Document{State: "confirmed"},
			records: []connector.Record{order("1", "Jane@Example.com", "", "A", "B")},
			want:    []string{"created"}, customers: 1, orders: 1,
			check: func(t *testing.T, shop connectortest.Multi, got []recipe.Outcome) {
				c := customersOf(shop)[0]
				if c["email"] != "jane@example.com" || c["name"] != "Jane Doe" || c["company"] != nil || c["billing_address"] == nil {
					t.Errorf("customer %v, want a person jane@example.com with the billing address", c)
				}
				refs, state := shop["order"].Document("1")
				if state != "confirmed" || refs[connector.RefCustomer] == "" || refs[connector.RefSKU("A")] == "" || refs[connector.RefSKU("B")] == "" {
					t.Errorf("order written with refs %v state %q", refs, state)
				}
			}},
		{name: "a company name makes a company customer with the person as its contact",
			records: []connector.Record{order("1", "jane@doe.example", "Doe Trading GmbH", "A")},
			want:    []string{"created"}, customers: 1, orders: 1,
			check: func(t *testing.T, shop connectortest.Multi, _ []recipe.Outcome) {
				if c := customersOf(shop)[0]; c["company"] != "Doe Trading GmbH" || c["name"] != "Jane Doe" {
					t.Errorf("customer %v, want the company with Jane Doe", c)
				}
			}},
		{name: "an existing customer is found by e-mail in any case and updated with what the order knows",
			before: func(t *testing.T, shop connectortest.Multi) {
				write(t, shop, "customer", connector.Write{Op: connector.WriteCreate, Key: "c-42", Payload: json.RawMessage(`{"email":"jane@example.com","name":"Jane"}`)})
			},
			records: []connector.Record{order("1", "JANE@example.com", "", "A")},
			want:    []string{"created"}, customers: 1, orders: 1,
			check: func(t *testing.T, shop connectortest.Multi, _ []recipe.Outcome) {
				recs := shop["customer"].Records("c-42")
				if len(recs) != 1 || recs[0]["name"] != "Jane Doe" {
					t.Errorf("customer c-42 is %v, want it updated to Jane Doe", recs)
				}
			}},
		{name: "a missing SKU fails the order naming every missing one, and writes nothing",
			records: []connector.Record{order("1", "jane@example.com", "", "A", "ZZ-9", "Y-1", "B")},
			want:    []string{"failed unknown_product"}, customers: 0, orders: 0,
			check: func(t *testing.T, _ connectortest.Multi, got []recipe.Outcome) {
				if !strings.Contains(got[0].Reason, "SKU Y-1, ZZ-9,") || !strings.Contains(got[0].Reason, "nothing of the order was written") {
					t.Errorf("reason %q, want both missing SKUs named", got[0].Reason)
				}
			}},
		{name: "of two orders in a batch, only the one with a missing SKU fails",
			records: []connector.Record{order("1", "jane@example.com", "", "A"), order("2", "john@example.com", "", "NOPE")},
			want:    []string{"created", "failed unknown_product"}, customers: 1, orders: 1},
		{name: "an order in the target that the ledger does not know is kept under the skip policy",
			before: func(t *testing.T, shop connectortest.Multi) {
				write(t, shop, "order", connector.Write{Op: connector.WriteCreate, Key: "1", Payload: json.RawMessage(`{"number":"SO-1"}`)})
			},
			records: []connector.Record{order("1", "jane@example.com", "", "A")},
			want:    []string{"skipped duplicate"}, customers: 0, orders: 1},
		{name: "the default customer takes every order, and no customer is made",
			doc: recipe.Document{DefaultCustomer: "pos@shop.example"},
			before: func(t *testing.T, shop connectortest.Multi) {
				write(t, shop, "customer", connector.Write{Op: connector.WriteCreate, Key: "pos", Payload: json.RawMessage(`{"email":"pos@shop.example","name":"Cash sales"}`)})
			},
			records: []connector.Record{order("1", "jane@example.com", "", "A"), order("2", "", "", "B")},
			want:    []string{"created", "created"}, customers: 1, orders: 2,
			check: func(t *testing.T, shop connectortest.Multi, _ []recipe.Outcome) {
				pos, _ := shop["customer"].Find(context.Background(), "customer", connector.FieldExternalRef, []string{"pos"})
				for _, k := range []string{"1", "2"} {
					if refs, _ := shop["order"].Document(k); refs[connector.RefCustomer] != pos[0].ID {
						t.Errorf("order %s booked on %q, want the default customer %s", k, refs[connector.RefCustomer], pos[0].ID)
					}
				}
			}},
		{name: "a default customer the target does not have fails the order, naming it",
			doc:     recipe.Document{DefaultCustomer: "pos@shop.example"},
			records: []connector.Record{order("1", "jane@example.com", "", "A")},
			want:    []string{"failed no_customer"}, customers: 0, orders: 0},
		{name: "an order without a customer and no default customer fails",
			records: []connector.Record{order("1", "", "", "A")},
			want:    []string{"failed no_customer"}, customers: 0, orders: 0},
		{name: "an invoice-type order the target cannot take is refused, naming the map to set",
			records: []connector.Record{withType(order("1", "jane@example.com", "", "A"), "invoice")},
			want:    []string{"failed target_rejected"}, customers: 0, orders: 0,
			check: func(t *testing.T, _ connectortest.Multi, got []recipe.Outcome) {
				if !strings.Contains(got[0].Reason, "spec.document.types, e.g. invoice: order") {
					t.Errorf("reason %q, want the type map named", got[0].Reason)
				}
			}},
		{name: "an invoice-type order mapped onto an order is written as an order",
			doc:     recipe.Document{Types: map[string]string{"invoice": "order"}},
			records: []connector.Record{withType(order("1", "jane@example.com", "", "A"), "invoice")},
			want:    []string{"created"}, customers: 1, orders: 1,
			check: func(t *testing.T, shop connectortest.Multi, _ []recipe.Outcome) {
				if o := shop["order"].Records("1")[0]; o["type"] != "order" {
					t.Errorf("order written with type %v, want order", o["type"])
				}
			}},
		{name: "orders of one new customer in one batch make one customer",
			records: []connector.Record{order("1", "jane@example.com", "", "A"), order("2", "Jane@Example.com", "", "B"), order("3", "jane@example.com", "", "A")},
			want:    []string{"created", "created", "created"}, customers: 1, orders: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop := newShop(t, "A", "B")
			if tt.before != nil {
				tt.before(t, shop)
			}
			got, err := recipe.Run(ctx, shop, orderFlow("order", tt.doc), tt.records)
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
			if n := shop["customer"].Len(); n != tt.customers {
				t.Errorf("%d customers, want %d: %v", n, tt.customers, customersOf(shop))
			}
			if n := shop["order"].Len(); n != tt.orders {
				t.Errorf("%d orders, want %d", n, tt.orders)
			}
			if tt.check != nil {
				tt.check(t, shop, got)
			}
		})
	}
}

func withType(r connector.Record, typ string) connector.Record {
	var m map[string]any
	_ = json.Unmarshal(r.Payload, &m)
	m["type"] = typ
	r.Payload, _ = json.Marshal(m)
	return r
}

func write(t *testing.T, target connector.Target, entity string, w connector.Write) {
	t.Helper()
	res, err := target.Write(context.Background(), entity, []connector.Write{w})
	if err != nil || res[0].Err != nil {
		t.Fatalf("writing %s %s: %v %v", entity, w.Key, err, res)
	}
}

// faulty fails the first write of one entity as an outage, as a crash or a lost connection
// between two steps of the recipe would.
type faulty struct {
	connector.Target
	entity string
	fails  atomic.Int32
	// slowFind widens the gap between a lookup and the write after it.
	slowFind time.Duration
}

func (f *faulty) Find(ctx context.Context, entity, field string, values []string) ([]connector.Found, error) {
	found, err := f.Target.Find(ctx, entity, field, values)
	if entity == "customer" {
		// The answer is late: what it says may have changed meanwhile.
		time.Sleep(f.slowFind)
	}
	return found, err
}

func (f *faulty) Write(ctx context.Context, entity string, writes []connector.Write) ([]connector.Result, error) {
	if entity == f.entity && f.fails.Add(-1) >= 0 {
		return nil, errors.New("connection reset by peer")
	}
	return f.Target.Write(ctx, entity, writes)
}

// TestOrderAfterAFaultBetweenCustomerAndOrder: the recipe stops after it made the customer
// and before the order; delivered again, the order finds the customer the first delivery
// made, and the target holds one customer and one order.
func TestOrderAfterAFaultBetweenCustomerAndOrder(t *testing.T) {
	ctx := context.Background()
	shop := newShop(t, "A")
	target := &faulty{Target: shop, entity: "order"}
	target.fails.Store(1)
	f := orderFlow("order", recipe.Document{})
	rec := order("1", "jane@example.com", "", "A")
	if _, err := recipe.Run(ctx, target, f, []connector.Record{rec}); err == nil {
		t.Fatal("the push with the fault succeeded")
	}
	if shop["customer"].Len() != 1 || shop["order"].Len() != 0 {
		t.Fatalf("after the fault: %d customers, %d orders; want the customer alone", shop["customer"].Len(), shop["order"].Len())
	}
	got, err := recipe.Run(ctx, target, f, []connector.Record{rec})
	if err != nil || got[0].Action != recipe.Created {
		t.Fatalf("redelivery: %v %+v", err, got)
	}
	// And once more, as a redelivery of a push whose ack was lost: the target holds the
	// order as this delivery would write it, so it counts as created, and nothing is
	// written.
	got, err = recipe.Run(ctx, target, f, []connector.Record{rec})
	if err != nil || got[0].Action != recipe.Created {
		t.Fatalf("third delivery: %v %+v, want it found as written", err, got)
	}
	if shop["customer"].Len() != 1 || shop["order"].Len() != 1 {
		t.Errorf("after redelivery: %d customers, %d orders; want 1 and 1", shop["customer"].Len(), shop["order"].Len())
	}
}

// TestConcurrentOrdersOfOneNewCustomer pushes orders of one new customer from many
// goroutines at once, as partitions do, each order its own push: one customer is made. The
// lookups are slowed so that, without the customer's lock, two pushes would both miss it.
func TestConcurrentOrdersOfOneNewCustomer(t *testing.T) {
	ctx := context.Background()
	shop := newShop(t, "A", "B")
	target := &faulty{Target: shop, slowFind: 5 * time.Millisecond}
	f := orderFlow("order", recipe.Document{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			got, err := recipe.Run(ctx, target, f, []connector.Record{order(fmt.Sprint(i), "new@example.com", "", "A", "B")})
			if err != nil || got[0].Action != recipe.Created {
				t.Errorf("order %d: %v %+v", i, err, got)
			}
		})
	}
	wg.Wait()
	if n := shop["customer"].Len(); n != 1 {
		t.Errorf("%d customers for one e-mail, want 1: %v", n, customersOf(shop))
	}
	if n := shop["order"].Len(); n != 8 {
		t.Errorf("%d orders, want 8", n)
	}
}

// TestOrderPlanWritesNothing: flow test's plan resolves SKUs and the customer but makes
// neither the customer nor the order.
func TestOrderPlanWritesNothing(t *testing.T) {
	shop := newShop(t, "A")
	f := orderFlow("order", recipe.Document{})
	steps, err := recipe.Plan(context.Background(), shop, f, []connector.Record{order("1", "jane@example.com", "", "A"), order("2", "jane@example.com", "", "X")})
	if err != nil {
		t.Fatal(err)
	}
	if steps[0].Action != recipe.Created || steps[1].Code != recipe.CodeUnknownProduct {
		t.Errorf("plan %+v, want a create and an unknown product", steps)
	}
	if shop["customer"].Len() != 0 || shop["order"].Len() != 0 {
		t.Errorf("the plan wrote %d customers, %d orders", shop["customer"].Len(), shop["order"].Len())
	}
}

// TestPaymentFindsItsInvoice: a payment is written with the id of the invoice it settles; one
// whose invoice is not in the target fails, naming it; written twice, it is recorded once.
func TestPaymentFindsItsInvoice(t *testing.T) {
	ctx := context.Background()
	shop := newShop(t)
	write(t, shop, "invoice", connector.Write{Op: connector.WriteCreate, Key: "inv-1", Payload: json.RawMessage(`{"number":"INV-1"}`)})
	f := orderFlow("payment", recipe.Document{})
	pay := func(key, invoice string) connector.Record {
		return connector.Record{Key: key, Op: connector.OpUpsert, Create: true, Version: 1,
			Payload: json.RawMessage(fmt.Sprintf(`{"reference":%q,"amount":10,"currency":"EUR","invoice":%q}`, key, invoice))}
	}
	got, err := recipe.Run(ctx, shop, f, []connector.Record{pay("PAY-1", "INV-1"), pay("PAY-2", "INV-404")})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Action != recipe.Created || got[1].Code != recipe.CodeUnknownInvoice || !strings.Contains(got[1].Reason, "no invoice INV-404") {
		t.Errorf("outcomes %+v", got)
	}
	inv, _ := shop.Find(ctx, "invoice", connector.FieldNumber, []string{"INV-1"})
	if refs, _ := shop["payment"].Document("PAY-1"); refs[connector.RefInvoice] != inv[0].ID {
		t.Errorf("payment refs %v, want invoice %s", refs, inv[0].ID)
	}
	if got, err := recipe.Run(ctx, shop, f, []connector.Record{pay("PAY-1", "INV-1")}); err != nil || got[0].Action != recipe.Created {
		t.Errorf("the payment again: %v %+v, want it found as written", err, got)
	}
	changed := pay("PAY-1", "INV-1")
	changed.Payload = json.RawMessage(`{"reference":"PAY-1","amount":12,"currency":"EUR","invoice":"INV-1"}`)
	if got, err := recipe.Run(ctx, shop, f, []connector.Record{changed}); err != nil || got[0].Action != recipe.Skipped || got[0].Code != recipe.CodeDuplicate {
		t.Errorf("a changed payment of the same reference: %v %+v, want it kept as a duplicate", err, got)
	}
	if n := shop["payment"].Len(); n != 1 {
		t.Errorf("%d payments, want 1", n)
	}
}

// TestInvoiceFindsItsPartyByName: a purchase invoice's supplier without an e-mail is found
// by name, and made when it is not there.
func TestInvoiceFindsItsPartyByName(t *testing.T) {
	ctx := context.Background()
	shop := newShop(t, "A")
	f := orderFlow("invoice", recipe.Document{})
	rec := func(key string) connector.Record {
		return connector.Record{Key: key, Op: connector.OpUpsert, Create: true, Version: 1,
			Payload: json.RawMessage(fmt.Sprintf(`{"number":%q,"kind":"purchase","party":{"name":"Paper Mill Ltd"},"lines":[{"sku":"A","quantity":1,"price":2},{"description":"Freight","quantity":1,"price":5}]}`, key))}
	}
	got, err := recipe.Run(ctx, shop, f, []connector.Record{rec("R-1")})
	if err != nil || got[0].Action != recipe.Created {
		t.Fatalf("%v %+v", err, got)
	}
	if got, err = recipe.Run(ctx, shop, f, []connector.Record{rec("R-2")}); err != nil || got[0].Action != recipe.Created {
		t.Fatalf("%v %+v", err, got)
	}
	if n := shop["customer"].Len(); n != 1 {
		t.Errorf("%d parties, want the supplier once: %v", n, customersOf(shop))
	}
}

// TestCheckNamesWhatADocumentFlowLacks: the control plane refuses a document flow whose target
// lacks what the recipe needs, or whose state or type map it cannot take.
func TestCheckNamesWhatADocumentFlowLacks(t *testing.T) {
	f := orderFlow("order", recipe.Document{State: "posted", Types: map[string]string{"order": "invoice"}})
	f.Document.Product = connector.Capabilities{Entity: "product"}
	err := recipe.Check(f)
	for _, want := range []string{"the document state posted", "orders of type invoice", "finding products by SKU"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check: %v; want it to name %q", err, want)
		}
	}
	if err := recipe.Check(orderFlow("order", recipe.Document{State: "confirmed"})); err != nil {
		t.Errorf("a flow the target serves: %v", err)
	}
}

// TestRecordsMadeElsewhereAreMatched: a customer flow finds by e-mail the customer an order
// made (whose external reference is the e-mail), and a product flow finds by SKU a product
// made in the target by hand: each is updated, never made a second time, also once the
// ledger knows it.
func TestRecordsMadeElsewhereAreMatched(t *testing.T) {
	ctx := context.Background()
	shop := newShop(t, "A")
	if got, err := recipe.Run(ctx, shop, orderFlow("order", recipe.Document{}), []connector.Record{order("1", "jane@example.com", "", "A")}); err != nil || got[0].Action != recipe.Created {
		t.Fatalf("the order: %v %+v", err, got)
	}
	customers := recipe.Flow{Target: "erp", Entity: "customer", Caps: shopCaps["customer"], Duplicates: recipe.DuplicateUpdate, MatchBy: connector.FieldEmail}
	rec := connector.Record{Key: "C-42", Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(`{"email":"Jane@Example.com","name":"Jane Doe","phone":"+49 30 1"}`)}
	got, err := recipe.Run(ctx, shop, customers, []connector.Record{rec})
	if err != nil || got[0].Action != recipe.Updated {
		t.Fatalf("the customer flow: %v %+v, want the order's customer updated", err, got)
	}
	rec.Create, rec.TargetID = false, got[0].TargetID
	if got, err = recipe.Run(ctx, shop, customers, []connector.Record{rec}); err != nil || got[0].Action != recipe.Updated {
		t.Fatalf("the customer flow again, known to the ledger: %v %+v", err, got)
	}
	if n := shop["customer"].Len(); n != 1 {
		t.Errorf("%d customers, want 1: %v", n, customersOf(shop))
	}

	products := recipe.Flow{Target: "erp", Entity: "product", Caps: shopCaps["product"], Duplicates: recipe.DuplicateUpdate, MatchBy: connector.FieldSKU}
	// Product A was made "by hand" as p-A; the flow's key for it is the shop's id.
	prod := connector.Record{Key: "shop-17", Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(`{"sku":"A","name":"Cup"}`)}
	if got, err = recipe.Run(ctx, shop, products, []connector.Record{prod}); err != nil || got[0].Action != recipe.Updated {
		t.Fatalf("the product flow: %v %+v, want product A updated", err, got)
	}
	// Another case of a SKU is another product.
	other := connector.Record{Key: "shop-18", Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(`{"sku":"a","name":"Small cup"}`)}
	if got, err = recipe.Run(ctx, shop, products, []connector.Record{other}); err != nil || got[0].Action != recipe.Created {
		t.Fatalf("product a: %v %+v, want it created", err, got)
	}
	if n := shop["product"].Len(); n != 2 {
		t.Errorf("%d products, want 2", n)
	}
}

// TestDocumentLeftShortIsTakenOn: a write that stopped between making a document and taking it
// to the flow's state (a sale made but not confirmed) leaves it short; delivered again, the
// recipe finds it by its external reference and takes it on, writing no field, under the skip
// policy too. A document in a state the flow does not name (past them all) is left alone.
func TestDocumentLeftShortIsTakenOn(t *testing.T) {
	ctx := context.Background()
	shop := newShop(t, "A")
	rec := order("1", "jane@example.com", "", "A")
	// The first delivery got as far as a draft.
	if got, err := recipe.Run(ctx, shop, orderFlow("order", recipe.Document{State: "draft"}), []connector.Record{rec}); err != nil || got[0].Action != recipe.Created {
		t.Fatalf("first delivery: %v %+v", err, got)
	}
	confirmed := orderFlow("order", recipe.Document{State: "confirmed"})
	got, err := recipe.Run(ctx, shop, confirmed, []connector.Record{rec})
	if err != nil || got[0].Action != recipe.Created {
		t.Fatalf("redelivery: %v %+v, want the order created (taken on)", err, got)
	}
	if _, state := shop["order"].Document("1"); state != "confirmed" || shop["order"].Len() != 1 {
		t.Errorf("the order is %q, %d of them; want one, confirmed", state, shop["order"].Len())
	}
	// Past the flow's states: left as it is.
	write(t, shop, "order", connector.Write{Op: connector.WriteUpdate, Key: "1", ID: got[0].TargetID, Payload: json.RawMessage(`{}`), State: "processing"})
	if got, err = recipe.Run(ctx, shop, confirmed, []connector.Record{rec}); err != nil || got[0].Action == recipe.Failed {
		t.Fatalf("the order past the flow's states: %v %+v", err, got)
	}
	if _, state := shop["order"].Document("1"); state != "processing" {
		t.Errorf("an order past the flow's states became %q", state)
	}
}
