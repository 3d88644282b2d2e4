package tryton

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
	"github.com/syncline/syncline/pkg/connector"
)

// invoicing is a database with what invoices refer to, made through the target's own
// writes: a company customer, a supplier and two products of the accounting category Goods
// (revenue account, VAT 19 % on sales, no supplier taxes).
type invoicing struct {
	tg                 *Target
	db                 *trytontest.Database
	customer, supplier string
}

func newInvoicing(t *testing.T, change func(*Settings)) *invoicing {
	t.Helper()
	tg, db := open(t, change)
	inv := &invoicing{tg: tg, db: db}
	inv.customer = write(t, tg, EntityCustomer, create("c-1", `{"email":"jane@acme.example","name":"Jane Doe","company":"ACME GmbH",
		"billing_address":{"street":"Hauptstr.","house_number":"1","postcode":"10115","city":"Berlin","country":"DE"}}`))
	inv.supplier = write(t, tg, EntityCustomer, create("s-1", `{"email":"sales@supplier.example","name":"Supplier AG",
		"billing_address":{"street":"Ring","house_number":"2","postcode":"1010","city":"Wien","country":"AT"}}`))
	write(t, tg, EntityProduct, create("p-1", `{"sku":"MUG-001","name":"Mug","price":10}`))
	write(t, tg, EntityProduct, create("p-2", `{"sku":"TEE-","name":"T-Shirt","price":20,"variants":[{"sku":"TEE-M","attributes":{"size":"M"}}]}`))
	return inv
}

// invoiceWrite is a create of an invoice for party, taken to state.
func invoiceWrite(key, payload, party, state string) connector.Write {
	w := create(key, payload)
	w.Refs = map[string]string{connector.RefCustomer: party}
	w.State = state
	return w
}

// thisYear is a date in the seeded fiscal year.
func thisYear(monthDay string) string { return fmt.Sprintf("%d-%s", time.Now().Year(), monthDay) }

type decimalJSON struct {
	Decimal string `json:"decimal"`
}

type invoiceRead struct {
	Type        string                 `json:"type"`
	State       string                 `json:"state"`
	Number      *string                `json:"number"`
	Reference   string                 `json:"reference"`
	Description string                 `json:"description"`
	Comment     string                 `json:"comment"`
	Party       int64                  `json:"party"`
	Account     int64                  `json:"account"`
	PaymentTerm *int64                 `json:"payment_term"`
	Date        *dateValue             `json:"invoice_date"`
	Untaxed     decimalJSON            `json:"untaxed_amount"`
	Tax         decimalJSON            `json:"tax_amount"`
	Total       decimalJSON            `json:"total_amount"`
	AmountToPay decimalJSON            `json:"amount_to_pay"`
	Lines       []int64                `json:"lines"`
	Taxes       []int64                `json:"taxes"`
	Journal     *struct{ Code string } `json:"journal."`
}

// readInvoice reads an invoice and its lines over Tryton's API as the admin.
func readInvoice(t *testing.T, db *trytontest.Database, id string) (invoiceRead, string) {
	t.Helper()
	var rows []invoiceRead
	db.Call(t, &rows, "model.account.invoice.read", []int64{atoi(t, id)}, []string{"type", "state", "number", "reference", "description", "comment", "party",
		"account", "payment_term", "invoice_date", "untaxed_amount", "tax_amount", "total_amount", "amount_to_pay", "lines", "taxes", "journal.code"}, map[string]any{"company": 1})
	if len(rows) != 1 {
		t.Fatalf("invoice %s: %d rows", id, len(rows))
	}
	var lines []struct {
		Product *struct {
			Code string `json:"code"`
		} `json:"product."`
		Description string      `json:"description"`
		Quantity    float64     `json:"quantity"`
		UnitPrice   decimalJSON `json:"unit_price"`
		Account     int64       `json:"account"`
		Taxes       []int64     `json:"taxes"`
	}
	db.Call(t, &lines, "model.account.invoice.line.read", rows[0].Lines, []string{"product.code", "description", "quantity", "unit_price", "account", "taxes"}, map[string]any{"company": 1})
	var parts []string
	for _, l := range lines {
		sku := "-"
		if l.Product != nil {
			sku = l.Product.Code
		}
		parts = append(parts, fmt.Sprintf("%s %q %v x %s acc %d taxes %v", sku, l.Description, l.Quantity, l.UnitPrice.Decimal, l.Account, l.Taxes))
	}
	return rows[0], strings.Join(parts, "; ")
}

func atoi(t *testing.T, id string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("target id %q: %v", id, err)
	}
	return n
}

