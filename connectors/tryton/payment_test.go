package tryton

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
	"github.com/syncline/syncline/pkg/connector"
)

// addPaymentMethod gives the database what an accountant sets up before recording
// payments: an invoice payment method of the cash journal CASH into the account Main Cash.
func addPaymentMethod(t *testing.T, db *trytontest.Database) {
	t.Helper()
	ctx := map[string]any{"company": 1}
	var journals, accounts []int64
	db.Call(t, &journals, "model.account.journal.search", []any{[]any{"code", "=", "CASH"}}, 0, nil, nil, ctx)
	db.Call(t, &accounts, "model.account.account.search", []any{[]any{"name", "=", "Main Cash"}}, 0, nil, nil, ctx)
	if len(journals) != 1 || len(accounts) != 1 {
		t.Fatalf("the seed has journals %v named CASH and accounts %v named Main Cash, want one each", journals, accounts)
	}
	db.Call(t, nil, "model.account.invoice.payment.method.create", []any{map[string]any{"name": "Cash", "company": 1,
		"journal": journals[0], "debit_account": accounts[0], "credit_account": accounts[0]}}, ctx)
}

// postedInvoice writes a posted invoice of gross total 119.00 (100 net, VAT 19 %) for
// party, and returns its id.
func (inv *invoicing) postedInvoice(t *testing.T, key, number, kind, party string) string {
	t.Helper()
	return write(t, inv.tg, EntityInvoice, invoiceWrite(key, fmt.Sprintf(`{"number":%q,"kind":%q,"date":%q,
		"lines":[{"sku":"MUG-001","quantity":10,"price":10,"tax_rate":19}],"totals":{"gross":119}}`, number, kind, thisYear("01-10")), party, InvoicePosted))
}

func paymentWrite(key, payload, invoice string) connector.Write {
	w := create(key, payload)
	if invoice != "" {
		w.Refs = map[string]string{connector.RefInvoice: invoice}
	}
	return w
}

// openAmount reads an invoice's state and amount to pay, and how many payment moves book
// it, over Tryton's API.
func openAmount(t *testing.T, db *trytontest.Database, invoice string) string {
	t.Helper()
	var rows []struct {
		State       string      `json:"state"`
		AmountToPay decimalJSON `json:"amount_to_pay"`
	}
	db.Call(t, &rows, "model.account.invoice.read", []int64{atoi(t, invoice)}, []string{"state", "amount_to_pay"}, map[string]any{"company": 1})
	var moves int
	db.Call(t, &moves, "model.account.move.search_count", []any{[]any{"origin", "=", "account.invoice," + invoice}, []any{"journal.code", "=", "CASH"}}, map[string]any{"company": 1})
	return fmt.Sprintf("%s %s in %d payments", rows[0].State, rows[0].AmountToPay.Decimal, moves)
}

// TestPaymentSettlesInvoice: payments recorded against posted invoices, read back as the
// invoice's amount to pay and state; a payment written again, whether the recipe finds it
// first or not, is booked once.
func TestPaymentSettlesInvoice(t *testing.T) {
	inv := newInvoicing(t, nil)
	addPaymentMethod(t, inv.db)
	full := inv.postedInvoice(t, "inv-1", "1001", "sales", inv.customer)
	partial := inv.postedInvoice(t, "inv-2", "1002", "sales", inv.customer)
	supplier := inv.postedInvoice(t, "inv-3", "SUP-3", "purchase", inv.supplier)

	steps := []struct {
		name, key, payload, invoice string
		findFirst                   bool
		want                        string
	}{
		{name: "full receipt", key: "pay-1", payload: `{"reference":"PSP-1","kind":"receipt","amount":119,"currency":"EUR","date":"` + thisYear("01-20") + `","invoice":"1001"}`,
			invoice: full, want: "paid 0 in 1 payments"},
		{name: "the same receipt again", key: "pay-1", payload: `{"reference":"PSP-1","amount":119,"currency":"EUR","invoice":"1001"}`,
			invoice: full, want: "paid 0 in 1 payments"},
		{name: "the same receipt again, found first", key: "pay-1", payload: `{"reference":"PSP-1","amount":119,"currency":"EUR","invoice":"1001"}`,
			invoice: full, findFirst: true, want: "paid 0 in 1 payments"},
		{name: "partial receipt", key: "pay-2", payload: `{"reference":"PSP-2","amount":50,"currency":"EUR","invoice":"1002"}`,
			invoice: partial, want: "posted 69.00 in 1 payments"},
		// Tryton's wizard books a repeated partial payment again; the target must not.
		{name: "the same partial receipt again", key: "pay-2", payload: `{"reference":"PSP-2","amount":50,"currency":"EUR","invoice":"1002"}`,
			invoice: partial, want: "posted 69.00 in 1 payments"},
		{name: "the rest", key: "pay-3", payload: `{"reference":"PSP-3","amount":69,"currency":"EUR","invoice":"1002"}`,
			invoice: partial, want: "paid 0 in 2 payments"},
		{name: "payment to a supplier", key: "pay-4", payload: `{"reference":"BANK-4","kind":"payment","amount":119,"currency":"EUR","invoice":"SUP-3"}`,
			invoice: supplier, want: "paid 0 in 1 payments"},
	}
	ids := map[string]string{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			w := paymentWrite(s.key, s.payload, s.invoice)
			if s.findFirst {
				f := find(t, inv.tg, EntityPayment, connector.FieldExternalRef, s.key)
				if len(f) != 1 || f[0].ID != ids[s.key] || f[0].Value != s.key {
					t.Fatalf("find by external_ref = %+v, want the move %s", f, ids[s.key])
				}
			}
			id := write(t, inv.tg, EntityPayment, w)
			if first, ok := ids[s.key]; ok && id != first {
				t.Errorf("written again as %s, first as %s", id, first)
			}
			ids[s.key] = id
			if got := openAmount(t, inv.db, s.invoice); got != s.want {
				t.Errorf("invoice after the payment: %s, want %s", got, s.want)
			}
		})
	}

	// The move of the first payment holds its date and amount.
	var lines []struct {
		Debit  decimalJSON `json:"debit"`
		Credit decimalJSON `json:"credit"`
		Date   dateValue   `json:"date"`
	}
	inv.db.Call(t, &lines, "model.account.move.line.search_read", []any{[]any{"move", "=", atoi(t, ids["pay-1"])}, []any{"account.name", "=", "Main Cash"}},
		0, nil, nil, []string{"debit", "credit", "date"}, map[string]any{"company": 1})
	if len(lines) != 1 || lines[0].Debit.Decimal != "119.00" || lines[0].Date.iso() != thisYear("01-20") {
		t.Errorf("the cash line of payment pay-1 = %+v, want 119.00 on %s", lines, thisYear("01-20"))
	}
	if f := find(t, inv.tg, EntityPayment, connector.FieldExternalRef, "pay-1", "pay-4", "pay-9"); len(f) != 2 {
		t.Errorf("find pay-1, pay-4 and pay-9 = %+v, want the first two", f)
	}
}

