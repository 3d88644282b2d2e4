package tryton

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
	"github.com/syncline/syncline/pkg/connector"
)

// orderFixture is a database holding what orders refer to, written through the target as
// the customer and product flows write it: a customer with a billing and a shipping
// address, a simple product, a product with variants, and a product without an
// accounting category (which Tryton cannot invoice).
type orderFixture struct {
	tg    *Target
	db    *trytontest.Database
	party string
	// templates and variants are the ids of each SKU's template and variant.
	templates map[string]string
	variants  map[string]int64
	// addresses are the party's address ids by street.
	addresses map[string]int64
}

func newOrderFixture(t *testing.T) *orderFixture {
	t.Helper()
	tg, db := open(t, nil)
	f := &orderFixture{tg: tg, db: db, templates: map[string]string{}, variants: map[string]int64{}, addresses: map[string]int64{}}
	f.party = write(t, tg, EntityCustomer, create("c-1", `{"email":"max@example.com","name":"Max Mustermann",
		"billing_address":{"street":"Ring","house_number":"1","postcode":"10115","city":"Berlin","country":"DE"},
		"shipping_address":{"street":"Lindenweg","house_number":"5","postcode":"80331","city":"München","country":"DE"}}`))
	mug := write(t, tg, EntityProduct, create("p-1", `{"sku":"MUG-001","name":"Coffee Mug","price":9.9}`))
	shirt := write(t, tg, EntityProduct, create("p-2", `{"sku":"TSHIRT-","name":"T-Shirt","price":19.9,
		"variants":[{"sku":"TSHIRT-S","attributes":{"size":"S"}},{"sku":"TSHIRT-M","attributes":{"size":"M"}}]}`))
	noCategory := openOn(t, db, func(s *Settings) { s.AccountCategory = "" })
	nocat := write(t, noCategory, EntityProduct, create("p-3", `{"sku":"NOCAT-1","name":"Uncategorised","price":5}`))
	for sku, id := range map[string]string{"MUG-001": mug, "TSHIRT-": shirt, "TSHIRT-S": shirt, "TSHIRT-M": shirt, "NOCAT-1": nocat} {
		f.templates[sku] = id
	}
	var vs []struct {
		ID   int64  `json:"id"`
		Code string `json:"code"`
	}
	db.Call(t, &vs, "model.product.product.search_read", []any{}, 0, nil, nil, []string{"code"}, map[string]any{})
	for _, v := range vs {
		f.variants[v.Code] = v.ID
	}
	var addrs []struct {
		ID     int64  `json:"id"`
		Street string `json:"street"`
	}
	db.Call(t, &addrs, "model.party.address.search_read", []any{[]any{"party", "=", atoi(t, f.party)}}, 0, nil, nil, []string{"street"}, map[string]any{})
	for _, a := range addrs {
		f.addresses[a.Street] = a.ID
	}
	return f
}

// refs are the Refs the order recipe gives a write of an order with the fixture's customer
// and every SKU Find(product, sku) knows.
func (f *orderFixture) refs() map[string]string {
	refs := map[string]string{connector.RefCustomer: f.party}
	for sku, id := range f.templates {
		refs[connector.RefSKU(sku)] = id
	}
	return refs
}

func (f *orderFixture) create(key, state, payload string) connector.Write {
	return connector.Write{Op: connector.WriteCreate, Key: key, Payload: json.RawMessage(payload), Refs: f.refs(), State: state}
}

func (f *orderFixture) update(key, id, state, payload string) connector.Write {
	return connector.Write{Op: connector.WriteUpdate, Key: key, ID: id, Payload: json.RawMessage(payload), Refs: f.refs(), State: state}
}

// writeOne writes one order and returns its result; an outage fails the test.
func (f *orderFixture) writeOne(t *testing.T, w connector.Write) connector.Result {
	t.Helper()
	res, err := f.tg.Write(context.Background(), EntityOrder, []connector.Write{w})
	if err != nil {
		t.Fatalf("writing order %s: %v", w.Key, err)
	}
	return res[0]
}