// TestInvoiceStates writes sales and purchase invoices to each state and reads them back
// over Tryton's API: party, lines, accounts, taxes, totals and state.
func TestInvoiceStates(t *testing.T) {
	sales := fmt.Sprintf(`{"number":"INV-1001","kind":"sales","date":%q,"currency":"EUR","reference":"SO-500",
		"lines":[{"sku":"MUG-001","quantity":2,"price":10,"tax_rate":19},{"sku":"TEE-M","description":"Tee M","quantity":1,"price":20},{"description":"Shipping","quantity":1,"price":4.9}],
		"totals":{"net":44.9,"tax":8.53,"gross":53.43}}`, thisYear("01-02"))
	purchase := fmt.Sprintf(`{"number":"SUP-77","kind":"purchase","date":%q,
		"lines":[{"sku":"MUG-001","quantity":5,"price":6,"tax_rate":19},{"description":"Freight","quantity":1,"price":10}],
		"totals":{"net":40,"tax":5.7,"gross":45.7}}`, thisYear("01-03"))
	for _, tc := range []struct {
		name, payload, state string
		purchase             bool
		// wantState, wantLines: Tryton's state and lines; posted says Tryton numbered it.
		wantState, wantLines, wantTotals string
		posted                           bool
	}{
		{name: "sales draft", payload: sales, state: "", wantState: "draft",
			wantLines:  `MUG-001 "Mug" 2 x 10 acc 6 taxes [1]; TEE-M "Tee M" 1 x 20 acc 6 taxes [1]; - "Shipping" 1 x 4.9 acc 6 taxes [1]`,
			wantTotals: "44.90 8.53 53.43"},
		{name: "sales validated", payload: sales, state: InvoiceValidated, wantState: "validated",
			wantLines:  `MUG-001 "Mug" 2 x 10 acc 6 taxes [1]; TEE-M "Tee M" 1 x 20 acc 6 taxes [1]; - "Shipping" 1 x 4.9 acc 6 taxes [1]`,
			wantTotals: "44.90 8.53 53.43"},
		{name: "sales posted", payload: sales, state: InvoicePosted, wantState: "posted", posted: true,
			wantLines:  `MUG-001 "Mug" 2 x 10 acc 6 taxes [1]; TEE-M "Tee M" 1 x 20 acc 6 taxes [1]; - "Shipping" 1 x 4.9 acc 6 taxes [1]`,
			wantTotals: "44.90 8.53 53.43"},
		// Goods has no supplier taxes: the 19 % line gets Tryton's VAT 19 %, the freight none.
		{name: "purchase posted", payload: purchase, state: InvoicePosted, purchase: true, wantState: "posted", posted: true,
			wantLines:  `MUG-001 "Mug" 5 x 6 acc 3 taxes [1]; - "Freight" 1 x 10 acc 3 taxes []`,
			wantTotals: "40.00 5.70 45.70"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := newInvoicing(t, nil)
			party := inv.customer
			if tc.purchase {
				party = inv.supplier
			} else {
				// The company's default payment term, Net 14: the invoice is dated
				// early in the year, so posting it today puts its due date in the past.
				inv.db.Call(t, nil, "model.account.configuration.write", []int{1}, map[string]any{"default_customer_payment_term": 2}, map[string]any{"company": 1})
			}
			id := write(t, inv.tg, EntityInvoice, invoiceWrite("inv-1", tc.payload, party, tc.state))
			got, lines := readInvoice(t, inv.db, id)
			wantType, wantJournal, wantAccount := "out", "REV", int64(5)
			if tc.purchase {
				wantType, wantJournal, wantAccount = "in", "EXP", 4
			}
			if got.Type != wantType || got.Journal.Code != wantJournal || got.Account != wantAccount || fmt.Sprint(got.Party) != party {
				t.Errorf("header: type %s, journal %s, account %d, party %d; want %s, %s, %d, %s", got.Type, got.Journal.Code, got.Account, got.Party, wantType, wantJournal, wantAccount, party)
			}
			if got.State != tc.wantState || (got.Number != nil) != (tc.posted || (tc.purchase && tc.wantState != "draft")) {
				t.Errorf("state %s, number %v; want %s, numbered %v", got.State, got.Number, tc.wantState, tc.posted)
			}
			wantRef := "INV-1001"
			if tc.purchase {
				wantRef = "SUP-77"
			}
			if got.Reference != wantRef || got.Description != "syncline:inv-1" {
				t.Errorf("reference %q, description %q; want %q and the external reference", got.Reference, got.Description, wantRef)
			}
			if !tc.purchase && (got.Comment != "SO-500" || got.PaymentTerm == nil || *got.PaymentTerm != 2) {
				t.Errorf("comment %q, payment term %v; want the source's reference and Net 14", got.Comment, got.PaymentTerm)
			}
			if lines != tc.wantLines {
				t.Errorf("lines:\n got %s\nwant %s", lines, tc.wantLines)
			}
			if totals := got.Untaxed.Decimal + " " + got.Tax.Decimal + " " + got.Total.Decimal; totals != tc.wantTotals || len(got.Taxes) != 1 {
				t.Errorf("totals %s with %d tax lines, want %s with one", totals, len(got.Taxes), tc.wantTotals)
			}
			if tc.posted && got.AmountToPay.Decimal != strings.Fields(tc.wantTotals)[2] {
				t.Errorf("amount to pay %s, want the total", got.AmountToPay.Decimal)
			}

			// Found again by number and by external reference, read back in the canonical shape.
			for _, f := range [][]connector.Found{
				find(t, inv.tg, EntityInvoice, FieldNumber, wantRef, "NOPE"),
				find(t, inv.tg, EntityInvoice, connector.FieldExternalRef, "inv-1", "inv-2"),
			} {
				if len(f) != 1 || f[0].ID != id {
					t.Fatalf("found %+v, want invoice %s", f, id)
				}
				var fields struct {
					Number string `json:"number"`
					Kind   string `json:"kind"`
					State  string `json:"state"`
					Party  struct {
						Name string `json:"name"`
					} `json:"party"`
					Lines  []invoiceLine `json:"lines"`
					Totals invoiceTotals `json:"totals"`
					Taxes  []struct {
						Rate, Base, Amount float64
					} `json:"taxes"`
				}
				if err := json.Unmarshal(f[0].Fields, &fields); err != nil {
					t.Fatal(err)
				}
				if fields.Number != wantRef || fields.State != tc.wantState || len(fields.Lines) != strings.Count(tc.wantLines, ";")+1 ||
					fields.Lines[0].SKU != "MUG-001" || *fields.Lines[0].TaxRate != 19 || fmt.Sprintf("%.2f", *fields.Totals.Gross) != strings.Fields(tc.wantTotals)[2] ||
					len(fields.Taxes) != 1 || fields.Taxes[0].Rate != 19 {
					t.Errorf("fields read back: %s", f[0].Fields)
				}
			}
		})
	}
}