// TestPaymentRefusals: a payment Tryton's adapter does not record is refused with what to
// do, and books nothing.
func TestPaymentRefusals(t *testing.T) {
	inv := newInvoicing(t, nil)
	addPaymentMethod(t, inv.db)
	posted := inv.postedInvoice(t, "inv-1", "1001", "sales", inv.customer)
	draft := write(t, inv.tg, EntityInvoice, invoiceWrite("inv-2", `{"number":"1002","lines":[{"sku":"MUG-001","quantity":1,"price":10}]}`, inv.customer, ""))
	for _, tc := range []struct {
		name, payload, invoice string
		want                   []string
	}{
		{name: "against a draft invoice", payload: `{"reference":"P","amount":5,"currency":"EUR","invoice":"1002"}`, invoice: draft,
			want: []string{`invoice "1002"`, "is draft", "must be posted"}},
		{name: "more than is left to pay", payload: `{"reference":"P","amount":119.01,"currency":"EUR","invoice":"1001"}`, invoice: posted,
			want: []string{"more than the 119.00 EUR left to pay", "by hand"}},
		{name: "on account", payload: `{"reference":"P","amount":5,"currency":"EUR"}`,
			want: []string{"against invoices only", "not on account"}},
		{name: "an invoice the recipe did not find", payload: `{"reference":"P","amount":5,"currency":"EUR","invoice":"404"}`,
			want: []string{`invoice "404"`, `Refs["invoice"]`}},
		{name: "another currency", payload: `{"reference":"P","amount":5,"currency":"USD","invoice":"1001"}`, invoice: posted,
			want: []string{"in USD", "in EUR"}},
		{name: "a supplier payment against a sales invoice", payload: `{"reference":"P","kind":"payment","amount":5,"currency":"EUR","invoice":"1001"}`, invoice: posted,
			want: []string{"sales invoice", `kind "receipt"`}},
		{name: "no amount", payload: `{"reference":"P","amount":0,"currency":"EUR","invoice":"1001"}`, invoice: posted,
			want: []string{"amount greater than 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := inv.tg.Write(context.Background(), EntityPayment, []connector.Write{paymentWrite("pay-1", tc.payload, tc.invoice)})
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if res[0].Err == nil {
				t.Fatalf("written as %s, want a refusal", res[0].TargetID)
			}
			for _, want := range append(tc.want, `payment "pay-1": `) {
				if !strings.Contains(res[0].Err.Error(), want) {
					t.Errorf("refusal %q does not say %q", res[0].Err, want)
				}
			}
		})
	}
	if got := openAmount(t, inv.db, posted); got != "posted 119.00 in 0 payments" {
		t.Errorf("the posted invoice after the refusals: %s", got)
	}

	// An endpoint whose journal has no payment method says what to set up.
	res, err := openOn(t, inv.db, func(s *Settings) { s.PaymentJournal = "BANK" }).Write(context.Background(), EntityPayment,
		[]connector.Write{paymentWrite("pay-1", `{"reference":"P","amount":5,"currency":"EUR","invoice":"1001"}`, posted)})
	if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), `no invoice payment method for the journal "BANK" (settings.payment_journal)`) {
		t.Fatalf("a journal without payment method: %v %+v", err, res)
	}
}
