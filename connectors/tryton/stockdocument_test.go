package tryton

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/recipe"
)

// stockDocs is a database holding what stock documents refer to, written through the target
// as the customer and product flows, and the document recipe, write it: a supplier and a
// customer as the recipe makes a document's party (a name, no address), a simple product
// with a cost price, a product with variants, and a service.
type stockDocs struct {
	tg                 *Target
	db                 *trytontest.Database
	supplier, customer string
	// templates and variants are the ids of each SKU's template and variant.
	templates map[string]string
	variants  map[string]int64
}

func newStockDocs(t *testing.T) *stockDocs {
	t.Helper()
	tg, db := open(t, nil)
	f := &stockDocs{tg: tg, db: db, templates: map[string]string{}, variants: map[string]int64{}}
	f.supplier = write(t, tg, EntityCustomer, create("name:paper mill ltd", `{"name":"Paper Mill Ltd"}`))
	f.customer = write(t, tg, EntityCustomer, create("email:max@example.com", `{"email":"max@example.com","name":"Max Mustermann"}`))
	mug := write(t, tg, EntityProduct, create("p-1", `{"sku":"MUG-001","name":"Coffee Mug","price":9.9}`))
	shirt := write(t, tg, EntityProduct, create("p-2", `{"sku":"TSHIRT-","name":"T-Shirt","price":19.9,
		"variants":[{"sku":"TSHIRT-S","attributes":{"size":"S"}},{"sku":"TSHIRT-M","attributes":{"size":"M"}}]}`))
	var svc []int64
	db.Call(t, &svc, "model.product.template.create", []any{map[string]any{"name": "Installation", "code": "SVC-1", "type": "service", "default_uom": 1,
		"list_price": decimal(50), "products": []any{[]any{"create", []any{map[string]any{}}}}}}, map[string]any{"company": 1})
	for sku, id := range map[string]string{"MUG-001": mug, "TSHIRT-": shirt, "TSHIRT-S": shirt, "TSHIRT-M": shirt, "SVC-1": fmt.Sprint(svc[0])} {
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
	db.Call(t, nil, "model.product.product.write", []int64{f.variants["MUG-001"]}, map[string]any{"cost_price": decimal(4.5)}, map[string]any{"company": 1})
	return f
}

// write writes one document of entity with the party and every SKU Find(product, sku)
// knows in its Refs, as the document recipe does; an outage fails the test.
func (f *stockDocs) write(t *testing.T, entity string, w connector.Write, party string) connector.Result {
	t.Helper()
	w.Refs = map[string]string{}
	if party != "" {
		w.Refs[connector.RefCustomer] = party
	}
	for sku, id := range f.templates {
		w.Refs[connector.RefSKU(sku)] = id
	}
	res, err := f.tg.Write(context.Background(), entity, []connector.Write{w})
	if err != nil {
		t.Fatalf("writing %s %s: %v", entity, w.Key, err)
	}
	return res[0]
}

func docCreate(key, state, payload string) connector.Write {
	return connector.Write{Op: connector.WriteCreate, Key: key, Payload: json.RawMessage(payload), State: state}
}

func docUpdate(key, id, state, payload string) connector.Write {
	return connector.Write{Op: connector.WriteUpdate, Key: key, ID: id, Payload: json.RawMessage(payload), State: state}
}

// onHand is the on-hand quantity of sku in the warehouse, as the stock adapter reads it.
func (f *stockDocs) onHand(t *testing.T, sku string) float64 {
	t.Helper()
	found := find(t, f.tg, EntityStock, FieldSKU, sku)
	if len(found) != 1 {
		t.Fatalf("the stock level of %s: %+v", sku, found)
	}
	var level struct {
		OnHand float64 `json:"on_hand"`
	}
	if err := json.Unmarshal(found[0].Fields, &level); err != nil {
		t.Fatal(err)
	}
	return level.OnHand
}

// setOnHand sets the on-hand quantity of sku through the stock adapter.
func (f *stockDocs) setOnHand(t *testing.T, sku string, q float64) {
	t.Helper()
	write(t, f.tg, EntityStock, create("stock-"+sku, fmt.Sprintf(`{"sku":%q,"on_hand":%v}`, sku, q)))
}

// recordBack is a stock record as Tryton's own API answers it: its fields, its moves (or
// lines) in one text each, and its notes.
type recordBack struct {
	State     string     `json:"state"`
	Number    string     `json:"number"`
	Reference string     `json:"reference"`
	Supplier  *int64     `json:"supplier"`
	Customer  *int64     `json:"customer"`
	Warehouse *int64     `json:"warehouse"`
	Address   *int64     `json:"delivery_address"`
	Location  *int64     `json:"location"`
	From      *int64     `json:"from_location"`
	To        *int64     `json:"to_location"`
	Effective *dateValue `json:"effective_date"`
	Date      *dateValue `json:"date"`
	Moves     []string   `json:"-"`
	Notes     []string   `json:"-"`
}

var recordFields = map[string][]string{
	"stock.shipment.in":         {"state", "number", "reference", "supplier", "warehouse", "effective_date"},
	"stock.shipment.out.return": {"state", "number", "reference", "customer", "warehouse", "delivery_address", "effective_date"},
	"stock.inventory":           {"state", "number", "location", "date"},
	"stock.shipment.internal":   {"state", "number", "reference", "from_location", "to_location", "effective_date"},
}

// place names a location by its code, else its type (Tryton's lost and found has no code).
func place(l *struct {
	Code *string `json:"code"`
	Type string  `json:"type"`
}) string {
	if l.Code != nil {
		return *l.Code
	}
	return l.Type
}

func (f *stockDocs) read(t *testing.T, model, id string) recordBack {
	t.Helper()
	ctx := map[string]any{"company": 1}
	var rows []recordBack
	f.db.Call(t, &rows, "model."+model+".read", []int64{atoi(t, id)}, recordFields[model], ctx)
	if len(rows) != 1 {
		t.Fatalf("%s %s: %d rows", model, id, len(rows))
	}
	r := rows[0]
	type location = struct {
		Code *string `json:"code"`
		Type string  `json:"type"`
	}
	if model == "stock.inventory" {
		var lines []struct {
			Product  *struct{ Code string } `json:"product."`
			Quantity float64                `json:"quantity"`
			Expected float64                `json:"expected_quantity"`
		}
		f.db.Call(t, &lines, "model.stock.inventory.line.search_read", []any{[]any{"inventory", "=", atoi(t, id)}}, 0, nil, [][]string{{"id", "ASC"}},
			[]string{"product.code", "quantity", "expected_quantity"}, ctx)
		for _, l := range lines {
			r.Moves = append(r.Moves, fmt.Sprintf("%s %v", l.Product.Code, l.Quantity))
		}
	} else {
		var moves []struct {
			Product   *struct{ Code string } `json:"product."`
			Quantity  float64                `json:"quantity"`
			UnitPrice *decimalValue          `json:"unit_price"`
			Currency  *struct{ Code string } `json:"currency."`
			From      *location              `json:"from_location."`
			To        *location              `json:"to_location."`
			State     string                 `json:"state"`
		}
		f.db.Call(t, &moves, "model.stock.move.search_read", []any{[]any{"shipment", "=", model + "," + id}}, 0, nil, [][]string{{"id", "ASC"}},
			[]string{"product.code", "quantity", "unit_price", "currency.code", "from_location.code", "from_location.type", "to_location.code", "to_location.type", "state"}, ctx)
		var putAway []string
		for _, m := range moves {
			s := fmt.Sprintf("%s %v %s>%s %s", m.Product.Code, m.Quantity, place(m.From), place(m.To), m.State)
			if m.UnitPrice != nil {
				s += fmt.Sprintf(" at %s %s", m.UnitPrice.Decimal, m.Currency.Code)
			}
			if place(m.From) == "IN" {
				putAway = append(putAway, s)
			} else {
				r.Moves = append(r.Moves, s)
			}
		}
		// The moves that put goods away come last, by product: Tryton makes them in an
		// order of its own.
		slices.Sort(putAway)
		r.Moves = append(r.Moves, putAway...)
	}
	var notes []struct {
		Message string `json:"message"`
	}
	f.db.Call(t, &notes, "model.ir.note.search_read", []any{[]any{"resource", "=", model + "," + id}}, 0, nil, [][]string{{"id", "ASC"}}, []string{"message"}, ctx)
	for _, n := range notes {
		r.Notes = append(r.Notes, n.Message)
	}
	return r
}

// count is the number of records of model in Tryton, and of notes on any of them.
func (f *stockDocs) count(t *testing.T, model string) (records, notes int) {
	t.Helper()
	f.db.Call(t, &records, "model."+model+".search_count", []any{}, map[string]any{"company": 1})
	f.db.Call(t, &notes, "model.ir.note.search_count", []any{[]any{"resource", "like", model + ",%"}}, map[string]any{})
	return records, notes
}

// TestGoodsReceiptAndOrderReturnStates writes a goods receipt and an order return in each
// state and reads them back over Tryton's own API: the shipment, its incoming moves (their
// locations, quantities, prices and states), the moves that put the goods away, its note,
// and the stock on hand, which grows once the shipment is done.
func TestGoodsReceiptAndOrderReturnStates(t *testing.T) {
	f := newStockDocs(t)
	day := thisYear("01-15")
	payload := func(number string) string {
		return fmt.Sprintf(`{"number":%q,"document_type":null,"date":%q,"reference":"PO-7","note":"Two boxes damaged.",
			"lines":[{"sku":"MUG-001","quantity":5},{"sku":"TSHIRT-M","quantity":2,"price":12.5,"description":"T-Shirt, M"}]}`, number, day)
	}
	for _, kind := range []struct {
		entity, model, party, from string
	}{
		{EntityGoodsReceipt, "stock.shipment.in", f.supplier, "SUP"},
		{EntityOrderReturn, "stock.shipment.out.return", f.customer, "CUS"},
	} {
		for _, tc := range []struct {
			state string
			// want is the shipment's state; incoming and putAway the states of the moves
			// from the party to the input zone and from there to storage ("" none).
			want, incoming, putAway string
		}{
			{"", "draft", "draft", ""},
			{StateDraft, "draft", "draft", ""},
			{StateReceived, "received", "done", "draft"},
			{StateDone, "done", "done", "done"},
		} {
			t.Run(kind.entity+" "+tc.state, func(t *testing.T) {
				key, number := kind.entity+"-"+tc.state, "N-"+kind.entity+"-"+tc.state
				mugs, shirts := f.onHand(t, "MUG-001"), f.onHand(t, "TSHIRT-M")
				res := f.write(t, kind.entity, docCreate(key, tc.state, payload(number)), kind.party)
				if res.Err != nil || res.TargetID == "" {
					t.Fatalf("create = %+v", res)
				}
				r := f.read(t, kind.model, res.TargetID)
				party := r.Supplier
				if kind.entity == EntityOrderReturn {
					party = r.Customer
				}
				if r.State != tc.want || party == nil || fmt.Sprint(*party) != kind.party || r.Reference != "syncline:"+key || r.Number == "" {
					t.Errorf("shipment %+v; want %s, party %s, reference syncline:%s and a number of Tryton's", r, tc.want, kind.party, key)
				}
				if r.Effective == nil || r.Effective.iso() != day {
					t.Errorf("effective date %v, want %s", r.Effective, day)
				}
				want := []string{
					fmt.Sprintf("MUG-001 5 %s>IN %s at 4.5 EUR", kind.from, tc.incoming),
					fmt.Sprintf("TSHIRT-M 2 %s>IN %s at 12.5 EUR", kind.from, tc.incoming),
				}
				if tc.putAway != "" {
					want = append(want, "MUG-001 5 IN>STO "+tc.putAway, "TSHIRT-M 2 IN>STO "+tc.putAway)
				}
				if !slices.Equal(r.Moves, want) {
					t.Errorf("moves %q\nwant %q (a line without a price at the product's cost price)", r.Moves, want)
				}
				if n := "Number: " + number + "\nReference: PO-7\nTwo boxes damaged."; !slices.Equal(r.Notes, []string{n}) {
					t.Errorf("notes %q, want %q", r.Notes, n)
				}
				if kind.entity == EntityOrderReturn {
					var addrs []int64
					f.db.Call(t, &addrs, "model.party.address.search", []any{[]any{"party", "=", atoi(t, kind.party)}}, 0, nil, nil, map[string]any{})
					if r.Address == nil || !slices.Contains(addrs, *r.Address) || len(addrs) != 1 {
						t.Errorf("delivery address %v, want the customer's one address of %v", r.Address, addrs)
					}
				}
				gained := 0.0
				if tc.want == StateDone {
					gained = 1
				}
				if m, s := f.onHand(t, "MUG-001"), f.onHand(t, "TSHIRT-M"); m != mugs+5*gained || s != shirts+2*gained {
					t.Errorf("on hand %v mugs and %v T-shirts, want %v and %v", m, s, mugs+5*gained, shirts+2*gained)
				}
			})
		}
	}
}

// TestInventoryCountStates counts the storage zone as a draft and as done, and a draft
// taken to done by an empty update after the stock changed meanwhile: on hand is what was
// counted.
func TestInventoryCountStates(t *testing.T) {
	f := newStockDocs(t)
	f.setOnHand(t, "MUG-001", 10)
	var storage []int64
	f.db.Call(t, &storage, "model.stock.location.search", []any{[]any{"code", "=", "STO"}}, 0, nil, nil, map[string]any{})
	// Without a date: Tryton's today. (A count dated earlier counts the stock of that day,
	// and what moved since stays on top of it.)
	draft := f.write(t, EntityInventoryCount, docCreate("ic-1", "", `{"number":"IC-1","lines":[{"sku":"MUG-001","quantity":6}]}`), "")
	if draft.Err != nil {
		t.Fatalf("create = %v", draft.Err)
	}
	// A draft is changed: its lines are replaced, its note written.
	count := `{"number":"IC-1","note":"Shelf A","lines":[{"sku":"MUG-001","quantity":7},{"sku":"TSHIRT-S","quantity":3,"price":99}]}`
	if res := f.write(t, EntityInventoryCount, docUpdate("ic-1", draft.TargetID, "", count), ""); res.Err != nil {
		t.Fatalf("update = %v", res.Err)
	}
	r := f.read(t, "stock.inventory", draft.TargetID)
	today := time.Now().Format(time.DateOnly)
	if r.State != "draft" || r.Location == nil || *r.Location != storage[0] || r.Date == nil || r.Date.iso() != today || r.Number == "" {
		t.Errorf("inventory %+v, want a draft of the storage zone %v on %s, numbered by Tryton", r, storage, today)
	}
	if !slices.Equal(r.Moves, []string{"MUG-001 7", "TSHIRT-S 3"}) || !slices.Equal(r.Notes, []string{"syncline:ic-1", "Number: IC-1\nShelf A"}) {
		t.Errorf("lines %q, notes %q", r.Moves, r.Notes)
	}
	if m, s := f.onHand(t, "MUG-001"), f.onHand(t, "TSHIRT-S"); m != 10 || s != 0 {
		t.Errorf("a draft count changed the stock: %v mugs, %v T-shirts", m, s)
	}

	// Meanwhile the stock changes; the count, done later, still sets what was counted.
	f.setOnHand(t, "MUG-001", 12)
	if res := f.write(t, EntityInventoryCount, docUpdate("ic-1", draft.TargetID, StateDone, `{}`), ""); res.Err != nil {
		t.Fatalf("taking the draft to done: %v", res.Err)
	}
	if r := f.read(t, "stock.inventory", draft.TargetID); r.State != "done" {
		t.Errorf("inventory %s, want done", r.State)
	}
	if m, s := f.onHand(t, "MUG-001"), f.onHand(t, "TSHIRT-S"); m != 7 || s != 3 {
		t.Errorf("on hand %v mugs, %v T-shirts after the count, want 7 and 3", m, s)
	}

	done := f.write(t, EntityInventoryCount, docCreate("ic-2", StateDone, `{"number":"IC-2","lines":[{"sku":"MUG-001","quantity":0}]}`), "")
	if done.Err != nil {
		t.Fatalf("create done = %v", done.Err)
	}
	if r := f.read(t, "stock.inventory", done.TargetID); r.State != "done" || !slices.Equal(r.Moves, []string{"MUG-001 0"}) {
		t.Errorf("inventory %s with lines %q, want done with MUG-001 0", r.State, r.Moves)
	}
	if m := f.onHand(t, "MUG-001"); m != 0 {
		t.Errorf("on hand %v mugs after counting none, want 0", m)
	}
}

// TestWriteOffStates writes goods off as a draft and as done, changes the draft and takes it
// on to done: the moves from the storage zone to lost and found, and on hand after each; a
// done write-off is not changed.
func TestWriteOffStates(t *testing.T) {
	f := newStockDocs(t)
	f.setOnHand(t, "MUG-001", 10)
	draft := f.write(t, EntityWriteOff, docCreate("wo-1", StateDraft, `{"number":"WO-1","reference":"Breakage","lines":[{"sku":"MUG-001","quantity":3}]}`), "")
	if draft.Err != nil {
		t.Fatalf("create draft = %v", draft.Err)
	}
	r := f.read(t, "stock.shipment.internal", draft.TargetID)
	if r.State != "draft" || r.Reference != "syncline:wo-1" || !slices.Equal(r.Moves, []string{"MUG-001 3 STO>lost_found draft"}) ||
		!slices.Equal(r.Notes, []string{"Number: WO-1\nReference: Breakage"}) {
		t.Errorf("write-off %+v", r)
	}
	if m := f.onHand(t, "MUG-001"); m != 10 {
		t.Errorf("a draft write-off took stock: on hand %v", m)
	}
	done := f.write(t, EntityWriteOff, docCreate("wo-2", StateDone, `{"number":"WO-2","lines":[{"sku":"MUG-001","quantity":4}]}`), "")
	if done.Err != nil {
		t.Fatalf("create done = %v", done.Err)
	}
	if r := f.read(t, "stock.shipment.internal", done.TargetID); r.State != "done" || !slices.Equal(r.Moves, []string{"MUG-001 4 STO>lost_found done"}) || r.Effective == nil {
		t.Errorf("write-off %+v, want done, its move done", r)
	}
	if m := f.onHand(t, "MUG-001"); m != 6 {
		t.Errorf("on hand %v after writing off 4 of 10, want 6", m)
	}
	day := thisYear("01-10")
	changed := fmt.Sprintf(`{"number":"WO-1","date":%q,"lines":[{"sku":"MUG-001","quantity":2}]}`, day)
	if res := f.write(t, EntityWriteOff, docUpdate("wo-1", draft.TargetID, "", changed), ""); res.Err != nil {
		t.Fatalf("changing the draft: %v", res.Err)
	}
	if r := f.read(t, "stock.shipment.internal", draft.TargetID); !slices.Equal(r.Moves, []string{"MUG-001 2 STO>lost_found draft"}) || r.Effective == nil || r.Effective.iso() != day ||
		!slices.Equal(r.Notes, []string{"Number: WO-1\nReference: Breakage"}) {
		t.Errorf("the changed draft: %+v", r)
	}
	if res := f.write(t, EntityWriteOff, docUpdate("wo-1", draft.TargetID, StateDone, `{}`), ""); res.Err != nil {
		t.Fatalf("taking the draft to done: %v", res.Err)
	}
	if r := f.read(t, "stock.shipment.internal", draft.TargetID); r.State != "done" {
		t.Errorf("write-off %s, want done", r.State)
	}
	if m := f.onHand(t, "MUG-001"); m != 4 {
		t.Errorf("on hand %v after writing off 2 more, want 4", m)
	}
	if res := f.write(t, EntityWriteOff, docUpdate("wo-1", draft.TargetID, StateDone, changed), ""); res.Err != nil {
		t.Errorf("the same write-off again, done: %v", res.Err)
	}
	res := f.write(t, EntityWriteOff, docUpdate("wo-1", draft.TargetID, StateDone, strings.Replace(changed, `"quantity":2`, `"quantity":1`, 1)), "")
	if res.Err == nil || !strings.Contains(res.Err.Error(), "is done in Tryton") || !strings.Contains(res.Err.Error(), "its stock has moved") {
		t.Errorf("a change of a done write-off: %+v, want it refused", res)
	}
}

// TestReceiptReturnInventoryWriteOffRefusals: a stock document Tryton cannot take is refused
// alone, saying what and what to do, and leaves nothing behind, also when Tryton refuses only
// at a later step.
func TestReceiptReturnInventoryWriteOffRefusals(t *testing.T) {
	f := newStockDocs(t)
	f.setOnHand(t, "MUG-001", 2)
	mug := `{"number":"D-1","lines":[{"sku":"MUG-001","quantity":1}]}`
	for _, tc := range []struct {
		name, entity, model string
		write               connector.Write
		party               string
		want                []string
	}{
		{"a receipt without party", EntityGoodsReceipt, "stock.shipment.in", docCreate("d-1", "", mug), "",
			[]string{`goods-receipt "d-1": `, "a goods receipt needs its party (the supplier)", `Write.Refs["customer"]`}},
		{"a return without party", EntityOrderReturn, "stock.shipment.out.return", docCreate("d-1", "", mug), "",
			[]string{"an order return needs its party (the customer)"}},
		{"a party that is not Tryton's", EntityOrderReturn, "stock.shipment.out.return", docCreate("d-1", "", mug), "max@example.com",
			[]string{`party "max@example.com"`, "not a Tryton party id"}},
		{"a sku no variant has", EntityGoodsReceipt, "stock.shipment.in",
			docCreate("d-1", "", `{"number":"D-1","lines":[{"sku":"MUG-001","quantity":1},{"sku":"NOPE-1","quantity":1}]}`), f.supplier,
			[]string{`no product with the sku "NOPE-1"`, "correct the goods receipt's skus"}},
		{"the code of a product with variants", EntityInventoryCount, "stock.inventory",
			docCreate("d-1", "", `{"number":"D-1","lines":[{"sku":"TSHIRT-","quantity":1}]}`), "",
			[]string{`sku "TSHIRT-" is the code of product template`, "(TSHIRT-S, TSHIRT-M)"}},
		{"a line without sku", EntityWriteOff, "stock.shipment.internal",
			docCreate("d-1", "", `{"number":"D-1","lines":[{"sku":"MUG-001","quantity":1},{"description":"Packing","quantity":1}]}`), "",
			[]string{`line 2 of write-off "D-1" has no sku`, "sku of its product"}},
		{"a line without sku in a receipt", EntityGoodsReceipt, "stock.shipment.in",
			docCreate("d-1", "", `{"number":"D-1","lines":[{"sku":null,"quantity":1,"price":3}]}`), f.supplier,
			[]string{`line 1 of goods receipt "D-1" has no sku`}},
		{"an unknown state", EntityGoodsReceipt, "stock.shipment.in", docCreate("d-1", "posted", mug), f.supplier,
			[]string{`state "posted"`, "draft, received, done", "spec.document.state"}},
		{"an unknown state of a count", EntityInventoryCount, "stock.inventory", docCreate("d-1", "received", mug), "",
			[]string{`state "received"`, "draft, done"}},
		{"a service", EntityOrderReturn, "stock.shipment.out.return",
			docCreate("d-1", "", `{"number":"D-1","lines":[{"sku":"SVC-1","quantity":1}]}`), f.customer,
			[]string{`line 1 of order return "D-1": the product of sku "SVC-1" is a service`}},
		{"no quantity", EntityWriteOff, "stock.shipment.internal",
			docCreate("d-1", "", `{"number":"D-1","lines":[{"sku":"MUG-001","quantity":0}]}`), "",
			[]string{"quantity 0", "above 0"}},
		{"a product counted twice", EntityInventoryCount, "stock.inventory",
			docCreate("d-1", "", `{"number":"D-1","lines":[{"sku":"MUG-001","quantity":1},{"sku":"MUG-001","quantity":2}]}`), "",
			[]string{`line 2 of inventory count "D-1" counts sku "MUG-001" again`}},
		{"no lines", EntityGoodsReceipt, "stock.shipment.in", docCreate("d-1", "", `{"number":"D-1","lines":[]}`), f.supplier,
			[]string{`goods receipt "D-1" has no lines`}},
		{"another document type", EntityGoodsReceipt, "stock.shipment.in",
			docCreate("d-1", "", `{"number":"D-1","document_type":"order-return","lines":[{"sku":"MUG-001","quantity":1}]}`), f.supplier,
			[]string{`type "order-return"`, "flow of its type"}},
		{"a date that is not one", EntityInventoryCount, "stock.inventory",
			docCreate("d-1", "", `{"number":"D-1","date":"yesterday","lines":[{"sku":"MUG-001","quantity":1}]}`), "",
			[]string{`date "yesterday"`}},
		{"more written off than is there", EntityWriteOff, "stock.shipment.internal",
			docCreate("d-1", StateDone, `{"number":"D-1","lines":[{"sku":"MUG-001","quantity":2},{"sku":"MUG-001","quantity":1}]}`), "",
			[]string{`holds only 2 of sku "MUG-001" (the write-off takes 3)`, "inventory count", "removed again"}},
		{"a count dated in the future, done", EntityInventoryCount, "stock.inventory",
			docCreate("d-1", StateDone, `{"number":"D-1","date":"2099-12-31","lines":[{"sku":"MUG-001","quantity":1}]}`), "",
			[]string{"dates in the future", "removed again"}},
		{"a receipt dated in the future, received", EntityGoodsReceipt, "stock.shipment.in",
			docCreate("d-1", StateReceived, `{"number":"D-1","date":"2099-12-31","lines":[{"sku":"MUG-001","quantity":1}]}`), f.supplier,
			[]string{"in the future", "removed again"}},
		{"a delete", EntityGoodsReceipt, "stock.shipment.in", connector.Write{Op: connector.WriteDelete, Key: "d-1", ID: "1"}, f.supplier,
			[]string{"does not delete goods receipts", "cancel supplier shipment 1 in Tryton"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			records, notes := f.count(t, tc.model)
			res := f.write(t, tc.entity, tc.write, tc.party)
			if res.Err == nil {
				t.Fatalf("written as %s, want it refused", res.TargetID)
			}
			t.Logf("refused: %v", res.Err)
			for _, w := range tc.want {
				if !strings.Contains(res.Err.Error(), w) {
					t.Errorf("refusal %q does not say %q", res.Err, w)
				}
			}
			if r, n := f.count(t, tc.model); r != records || n != notes {
				t.Errorf("%d records and %d notes of %s after the refusal, want %d and %d as before", r, n, tc.model, records, notes)
			}
		})
	}
	if m := f.onHand(t, "MUG-001"); m != 2 {
		t.Errorf("on hand %v after the refusals, want 2 as before", m)
	}
}

// TestReceiptUpdate changes a draft receipt (its party, lines, which are replaced, and its
// number and note), takes it on with an empty update, and refuses to change it once it is
// received, except with what it holds already.
func TestReceiptUpdate(t *testing.T) {
	f := newStockDocs(t)
	other := write(t, f.tg, EntityCustomer, create("name:other mill", `{"name":"Other Mill"}`))
	id := f.write(t, EntityGoodsReceipt, docCreate("gr-1", "", `{"number":"GR-1","lines":[{"sku":"MUG-001","quantity":5}]}`), f.supplier).TargetID
	day := thisYear("01-03")
	changed := fmt.Sprintf(`{"number":"GR-1b","date":%q,"note":"Late","lines":[{"sku":"TSHIRT-S","quantity":3,"price":7},{"sku":"MUG-001","quantity":1,"price":4}]}`, day)
	for _, s := range []struct {
		name  string
		write connector.Write
		party string
		// refused is what the refusal says; none: no refusal.
		refused []string
		// state, moves and note are what the shipment holds afterwards.
		state, note string
		moves       []string
	}{
		{"a draft is changed and its moves replaced", docUpdate("gr-1", id, "", changed), other, nil,
			"draft", "Number: GR-1b\nLate", []string{"TSHIRT-S 3 SUP>IN draft at 7 EUR", "MUG-001 1 SUP>IN draft at 4 EUR"}},
		{"an empty update takes it on", docUpdate("gr-1", id, StateReceived, `{}`), "", nil,
			"received", "Number: GR-1b\nLate", []string{"TSHIRT-S 3 SUP>IN done at 7 EUR", "MUG-001 1 SUP>IN done at 4 EUR", "MUG-001 1 IN>STO draft", "TSHIRT-S 3 IN>STO draft"}},
		{"the same again: nothing to change", docUpdate("gr-1", id, StateReceived, changed), other, nil,
			"received", "Number: GR-1b\nLate", []string{"TSHIRT-S 3 SUP>IN done at 7 EUR", "MUG-001 1 SUP>IN done at 4 EUR", "MUG-001 1 IN>STO draft", "TSHIRT-S 3 IN>STO draft"}},
		{"a change past draft", docUpdate("gr-1", id, StateDone, strings.Replace(changed, `"quantity":3`, `"quantity":4`, 1)), other,
			[]string{`goods-receipt "gr-1": supplier shipment ` + id + ` (number `, "is received in Tryton", "only a draft goods receipt is changed", "discard the record"},
			"received", "Number: GR-1b\nLate", []string{"TSHIRT-S 3 SUP>IN done at 7 EUR", "MUG-001 1 SUP>IN done at 4 EUR", "MUG-001 1 IN>STO draft", "TSHIRT-S 3 IN>STO draft"}},
		{"a receipt deleted in Tryton", docUpdate("gr-1", "999", "", changed), other, []string{"Tryton has no supplier shipment 999"},
			"received", "Number: GR-1b\nLate", []string{"TSHIRT-S 3 SUP>IN done at 7 EUR", "MUG-001 1 SUP>IN done at 4 EUR", "MUG-001 1 IN>STO draft", "TSHIRT-S 3 IN>STO draft"}},
	} {
		t.Run(s.name, func(t *testing.T) {
			res := f.write(t, EntityGoodsReceipt, s.write, s.party)
			if len(s.refused) == 0 && res.Err != nil {
				t.Fatalf("update refused: %v", res.Err)
			}
			for _, w := range s.refused {
				if res.Err == nil || !strings.Contains(res.Err.Error(), w) {
					t.Errorf("update = %+v, want it refused saying %q", res, w)
				}
			}
			r := f.read(t, "stock.shipment.in", id)
			if r.Effective == nil || r.Effective.iso() != day {
				t.Errorf("effective date %v, want %s", r.Effective, day)
			}
			if r.State != s.state || !slices.Equal(r.Moves, s.moves) || !slices.Equal(r.Notes, []string{s.note}) || r.Supplier == nil || fmt.Sprint(*r.Supplier) != other {
				t.Errorf("shipment %s of supplier %v with moves %q and notes %q\nwant %s of %s with %q and %q", r.State, *r.Supplier, r.Moves, r.Notes, s.state, other, s.moves, s.note)
			}
		})
	}
}

// TestFindReceiptsReturnsInventoriesAndWriteOffs finds each kind of stock document by
// external reference and by the source's number, and reads it back in the canonical
// document shape with Tryton's state.
func TestFindReceiptsReturnsInventoriesAndWriteOffs(t *testing.T) {
	f := newStockDocs(t)
	f.setOnHand(t, "MUG-001", 5)
	day := thisYear("02-01")
	for _, tc := range []struct {
		entity, state, party, payload string
		want                          string // the found record's fields
	}{
		{EntityGoodsReceipt, StateReceived, f.supplier,
			fmt.Sprintf(`{"number":"GR_1","date":%q,"reference":"PO-1","lines":[{"sku":"MUG-001","quantity":2,"price":3.5}]}`, day),
			fmt.Sprintf(`{"currency":"EUR","date":%q,"document_type":"goods-receipt","lines":[{"price":3.5,"quantity":2,"sku":"MUG-001"}],"number":"GR_1","party":{"name":"Paper Mill Ltd"},"reference":"PO-1","state":"received"}`, day)},
		{EntityOrderReturn, StateDraft, f.customer,
			fmt.Sprintf(`{"number":"RET-1","date":%q,"note":"Wrong size\nsent back","lines":[{"sku":"TSHIRT-M","quantity":1}]}`, day),
			fmt.Sprintf(`{"currency":"EUR","date":%q,"document_type":"order-return","lines":[{"price":0,"quantity":1,"sku":"TSHIRT-M"}],"note":"Wrong size\nsent back","number":"RET-1","party":{"name":"Max Mustermann"},"state":"draft"}`, day)},
		{EntityInventoryCount, StateDone, "",
			fmt.Sprintf(`{"number":"IC-1","date":%q,"lines":[{"sku":"MUG-001","quantity":4}]}`, day),
			fmt.Sprintf(`{"date":%q,"document_type":"inventory-count","lines":[{"quantity":4,"sku":"MUG-001"}],"number":"IC-1","state":"done"}`, day)},
		{EntityWriteOff, StateDraft, "",
			fmt.Sprintf(`{"number":"WO-1","date":%q,"lines":[{"sku":"MUG-001","quantity":1}]}`, day),
			fmt.Sprintf(`{"date":%q,"document_type":"write-off","lines":[{"quantity":1,"sku":"MUG-001"}],"number":"WO-1","state":"draft"}`, day)},
	} {
		t.Run(tc.entity, func(t *testing.T) {
			res := f.write(t, tc.entity, docCreate(tc.entity+"-1", tc.state, tc.payload), tc.party)
			if res.Err != nil {
				t.Fatalf("create = %v", res.Err)
			}
			var number struct {
				Number string `json:"number"`
			}
			json.Unmarshal([]byte(tc.payload), &number)
			// Another document of the kind, whose number differs only where a wildcard
			// of like would match it.
			other := strings.ReplaceAll(number.Number, "_", "-")
			if other == number.Number {
				other = "X" + other
			}
			if res := f.write(t, tc.entity, docCreate(tc.entity+"-2", "", strings.Replace(tc.payload, number.Number, other, 1)), tc.party); res.Err != nil {
				t.Fatalf("create another = %v", res.Err)
			}
			for _, look := range []struct {
				field  string
				values []string
			}{
				{connector.FieldExternalRef, []string{tc.entity + "-1", "nope"}},
				{FieldNumber, []string{number.Number, "nope", strings.ToLower(number.Number), strings.Replace(number.Number, "_", "%", 1)}},
			} {
				found := find(t, f.tg, tc.entity, look.field, look.values...)
				if len(found) != 1 || found[0].ID != res.TargetID || found[0].Value != look.values[0] {
					t.Fatalf("find by %s %q = %+v, want %s alone", look.field, look.values, found, res.TargetID)
				}
				var got, want map[string]any
				json.Unmarshal(found[0].Fields, &got)
				json.Unmarshal([]byte(tc.want), &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("fields %s\nwant   %s", found[0].Fields, tc.want)
				}
			}
			if _, err := f.tg.Find(context.Background(), tc.entity, FieldSKU, []string{"MUG-001"}); err == nil || !strings.Contains(err.Error(), "external_ref or number") {
				t.Errorf("find by sku: %v", err)
			}
		})
	}
}

// TestReceiptAndInventoryRecipesIntoTryton runs the document recipe's rules against a real Tryton:
// a goods receipt finds or makes its supplier by name, has its SKUs checked, and is received
// and put away; delivered again it is found and not written again; a draft an interrupted write left
// behind is taken on to the flow's state; an inventory count, which has no party, sets on
// hand.
func TestReceiptAndInventoryRecipesIntoTryton(t *testing.T) {
	f := newStockDocs(t)
	receipt := func(key, sku string) connector.Record {
		return connector.Record{Key: key, Op: connector.OpUpsert, Create: true, Version: 1, Payload: json.RawMessage(fmt.Sprintf(
			`{"number":"GR-%s","document_type":"goods-receipt","party":{"name":"Cotton Mill"},"lines":[{"sku":%q,"quantity":24,"price":3}]}`, key, sku))}
	}
	run := func(entity string, r connector.Record) recipe.Outcome {
		t.Helper()
		got, err := recipe.Run(context.Background(), f.tg, recipeFlow(t, entity, recipe.DuplicateSkip, &flowconfig.Document{State: StateDone}), []connector.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	o := run(EntityGoodsReceipt, receipt("gr-1", "TSHIRT-S"))
	if o.Action != recipe.Created || o.TargetID == "" {
		t.Fatalf("receipt: %+v", o)
	}
	var mills []int64
	f.db.Call(t, &mills, "model.party.party.search", []any{[]any{"name", "=", "Cotton Mill"}}, 0, nil, nil, map[string]any{})
	if r := f.read(t, "stock.shipment.in", o.TargetID); len(mills) != 1 || r.State != "done" || r.Supplier == nil || *r.Supplier != mills[0] {
		t.Fatalf("shipment %+v of supplier %v; want one party Cotton Mill %v, the shipment done", r, r.Supplier, mills)
	}
	if q := f.onHand(t, "TSHIRT-S"); q != 24 {
		t.Errorf("on hand %v, want 24", q)
	}
	// Found.Fields hold the whole document, so the recipe sees the same receipt made and
	// writes nothing.
	if again := run(EntityGoodsReceipt, receipt("gr-1", "TSHIRT-S")); again.Action != recipe.Created || again.TargetID != o.TargetID {
		t.Errorf("the receipt delivered again: %+v, want it found as %s", again, o.TargetID)
	}
	if unknown := run(EntityGoodsReceipt, receipt("gr-3", "NOPE")); unknown.Code != recipe.CodeUnknownProduct {
		t.Errorf("a receipt of an unknown sku: %+v", unknown)
	}

	draft := f.write(t, EntityGoodsReceipt, docCreate("gr-2", StateDraft, string(receipt("gr-2", "TSHIRT-S").Payload)), fmt.Sprint(mills[0]))
	if draft.Err != nil {
		t.Fatal(draft.Err)
	}
	if o := run(EntityGoodsReceipt, receipt("gr-2", "TSHIRT-S")); o.Action != recipe.Created || o.TargetID != draft.TargetID {
		t.Errorf("the draft delivered again: %+v, want it taken on as %s", o, draft.TargetID)
	}
	if r := f.read(t, "stock.shipment.in", draft.TargetID); r.State != "done" {
		t.Errorf("the draft is %s, want done", r.State)
	}
	var receipts int
	f.db.Call(t, &receipts, "model.stock.shipment.in.search_count", []any{}, map[string]any{"company": 1})
	if q := f.onHand(t, "TSHIRT-S"); q != 48 || receipts != 2 {
		t.Errorf("on hand %v in %d receipts, want 48 in 2", q, receipts)
	}

	count := connector.Record{Key: "ic-1", Op: connector.OpUpsert, Create: true, Version: 1,
		Payload: json.RawMessage(`{"number":"IC-1","lines":[{"sku":"TSHIRT-S","quantity":40}]}`)}
	if o := run(EntityInventoryCount, count); o.Action != recipe.Created {
		t.Fatalf("count: %+v", o)
	}
	if q := f.onHand(t, "TSHIRT-S"); q != 40 {
		t.Errorf("on hand %v after counting 40", q)
	}
}
