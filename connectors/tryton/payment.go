package tryton

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// paymentRefPrefix namespaces a payment's external reference in the description of the
// move that books it.
const paymentRefPrefix = "syncline-payment:"

// The canonical payment kinds.
const (
	kindReceipt = "receipt"
	kindPayment = "payment"
)

// payment is the canonical payment record. Its invoice comes as Write.Refs[invoice], found
// by the recipe; its party is the invoice's.
type payment struct {
	Reference string   `json:"reference"`
	Kind      string   `json:"kind"`
	Amount    *float64 `json:"amount"`
	Currency  string   `json:"currency"`
	Date      string   `json:"date"`
	Invoice   string   `json:"invoice"`
}

// writePayment records one payment against its invoice with Tryton's pay wizard
// (account.invoice.pay), which books a move in the journal of settings.payment_journal and
// reconciles it with the invoice when it settles it. The move's description is
// paymentRefPrefix + key, and a payment whose move exists already is not paid again, so a
// write repeated after a crash or a lost ledger entry pays once. The move is the target id.
func (t *Target) writePayment(ctx context.Context, w connector.Write) (string, error) {
	if w.Op != connector.WriteCreate {
		return "", refuse("a payment recorded in Tryton's accounting is not changed or deleted by sync: correct it in Tryton (unreconcile and cancel its move)")
	}
	var rec payment
	if _, err := decodePayload(w.Payload, &rec); err != nil {
		return "", err
	}
	if rec.Amount == nil || *rec.Amount <= 0 {
		return "", refuse("a payment needs an amount greater than 0")
	}
	if rec.Kind != "" && rec.Kind != kindReceipt && rec.Kind != kindPayment {
		return "", refuse("payment kind %q is neither %q nor %q", rec.Kind, kindReceipt, kindPayment)
	}
	ref := w.Refs[connector.RefInvoice]
	if ref == "" {
		if rec.Invoice == "" {
			return "", refuse("the payment names no invoice: the tryton target records payments against invoices only (with Tryton's pay wizard), not on account; record it in Tryton by hand, or map the invoice it settles")
		}
		return "", refuse("the payment came without the Tryton id of its invoice %q (Refs[%q]): the recipe finds the invoice before the payment", rec.Invoice, connector.RefInvoice)
	}
	invoice, err := parseID(ref)
	if err != nil {
		return "", err
	}
	// Looking for an earlier booking and booking must not interleave with another write of
	// the same payment, and the move's number comes from a sequence.
	t.seq.Lock()
	defer t.seq.Unlock()
	moves, err := t.paymentMoves(ctx, []string{w.Key})
	if err != nil {
		return "", err
	}
	if len(moves) > 0 {
		if m := moves[0]; m.Origin != invoiceOrigin(invoice) {
			return "", refuse("payment %q is booked already, against %s (move %d), not invoice %d: correct the payment's invoice in the source, or the move in Tryton", w.Key, m.Origin, m.ID, invoice)
		}
		return idString(moves[0].ID), nil
	}
	inv, err := t.payableInvoice(ctx, invoice, &rec)
	if err != nil {
		return "", err
	}
	method, err := t.paymentMethod(ctx)
	if err != nil {
		return "", err
	}
	if err := t.pay(ctx, inv, method, w.Key, &rec); err != nil {
		return "", err
	}
	if moves, err = t.paymentMoves(ctx, []string{w.Key}); err != nil {
		return "", err
	}
	if len(moves) == 0 {
		return "", fmt.Errorf("paying invoice %d: Tryton's pay wizard ended without booking a move described %q", invoice, paymentRefPrefix+w.Key)
	}
	return idString(moves[0].ID), nil
}

func invoiceOrigin(id int64) string { return "account.invoice," + idString(id) }

// payableInvoice is an invoice a payment may settle.
type payableInvoice struct {
	ID          int64         `json:"id"`
	Type        string        `json:"type"`
	State       string        `json:"state"`
	Reference   string        `json:"reference"`
	AmountToPay *decimalValue `json:"amount_to_pay"`
	Currency    *struct {
		ID     int64  `json:"id"`
		Code   string `json:"code"`
		Digits int    `json:"digits"`
	} `json:"currency."`
}