// saleBack is a sale as Tryton's own API answers it.
type saleBack struct {
	State           string    `json:"state"`
	Number          *string   `json:"number"`
	Reference       string    `json:"reference"`
	Description     string    `json:"description"`
	Comment         string    `json:"comment"`
	Party           int64     `json:"party"`
	InvoiceAddress  int64     `json:"invoice_address"`
	ShipmentAddress int64     `json:"shipment_address"`
	Warehouse       int64     `json:"warehouse"`
	SaleDate        dateValue `json:"sale_date"`
	Currency        struct {
		Code string `json:"code"`
	} `json:"currency."`
	PaymentTerm *struct {
		Name string `json:"name"`
	} `json:"payment_term."`
	Invoices  []int64 `json:"invoices"`
	Shipments []int64 `json:"shipments"`
}

type lineBack struct {
	ID        int64   `json:"id"`
	Product   int64   `json:"product"`
	Quantity  float64 `json:"quantity"`
	UnitPrice struct {
		Decimal string `json:"decimal"`
	} `json:"unit_price"`
	Unit        int64   `json:"unit"`
	Taxes       []int64 `json:"taxes"`
	Description string  `json:"description"`
}

func (f *orderFixture) sale(t *testing.T, id string) (saleBack, []lineBack) {
	t.Helper()
	var sales []saleBack
	f.db.Call(t, &sales, "model.sale.sale.read", []int64{atoi(t, id)}, []string{"state", "number", "reference", "description", "comment",
		"party", "invoice_address", "shipment_address", "warehouse", "sale_date", "currency.code", "payment_term.name", "invoices", "shipments"},
		map[string]any{"company": 1})
	var lines []lineBack
	f.db.Call(t, &lines, "model.sale.line.search_read", []any{[]any{"sale", "=", atoi(t, id)}}, 0, nil, [][]string{{"id", "ASC"}},
		[]string{"product", "quantity", "unit_price", "unit", "taxes", "description"}, map[string]any{"company": 1})
	return sales[0], lines
}

func (f *orderFixture) saleCount(t *testing.T) int {
	t.Helper()
	var n int
	f.db.Call(t, &n, "model.sale.sale.search_count", []any{}, map[string]any{"company": 1})
	return n
}

// orderPayload is a canonical order of a mug and a T-shirt in size M, to be shipped to
// the customer's shipping address, ordered on March 1st of this year in New York late in
// the evening (already March 2nd in UTC).
func orderPayload(number string) string {
	return fmt.Sprintf(`{"number":%q,"type":"order","status":"paid","currency":"EUR","ordered_at":"%d-03-01T23:30:00-05:00",
		"customer":{"email":"max@example.com","name":"Max Mustermann"},
		"billing_address":{"street":"Ring","house_number":"1","postcode":"10115","city":"Berlin","country":"DE"},
		"shipping_address":{"street":"Lindenweg","house_number":"5","postcode":"80331","city":"München","country":"DE"},
		"payment_term":"Net 30","payment_method":"paypal","employee_number":"999999","note":"Please ring twice.",
		"lines":[{"sku":"MUG-001","quantity":2,"price":9.9,"tax_rate":19},{"sku":"TSHIRT-M","quantity":1,"price":19.95,"description":"T-Shirt, M"}],
		"totals":{"net":39.75,"tax":7.55,"gross":47.3}}`, number, time.Now().Year())
}