// TestInvoiceFindByReference: a payment may name its invoice by the source's reference;
// a value that is some invoice's number finds that one only.
func TestInvoiceFindByReference(t *testing.T) {
	inv := newInvoicing(t, nil)
	a := write(t, inv.tg, EntityInvoice, invoiceWrite("inv-1", `{"number":"1001","reference":"SO-1","lines":[{"sku":"MUG-001","quantity":1,"price":10}]}`, inv.customer, ""))
	b := write(t, inv.tg, EntityInvoice, invoiceWrite("inv-2", `{"number":"1002","reference":"1001","lines":[{"sku":"MUG-001","quantity":1,"price":10}]}`, inv.customer, ""))
	if f := find(t, inv.tg, EntityInvoice, FieldNumber, "1001"); len(f) != 1 || f[0].ID != a {
		t.Errorf("by number 1001 = %+v, want only invoice %s", f, a)
	}
	if f := find(t, inv.tg, EntityInvoice, FieldNumber, "SO-1", "1002"); len(f) != 2 || f[0].ID != a || f[0].Value != "SO-1" || f[1].ID != b {
		t.Errorf("by the reference SO-1 and the number 1002 = %+v, want %s and %s", f, a, b)
	}
}

// TestInvoiceRefusals: what the invoice cannot be in Tryton is the record's refusal, naming
// what to fix, and leaves no invoice behind.
func TestInvoiceRefusals(t *testing.T) {
	line := `{"sku":"MUG-001","quantity":1,"price":10}`
	for _, tc := range []struct {
		name, payload, state string
		change               func(*Settings)
		noParty              bool
		want                 []string
	}{
		{name: "missing skus", payload: `{"number":"1","lines":[{"sku":"NOPE-1","quantity":1,"price":1},` + line + `,{"sku":"NOPE-2","quantity":1,"price":1},{"sku":"TEE-","quantity":1,"price":1}]}`,
			want: []string{`no product with the sku "NOPE-1", "NOPE-2"`, "create the products first", `sku "TEE-" is the code of product template`, "TEE-M"}},
		{name: "no party", payload: `{"number":"1","lines":[` + line + `]}`, noParty: true, want: []string{`Refs["customer"]`, "default party"}},
		{name: "no lines", payload: `{"number":"1","totals":{"gross":10}}`, want: []string{"no lines"}},
		{name: "a line without sku and no category", payload: `{"number":"1","lines":[{"description":"Fee","quantity":1,"price":5}]}`,
			change: func(s *Settings) { s.AccountCategory = "" }, want: []string{"settings.invoice_line_category", "settings.account_category"}},
		{name: "a tax rate Tryton lacks", payload: `{"number":"1","lines":[` + line + `,{"sku":"MUG-001","quantity":1,"price":10,"tax_rate":7}]}`,
			want: []string{"line 2", "no percentage tax of 7 %"}},
		{name: "totals Tryton computes otherwise", payload: `{"number":"1","lines":[` + line + `],"totals":{"net":10,"tax":1.8,"gross":11.8}}`,
			want: []string{"tax 1.90 (the record says 1.8), gross 11.90 (the record says 11.8)"}},
		{name: "a kind that is none", payload: `{"number":"1","kind":"credit","lines":[` + line + `]}`, want: []string{`kind "credit"`}},
		{name: "a state that is none", payload: `{"number":"1","lines":[` + line + `]}`, state: "paid", want: []string{`state "paid"`}},
		// Tryton's own refusal when posting: no period for the date. The draft it created
		// first is removed.
		{name: "posting outside the fiscal year", payload: `{"number":"1","date":"2001-05-01","lines":[` + line + `]}`, state: InvoicePosted,
			want: []string{"create a period"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := newInvoicing(t, tc.change)
			w := invoiceWrite("inv-1", tc.payload, inv.customer, tc.state)
			if tc.noParty {
				w.Refs = nil
			}
			res, err := inv.tg.Write(context.Background(), EntityInvoice, []connector.Write{w})
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if res[0].Err == nil {
				t.Fatalf("written as %s, want a refusal", res[0].TargetID)
			}
			msg := res[0].Err.Error()
			if !strings.HasPrefix(msg, `invoice "inv-1": `) {
				t.Errorf("refusal %q does not name the record", msg)
			}
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("refusal %q does not say %q", msg, want)
				}
			}
			var n int
			inv.db.Call(t, &n, "model.account.invoice.search_count", []any{}, map[string]any{"company": 1})
			if n != 0 {
				t.Errorf("%d invoices left in Tryton, want none", n)
			}
		})
	}
}