// payableInvoice reads the invoice and refuses a payment it cannot take: one of another
// direction or currency, an invoice that is not posted, or more than it has left to pay
// (the pay wizard would ask how to book the difference, and that is the accountant's
// decision, not the sync's).
func (t *Target) payableInvoice(ctx context.Context, id int64, rec *payment) (*payableInvoice, error) {
	var rows []payableInvoice
	if err := t.c.call(ctx, &rows, "model.account.invoice.read", []int64{id}, []string{"type", "state", "reference", "amount_to_pay", "currency.code", "currency.digits"}, t.ctx); err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, refuse("Tryton has no invoice %d (the payment's invoice)", id)
	}
	inv := &rows[0]
	name := fmt.Sprintf("invoice %q (Tryton id %d)", inv.Reference, id)
	kind := rec.Kind
	if kind == "" {
		kind = kindReceipt
	}
	switch {
	case kind == kindReceipt && inv.Type != typeOut:
		return nil, refuse("the payment is a receipt, but %s is a purchase invoice: a supplier is paid with kind %q", name, kindPayment)
	case kind == kindPayment && inv.Type != typeIn:
		return nil, refuse("the payment is a payment to a supplier, but %s is a sales invoice: a customer's money is kind %q", name, kindReceipt)
	}
	switch inv.State {
	case InvoicePosted:
	case "paid":
		return nil, refuse("%s is paid already: the payment would be an overpayment, which the tryton target does not book; record it in Tryton by hand if it is right", name)
	case InvoiceDraft, InvoiceValidated:
		return nil, refuse("%s is %s in Tryton: it must be posted before a payment is recorded against it; post it (or let the invoice flow's state be posted), then replay the payment", name, inv.State)
	default:
		return nil, refuse("%s is %s in Tryton and takes no payment", name, inv.State)
	}
	if inv.Currency == nil {
		return nil, fmt.Errorf("reading %s: Tryton gave no currency", name)
	}
	if rec.Currency != "" && !strings.EqualFold(rec.Currency, inv.Currency.Code) {
		return nil, refuse("the payment is in %s, %s in %s: the tryton target records a payment in its invoice's currency", rec.Currency, name, inv.Currency.Code)
	}
	scale := math.Pow10(inv.Currency.Digits)
	if math.Round(*rec.Amount*scale) > math.Round(inv.AmountToPay.float()*scale) {
		return nil, refuse("the payment of %v is more than the %s %s left to pay on %s: Tryton would ask how to book the difference (write-off or overpayment); record it in Tryton by hand", *rec.Amount, inv.AmountToPay.Decimal, inv.Currency.Code, name)
	}
	return inv, nil
}

// paymentMethod is the invoice payment method of the journal settings.payment_journal
// names, the first by name when it has several.
func (t *Target) paymentMethod(ctx context.Context) (int64, error) {
	return t.remember("payment method\x00"+t.settings.PaymentJournal, func() (int64, error) {
		var ids []int64
		if err := t.c.call(ctx, &ids, "model.account.invoice.payment.method.search",
			[]any{[]any{"journal.code", "=", t.settings.PaymentJournal}, []any{"company", "=", t.company}}, 0, 1, nil, t.ctx); err != nil {
			return 0, err
		}
		if len(ids) == 0 {
			return 0, refuse("Tryton has no invoice payment method for the journal %q (settings.payment_journal): create one in Tryton (a payment method with that cash journal and the bank or cash account the money goes to), or name the journal of one in settings.payment_journal", t.settings.PaymentJournal)
		}
		return ids[0], nil
	})
}