// TestOrderCreate writes an order as a draft, a quotation and a confirmed sale, and reads
// each back over Tryton's own API.
func TestOrderCreate(t *testing.T) {
	f := newOrderFixture(t)
	var warehouses []int64
	f.db.Call(t, &warehouses, "model.stock.location.search", []any{[]any{"code", "=", "WH"}}, 0, nil, nil, map[string]any{})
	for _, tc := range []struct {
		state string
		// want is the state Tryton reports; the sale has a number from quotation on, and an
		// invoice and a shipment once confirmed.
		want               string
		numbered, invoiced bool
	}{
		{"", "draft", false, false},
		{StateDraft, "draft", false, false},
		{StateQuotation, "quotation", true, false},
		{StateConfirmed, "processing", true, true},
	} {
		t.Run("state "+tc.state, func(t *testing.T) {
			key, number := "o-"+tc.state, "SO-"+tc.state
			res := f.writeOne(t, f.create(key, tc.state, orderPayload(number)))
			if res.Err != nil || res.TargetID == "" {
				t.Fatalf("create = %+v", res)
			}
			s, lines := f.sale(t, res.TargetID)
			if s.State != tc.want || (s.Number != nil) != tc.numbered || (len(s.Invoices) == 1 && len(s.Shipments) == 1) != tc.invoiced {
				t.Errorf("sale in state %s, number %v, invoices %v, shipments %v; want %s, numbered %v, invoiced and shipped %v",
					s.State, s.Number, s.Invoices, s.Shipments, tc.want, tc.numbered, tc.invoiced)
			}
			if s.Party != atoi(t, f.party) || s.Reference != number || s.Description != "syncline:"+key {
				t.Errorf("party %d, reference %q, description %q; want party %s, reference %s, description syncline:%s", s.Party, s.Reference, s.Description, f.party, number, key)
			}
			if s.InvoiceAddress != f.addresses["Ring 1"] || s.ShipmentAddress != f.addresses["Lindenweg 5"] {
				t.Errorf("invoice address %d, shipment address %d; want the billing address %d and the shipping address %d", s.InvoiceAddress, s.ShipmentAddress, f.addresses["Ring 1"], f.addresses["Lindenweg 5"])
			}
			if s.PaymentTerm == nil || s.PaymentTerm.Name != "Net 30" || s.Currency.Code != "EUR" || s.Warehouse != warehouses[0] {
				t.Errorf("payment term %+v, currency %s, warehouse %d; want Net 30, EUR, WH %d", s.PaymentTerm, s.Currency.Code, s.Warehouse, warehouses[0])
			}
			if want := (dateValue{Year: time.Now().Year(), Month: 3, Day: 1}); s.SaleDate != want {
				t.Errorf("sale date %+v, want %+v: the day the customer ordered, in their own time zone", s.SaleDate, want)
			}
			if want := "Payment method: paypal\nEmployee: 999999\nPlease ring twice."; s.Comment != want {
				t.Errorf("comment %q, want %q", s.Comment, want)
			}
			want := []lineBack{
				{Product: f.variants["MUG-001"], Quantity: 2, Unit: 1, Taxes: []int64{1}, Description: "Coffee Mug"},
				{Product: f.variants["TSHIRT-M"], Quantity: 1, Unit: 1, Taxes: []int64{1}, Description: "T-Shirt, M"},
			}
			want[0].UnitPrice.Decimal, want[1].UnitPrice.Decimal = "9.9", "19.95"
			for i := range min(len(lines), len(want)) {
				want[i].ID = lines[i].ID
			}
			if len(lines) != 2 || fmt.Sprint(lines) != fmt.Sprint(want) {
				t.Errorf("lines = %+v\nwant %+v (the T-shirt as variant TSHIRT-M, %d)", lines, want, f.variants["TSHIRT-M"])
			}

			// The same order again as an update (a replay under the duplicate policy
			// update, or the source sending it again): nothing to change, whatever the
			// sale's state, and nothing changed.
			if res := f.writeOne(t, f.update(key, res.TargetID, tc.state, orderPayload(number))); res.Err != nil {
				t.Fatalf("the same order as an update: %v", res.Err)
			}
			again, linesAgain := f.sale(t, res.TargetID)
			if !reflect.DeepEqual(again, s) || !reflect.DeepEqual(linesAgain, lines) {
				t.Errorf("after the same order as an update:\n%+v %+v\nwant\n%+v %+v", again, linesAgain, s, lines)
			}
		})
	}
}