// TestInvoiceUpdate: a draft invoice takes an update (its lines replaced) and is then
// posted by the update's state; a posted one refuses, naming its state and the way out.
func TestInvoiceUpdate(t *testing.T) {
	inv := newInvoicing(t, nil)
	id := write(t, inv.tg, EntityInvoice, invoiceWrite("inv-1", `{"number":"1001","lines":[{"sku":"MUG-001","quantity":1,"price":10}]}`, inv.customer, ""))
	w := update(id, `{"number":"1001-A","reference":"SO-9","lines":[{"sku":"TEE-M","quantity":3,"price":20,"tax_rate":0}],"totals":{"net":60,"tax":0,"gross":60}}`)
	w.Refs, w.State = map[string]string{connector.RefCustomer: inv.customer}, InvoicePosted
	write(t, inv.tg, EntityInvoice, w)
	got, lines := readInvoice(t, inv.db, id)
	if got.State != "posted" || got.Reference != "1001-A" || got.Comment != "SO-9" || got.Total.Decimal != "60.00" || lines != `TEE-M "T-Shirt" 3 x 20 acc 6 taxes []` {
		t.Fatalf("after the update: %+v, lines %s", got, lines)
	}
	var n int
	inv.db.Call(t, &n, "model.account.invoice.line.search_count", []any{}, map[string]any{"company": 1})
	if n != 1 {
		t.Errorf("%d invoice lines in Tryton, want the one line of the update", n)
	}

	// A different party moves the draft to it, with its address and account.
	other := write(t, inv.tg, EntityInvoice, invoiceWrite("inv-2", `{"number":"1002","lines":[{"sku":"MUG-001","quantity":1,"price":10}]}`, inv.customer, ""))
	w = update(other, `{"number":"1002"}`)
	w.Refs = map[string]string{connector.RefCustomer: inv.supplier}
	write(t, inv.tg, EntityInvoice, w)
	if got, _ := readInvoice(t, inv.db, other); fmt.Sprint(got.Party) != inv.supplier {
		t.Errorf("party after the update: %d, want %s", got.Party, inv.supplier)
	}

	w = update(id, `{"number":"1001-B"}`)
	w.Refs = map[string]string{connector.RefCustomer: inv.customer}
	res, err := inv.tg.Write(context.Background(), EntityInvoice, []connector.Write{w})
	if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "is posted") || !strings.Contains(res[0].Err.Error(), "credit note") {
		t.Fatalf("update of a posted invoice: %v %+v", err, res)
	}
	if got, _ := readInvoice(t, inv.db, id); got.Reference != "1001-A" {
		t.Errorf("the posted invoice changed: reference %q", got.Reference)
	}
}