// pay runs the pay wizard on the invoice: its start form (whose defaults Tryton wants back
// whole), then the payment, answering the form that asks what to do with the rest of a
// partial payment with "partial" (the invoice stays posted with the rest to pay).
func (t *Target) pay(ctx context.Context, inv *payableInvoice, method int64, key string, rec *payment) error {
	wctx := map[string]any{"company": t.company, "active_model": "account.invoice", "active_id": inv.ID, "active_ids": []int64{inv.ID}}
	var session []json.RawMessage
	if err := t.c.call(ctx, &session, "wizard.account.invoice.pay.create", wctx); err != nil {
		return fmt.Errorf("starting Tryton's pay wizard: %w", err)
	}
	var sid int64
	if len(session) == 0 || json.Unmarshal(session[0], &sid) != nil {
		return fmt.Errorf("starting Tryton's pay wizard: the answer %s is not [session, start, end]", session)
	}
	defer func() {
		// The session holds the form in Tryton's database until deleted; the call's
		// context may be spent by now.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = t.c.call(dctx, nil, "wizard.account.invoice.pay.delete", sid, wctx)
	}()
	var form struct {
		View *struct {
			Defaults map[string]json.RawMessage `json:"defaults"`
		} `json:"view"`
	}
	if err := t.c.call(ctx, &form, "wizard.account.invoice.pay.execute", sid, map[string]any{}, "start", wctx); err != nil {
		return err
	}
	if form.View == nil {
		return fmt.Errorf("running the pay wizard of invoice %d: its start answered without a form", inv.ID)
	}
	start := map[string]any{}
	for k, v := range form.View.Defaults {
		if !strings.HasSuffix(k, ".") { // the rec_name helpers, which Tryton refuses back
			start[k] = v
		}
	}
	start["amount"] = map[string]any{"__class__": "Decimal", "decimal": strconv.FormatFloat(*rec.Amount, 'f', inv.Currency.Digits, 64)}
	start["currency"] = inv.Currency.ID
	start["description"] = paymentRefPrefix + key
	start["payment_method"] = method
	if rec.Date != "" {
		d, err := trytonDate(rec.Date, "date")
		if err != nil {
			return err
		}
		start["date"] = d
	}
	var next struct {
		View *struct {
			FieldsView struct {
				Model string `json:"model"`
			} `json:"fields_view"`
		} `json:"view"`
	}
	if err := t.c.call(ctx, &next, "wizard.account.invoice.pay.execute", sid, map[string]any{"start": start}, "choice", wctx); err != nil {
		return err
	}
	if next.View == nil {
		return nil // paid in full: the wizard reached its end
	}
	if m := next.View.FieldsView.Model; m != "account.invoice.pay.ask" {
		return fmt.Errorf("running the pay wizard of invoice %d: it answered with the form %q, not the one asking how to book a partial payment", inv.ID, m)
	}
	return t.c.call(ctx, nil, "wizard.account.invoice.pay.execute", sid, map[string]any{"start": start, "ask": map[string]any{"type": "partial"}}, "pay", wctx)
}

// paymentMove is a move the pay wizard booked for a payment.
type paymentMove struct {
	ID          int64  `json:"id"`
	Description string `json:"description"`
	Origin      string `json:"origin"`
}

// paymentMoves returns the moves that book the payments of keys, oldest first.
func (t *Target) paymentMoves(ctx context.Context, keys []string) ([]paymentMove, error) {
	descs := make([]string, len(keys))
	for i, k := range keys {
		descs[i] = paymentRefPrefix + k
	}
	moves, err := searchRead[paymentMove](ctx, t, "account.move", []any{[]any{"description", "in", descs}}, []string{"description", "origin"}, nil)
	if err != nil {
		return nil, fmt.Errorf("finding payments by external reference: %w", err)
	}
	out := moves[:0]
	for _, m := range moves {
		if strings.HasPrefix(m.Origin, "account.invoice,") {
			out = append(out, m)
		}
	}
	return out, nil
}

// findPayments finds payments by external reference: the moves that book them.
func (t *Target) findPayments(ctx context.Context, field string, values []string) ([]connector.Found, error) {
	if field != connector.FieldExternalRef {
		return nil, fmt.Errorf("finding payments by %s: the tryton target finds them by external_ref", field)
	}
	moves, err := t.paymentMoves(ctx, values)
	if err != nil {
		return nil, err
	}
	out := make([]connector.Found, len(moves))
	for i, m := range moves {
		out[i] = connector.Found{Value: strings.TrimPrefix(m.Description, paymentRefPrefix), ID: idString(m.ID)}
	}
	return out, nil
}