// TestOrderRefusals: an order Tryton cannot take as a sale is refused alone, saying what and
// what to do, and leaves no sale behind, also when Tryton refuses only at confirming.
func TestOrderRefusals(t *testing.T) {
	f := newOrderFixture(t)
	homeless := write(t, f.tg, EntityCustomer, create("c-2", `{"email":"nobody@example.com","name":"No Address"}`))
	lines := func(skus ...string) string {
		var ls []string
		for _, s := range skus {
			ls = append(ls, fmt.Sprintf(`{"sku":%q,"quantity":1,"price":5}`, s))
		}
		return `{"number":"SO-9","lines":[` + strings.Join(ls, ",") + `]}`
	}
	for _, tc := range []struct {
		name  string
		write connector.Write
		want  []string
	}{
		{"unknown skus", f.create("o-1", "", lines("NOPE-1", "MUG-001", "NOPE-2")),
			[]string{`order "o-1": `, `sku "NOPE-1", "NOPE-2"`, "create the products first"}},
		{"the code of a product with variants", f.create("o-2", "", lines("TSHIRT-", "NOPE-3")),
			[]string{`sku "TSHIRT-" is the code of product template`, "(TSHIRT-S, TSHIRT-M)", "one variant's sku", `no product with the sku "NOPE-3"`}},
		{"unknown payment term", f.create("o-3", "", `{"number":"SO-9","payment_term":"14 days","lines":[{"sku":"MUG-001","quantity":1,"price":5}]}`),
			[]string{`no payment term "14 days"`, `"Net 30"`, "value map for payment_term", `create "14 days" in Tryton`}},
		{"unknown currency", f.create("o-4", "", `{"number":"SO-9","currency":"USD","lines":[{"sku":"MUG-001","quantity":1,"price":5}]}`),
			[]string{`currency with the code "USD"`}},
		{"unknown state", f.create("o-5", "shipped", lines("MUG-001")),
			[]string{`state "shipped"`, "draft, quotation, confirmed"}},
		{"no customer", connector.Write{Op: connector.WriteCreate, Key: "o-6", Payload: json.RawMessage(lines("MUG-001"))},
			[]string{`Write.Refs["customer"]`}},
		{"a customer id that is not Tryton's", connector.Write{Op: connector.WriteCreate, Key: "o-7", Payload: json.RawMessage(lines("MUG-001")), Refs: map[string]string{"customer": "max@example.com"}},
			[]string{`"max@example.com"`, "not a Tryton party id"}},
		{"a customer without an address", connector.Write{Op: connector.WriteCreate, Key: "o-8", Payload: json.RawMessage(lines("MUG-001")), Refs: map[string]string{"customer": homeless}},
			[]string{"party " + homeless + ", has no address", "billing address"}},
		{"a date that is not one", f.create("o-9", "", `{"number":"SO-9","ordered_at":"yesterday","lines":[{"sku":"MUG-001","quantity":1,"price":5}]}`),
			[]string{`ordered_at "yesterday"`}},
		{"an invoice", f.create("o-10", "", `{"number":"SO-9","type":"invoice","lines":[{"sku":"MUG-001","quantity":1,"price":5}]}`),
			[]string{`type "invoice"`, "document types"}},
		{"a product Tryton cannot invoice, confirmed", f.create("o-11", StateConfirmed, lines("NOCAT-1")),
			[]string{`There is no "Account Category" defined for "[NOCAT-1] Uncategorised"`, "removed again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.writeOne(t, tc.write)
			if res.Err == nil {
				t.Fatalf("written as %s, want it refused", res.TargetID)
			}
			t.Logf("refused: %v", res.Err)
			for _, w := range tc.want {
				if !strings.Contains(res.Err.Error(), w) {
					t.Errorf("refusal %q does not say %q", res.Err, w)
				}
			}
			if n := f.saleCount(t); n != 0 {
				t.Errorf("%d sales in Tryton after the refusal, want none", n)
			}
		})
	}
	// The same product sells as a draft: only invoicing needs the accounting category. Taking
	// that draft further fails the same way, and leaves it a draft, not confirmed without an
	// invoice and a shipment.
	res := f.writeOne(t, f.create("o-12", StateDraft, lines("NOCAT-1")))
	if res.Err != nil {
		t.Fatalf("a draft of a product without an accounting category: %v", res.Err)
	}
	id := res.TargetID
	res = f.writeOne(t, f.update("o-12", id, StateConfirmed, lines("NOCAT-1")))
	if res.Err == nil || !strings.Contains(res.Err.Error(), `There is no "Account Category"`) || !strings.Contains(res.Err.Error(), "sale "+id+" is draft") {
		t.Errorf("confirming the draft = %+v, want it refused with Tryton's message, saying the sale is a draft again", res)
	}
	if s, _ := f.sale(t, id); s.State != "draft" || len(s.Invoices) != 0 {
		t.Errorf("sale %s after the refused confirm: %s with invoices %v, want a draft without", id, s.State, s.Invoices)
	}
}

// TestOrderUpdate changes a draft sale (its header and its lines, which are replaced),
// takes it further, and refuses to change it once it is past draft, except with what it
// holds already.
func TestOrderUpdate(t *testing.T) {
	f := newOrderFixture(t)
	id := f.writeOne(t, f.create("o-1", "", orderPayload("SO-1"))).TargetID
	changed := `{"number":"SO-1","payment_term":"Net 14","note":"Leave at the door","lines":[{"sku":"TSHIRT-S","quantity":3,"price":18}]}`
	steps := []struct {
		name    string
		write   connector.Write
		refused []string
		// state and lines are what the sale holds afterwards.
		state string
		lines string
	}{
		{"a draft is changed and its lines replaced", f.update("o-1", id, "", changed), nil, "draft", "TSHIRT-S 3 18"},
		{"the same again, confirmed: only advanced", f.update("o-1", id, StateConfirmed, changed), nil, "processing", "TSHIRT-S 3 18"},
		{"the same once more: nothing to do", f.update("o-1", id, StateConfirmed, changed), nil, "processing", "TSHIRT-S 3 18"},
		{"a change past draft", f.update("o-1", id, StateConfirmed, strings.Replace(changed, `"quantity":3`, `"quantity":4`, 1)),
			[]string{`order "o-1": sale ` + id + ` (number `, "is processing in Tryton", "only a draft sale is changed", "credit note"}, "processing", "TSHIRT-S 3 18"},
		{"a sale deleted in Tryton", f.update("o-1", "999", "", changed), []string{"Tryton has no sale 999"}, "processing", "TSHIRT-S 3 18"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			res := f.writeOne(t, s.write)
			if len(s.refused) == 0 && res.Err != nil {
				t.Fatalf("update refused: %v", res.Err)
			}
			for _, w := range s.refused {
				if res.Err == nil || !strings.Contains(res.Err.Error(), w) {
					t.Errorf("update = %+v, want it refused saying %q", res, w)
				}
			}
			sale, lines := f.sale(t, id)
			var got []string
			for _, l := range lines {
				for code, v := range f.variants {
					if v == l.Product {
						got = append(got, fmt.Sprintf("%s %g %s", code, l.Quantity, l.UnitPrice.Decimal))
					}
				}
			}
			if sale.State != s.state || strings.Join(got, ", ") != s.lines {
				t.Errorf("sale %s with lines %v, want %s with %s", sale.State, got, s.state, s.lines)
			}
			if sale.PaymentTerm == nil || sale.PaymentTerm.Name != "Net 14" || sale.Comment != "Payment method: paypal\nEmployee: 999999\nLeave at the door" {
				t.Errorf("payment term %+v, comment %q: want Net 14 and the new note after the payment method and employee", sale.PaymentTerm, sale.Comment)
			}
		})
	}
}

// TestOrderFind finds sales by external reference and by the order's number, and reads
// them back in the canonical order shape.
func TestOrderFind(t *testing.T) {
	f := newOrderFixture(t)
	one := f.writeOne(t, f.create("o-1", StateQuotation, orderPayload("SO-1"))).TargetID
	two := f.writeOne(t, f.create("o-2", "", orderPayload("SO-2"))).TargetID
	for _, tc := range []struct {
		field  string
		values []string
		want   map[string]string // value -> sale id
	}{
		{connector.FieldExternalRef, []string{"o-1", "o-3"}, map[string]string{"o-1": one}},
		{connector.FieldExternalRef, []string{"o-1", "o-2"}, map[string]string{"o-1": one, "o-2": two}},
		{FieldNumber, []string{"SO-2", "SO-3"}, map[string]string{"SO-2": two}},
		{FieldNumber, []string{"o-1"}, map[string]string{}},
	} {
		t.Run(tc.field+" "+strings.Join(tc.values, " "), func(t *testing.T) {
			found := find(t, f.tg, EntityOrder, tc.field, tc.values...)
			got := map[string]string{}
			for _, x := range found {
				got[x.Value] = x.ID
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("found %v, want %v", got, tc.want)
			}
		})
	}
	found := find(t, f.tg, EntityOrder, FieldNumber, "SO-1")
	if len(found) != 1 {
		t.Fatalf("find SO-1 = %+v", found)
	}
	var fields, want map[string]any
	json.Unmarshal(found[0].Fields, &fields)
	json.Unmarshal([]byte(`{"number":"SO-1","currency":"EUR","customer":{"email":"max@example.com"},"payment_term":"Net 30",
		"payment_method":"paypal","employee_number":"999999","note":"Please ring twice.",
		"lines":[{"sku":"MUG-001","quantity":2,"price":9.9},{"sku":"TSHIRT-M","quantity":1,"price":19.95}],"state":"quotation"}`), &want)
	if fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Errorf("fields = %s\nwant %v", found[0].Fields, want)
	}
	if _, err := f.tg.Find(context.Background(), EntityOrder, FieldSKU, []string{"MUG-001"}); err == nil {
		t.Error("find by sku: no error")
	}
	if !slices.ContainsFunc(found, func(x connector.Found) bool { return x.ID == one }) {
		t.Errorf("SO-1 found as %+v, want sale %s", found, one)
	}
}
