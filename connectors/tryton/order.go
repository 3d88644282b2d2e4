package tryton

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// order is the canonical order, as far as a Tryton sale holds it. The customer is the
// recipe's (Write.Refs); status, totals and the lines' tax rates are not written: Tryton
// computes the taxes and totals of a sale from its own products, and its state from its
// workflow.
type order struct {
	Number          string      `json:"number"`
	Type            string      `json:"type"`
	Currency        string      `json:"currency"`
	OrderedAt       string      `json:"ordered_at"`
	BillingAddress  *address    `json:"billing_address"`
	ShippingAddress *address    `json:"shipping_address"`
	PaymentTerm     string      `json:"payment_term"`
	PaymentMethod   string      `json:"payment_method"`
	EmployeeNumber  string      `json:"employee_number"`
	Lines           []orderLine `json:"lines"`
	Note            string      `json:"note"`
}

// orderLine is one canonical order line.
type orderLine struct {
	SKU         string   `json:"sku"`
	Quantity    *float64 `json:"quantity"`
	Price       *float64 `json:"price"`
	Description string   `json:"description"`
}

// Tryton 6.0's sale has no field for the payment method or the sales person without extra
// modules, so the sale's comment keeps them readable, one line each, before the note.
const (
	commentPaymentMethod = "Payment method: "
	commentEmployee      = "Employee: "
)

// saleComment is the comment of a sale: the payment method and employee lines (those that
// are set), then the note.
func saleComment(paymentMethod, employee, note string) string {
	var lines []string
	if paymentMethod != "" {
		lines = append(lines, commentPaymentMethod+paymentMethod)
	}
	if employee != "" {
		lines = append(lines, commentEmployee+employee)
	}
	if note != "" {
		lines = append(lines, note)
	}
	return strings.Join(lines, "\n")
}

// parseComment splits a sale's comment as saleComment writes it.
func parseComment(c string) (paymentMethod, employee, note string) {
	rest := c
	take := func(prefix string) string {
		line, after, _ := strings.Cut(rest, "\n")
		if !strings.HasPrefix(line, prefix) {
			return ""
		}
		rest = after
		return strings.TrimPrefix(line, prefix)
	}
	paymentMethod = take(commentPaymentMethod)
	employee = take(commentEmployee)
	return paymentMethod, employee, rest
}

// saleRank orders the states the target takes a sale through; a state past confirmed
// (processing, done) ranks as confirmed, and a cancelled sale is left alone.
func saleRank(state string) int {
	switch state {
	case StateDraft:
		return 0
	case StateQuotation:
		return 1
	case StateConfirmed, "processing", "done":
		return 2
	}
	return -1
}

// writeOrder creates or updates one sale and takes it as far as w.State says. Every write
// runs under t.seq: quoting draws the sale's number, confirming its shipment's.
func (t *Target) writeOrder(ctx context.Context, w connector.Write) (string, error) {
	if w.Op == connector.WriteDelete {
		return "", refuse("the tryton target does not delete sales; cancel sale %s in Tryton, or filter deletes out of the flow", w.ID)
	}
	want, err := documentState("a sale", w.State, saleStates)
	if err != nil {
		return "", err
	}
	var rec order
	have, err := decodePayload(w.Payload, &rec)
	if err != nil {
		return "", err
	}
	if rec.Type != "" && rec.Type != TypeOrder {
		return "", refuse("the document is of type %q and the tryton target takes orders only; map it onto %q in the flow's document types", rec.Type, TypeOrder)
	}
	t.seq.Lock()
	defer t.seq.Unlock()
	switch w.Op {
	case connector.WriteCreate:
		id, err := t.createSale(ctx, w.Key, &rec, have, w.Refs, want)
		if err != nil {
			return "", err
		}
		return idString(id), nil
	case connector.WriteUpdate:
		id, err := parseID(w.ID)
		if err != nil {
			return "", err
		}
		return w.ID, t.updateSale(ctx, id, &rec, have, w.Refs, want)
	}
	return "", refuse("write %q is not create or update", w.Op)
}

// createSale creates the sale of an order with its lines and advances it to want. A sale
// Tryton will not advance is removed again, so that a refused order leaves nothing behind
// and its replay creates it afresh.
func (t *Target) createSale(ctx context.Context, key string, rec *order, have map[string]bool, refs map[string]string, want string) (int64, error) {
	if rec.Number == "" {
		return 0, refuse("the order has no number")
	}
	if len(rec.Lines) == 0 {
		return 0, refuse("order %q has no lines", rec.Number)
	}
	party, err := customerRef(refs)
	if err != nil {
		return 0, err
	}
	p, err := t.readParty(ctx, party)
	if err != nil {
		return 0, err
	}
	invoice, shipment, err := p.saleAddresses(rec.BillingAddress, rec.ShippingAddress)
	if err != nil {
		return 0, err
	}
	values, err := t.saleHeader(ctx, rec, have)
	if err != nil {
		return 0, err
	}
	warehouse, err := t.warehouse(ctx)
	if err != nil {
		return 0, err
	}
	values["party"], values["invoice_address"], values["shipment_address"] = party, invoice, shipment
	values["description"] = refPrefix + key
	values["warehouse"] = warehouse
	values["comment"] = saleComment(rec.PaymentMethod, rec.EmployeeNumber, rec.Note)
	if _, ok := values["payment_term"]; !ok && p.PaymentTerm != nil {
		values["payment_term"] = *p.PaymentTerm // the customer's, as Tryton's form would default it
	}
	lines, err := t.saleLines(ctx, party, values["currency"], rec.Lines)
	if err != nil {
		return 0, err
	}
	values["lines"] = []any{[]any{"create", lines}}
	id, err := t.create(ctx, "sale.sale", values)
	if err != nil {
		return 0, err
	}
	if err := t.advance(ctx, id, StateDraft, want); err != nil {
		if !isRefusal(err) {
			return 0, err
		}
		return 0, t.discardSale(ctx, id, err)
	}
	return id, nil
}

// updateSale writes the fields of the order given (a new customer or addresses, the header
// fields, the lines, which replace the sale's) and advances the sale to want. Tryton's
// server lets any sale be written, but a sale past draft has its invoice and shipment made
// from it, so only a draft is changed; an update that changes nothing succeeds whatever the
// sale's state, so a source that sends an order again (its status changed) is not refused.
func (t *Target) updateSale(ctx context.Context, id int64, rec *order, have map[string]bool, refs map[string]string, want string) error {
	sales, err := t.readSales(ctx, []any{[]any{"id", "=", id}})
	if err != nil {
		return err
	}
	if len(sales) != 1 {
		return refuse("Tryton has no sale %d (it was deleted there); replay the record as a create", id)
	}
	cur := &sales[0]
	values, err := t.saleChanges(ctx, cur, rec, have, refs)
	if err != nil {
		return err
	}
	state := cur.State
	if len(values) > 0 {
		if state != StateDraft {
			return refuse("%s is %s in Tryton, and only a draft sale is changed (its invoice and shipment are made from it): %s", cur.name(), state, pastDraftAdvice(state))
		}
		if err := t.write(ctx, "sale.sale", []int64{id}, values); err != nil {
			return err
		}
	}
	if err := t.advance(ctx, id, state, want); err != nil {
		if !isRefusal(err) {
			return err
		}
		return t.unstick(ctx, id, err)
	}
	return nil
}

// pastDraftAdvice says what to do about an update of a sale in state.
func pastDraftAdvice(state string) string {
	switch state {
	case StateQuotation, StateConfirmed:
		return "set it back to draft in Tryton and replay the record, or change the sale there by hand and discard the record"
	case "cancelled":
		return "it was cancelled there; discard the record, or set the sale back to draft in Tryton and replay it"
	}
	return "change it in Tryton by hand (a credit note, a return) and discard the record"
}

// customerRef is the order's party: the customer id the recipe found or made.
func customerRef(refs map[string]string) (int64, error) {
	ref, ok := refs[connector.RefCustomer]
	if !ok || ref == "" {
		return 0, refuse("the order comes without its customer's party id (Write.Refs[%q]); the order recipe finds or creates the customer before the order", connector.RefCustomer)
	}
	id, err := parseID(ref)
	if err != nil {
		return 0, refuse("the order's customer %q (Write.Refs[%q]) is not a Tryton party id", ref, connector.RefCustomer)
	}
	return id, nil
}

// saleHeader are the sale's fields from the order's header fields in have.
func (t *Target) saleHeader(ctx context.Context, rec *order, have map[string]bool) (map[string]any, error) {
	v := map[string]any{}
	if have["number"] {
		v["reference"] = rec.Number
	}
	if have["currency"] {
		id, err := t.lookup(ctx, "currency.currency", "code", rec.Currency, "currency with the code")
		if err != nil {
			return nil, err
		}
		v["currency"] = id
	}
	if have["ordered_at"] {
		d, err := saleDate(rec.OrderedAt)
		if err != nil {
			return nil, err
		}
		v["sale_date"] = d.encode()
	}
	if have["payment_term"] {
		id, err := t.paymentTerm(ctx, rec.PaymentTerm)
		if err != nil {
			return nil, err
		}
		v["payment_term"] = id
	}
	return v, nil
}

// saleDate is the date part of ordered_at, on the calendar of its own offset: the day the
// customer ordered.
func saleDate(s string) (dateValue, error) {
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if ts, err = time.Parse(time.DateOnly, s); err != nil {
			return dateValue{}, refuse("ordered_at %q is not an RFC 3339 date and time (2026-12-01T09:30:00+01:00); fix the flow's mapping of ordered_at", s)
		}
	}
	return dateValue{Year: ts.Year(), Month: int(ts.Month()), Day: ts.Day()}, nil
}

// paymentTerm finds a payment term by name; the flow's value map has turned the source's
// term into Tryton's name.
func (t *Target) paymentTerm(ctx context.Context, name string) (int64, error) {
	id, err := t.lookup(ctx, "account.invoice.payment_term", "name", name, "payment term")
	var r *refusal
	if !errors.As(err, &r) {
		return id, err
	}
	type row struct {
		Name string `json:"name"`
	}
	terms, err := searchRead[row](ctx, t, "account.invoice.payment_term", []any{}, []string{"name"}, nil)
	if err != nil {
		return 0, err
	}
	names := make([]string, len(terms))
	for i, term := range terms {
		names[i] = fmt.Sprintf("%q", term.Name)
	}
	return 0, refuse("Tryton has no payment term %q (it has %s); map the source's term onto one of them in the flow's value map for payment_term, or create %q in Tryton", name, strings.Join(names, ", "), name)
}

// warehouse is the warehouse of settings.warehouse, which sales ship from, so that the
// stock they reserve is the stock levels report.
func (t *Target) warehouse(ctx context.Context) (int64, error) {
	return t.remember("warehouse\x00"+t.settings.Warehouse, func() (int64, error) {
		ids, err := t.searchIDs(ctx, "stock.location", []any{[]any{"type", "=", "warehouse"}, []any{"code", "=", t.settings.Warehouse}})
		if err != nil {
			return 0, err
		}
		if len(ids) == 0 {
			return 0, refuse("Tryton has no warehouse with the code %q (settings.warehouse), which sales ship from; name one that exists", t.settings.Warehouse)
		}
		return ids[0], nil
	})
}

// saleParty is what a sale takes from its customer's party.
type saleParty struct {
	ID          int64
	PaymentTerm many2one
	Addresses   []addressRow
}

func (t *Target) readParty(ctx context.Context, id int64) (*saleParty, error) {
	var rows []struct {
		PaymentTerm many2one `json:"customer_payment_term"`
	}
	if err := t.c.call(ctx, &rows, "model.party.party.read", []int64{id}, []string{"customer_payment_term"}, t.ctx); err != nil {
		return nil, fmt.Errorf("reading the order's customer, party %d: %w", id, err)
	}
	if len(rows) != 1 {
		return nil, refuse("Tryton has no party %d, the order's customer", id)
	}
	addrs, err := searchRead[addressRow](ctx, t, "party.address", []any{[]any{"party", "=", id}}, []string{"street", "postal_code", "city", "party_name", "country.code", "invoice", "delivery"}, nil)
	if err != nil {
		return nil, err
	}
	return &saleParty{ID: id, PaymentTerm: rows[0].PaymentTerm, Addresses: addrs}, nil
}

// saleAddresses picks the sale's invoice and shipment addresses among the party's (which
// the customer recipe wrote from the order): the one equal to the order's billing (shipping)
// address, else the party's invoice (delivery) address, else its first. The order's
// shipping address defaults to its billing address.
func (p *saleParty) saleAddresses(billing, shipping *address) (invoice, shipment int64, err error) {
	if len(p.Addresses) == 0 {
		return 0, 0, refuse("the order's customer, party %d, has no address, and Tryton quotes a sale only with an invoice and a shipment address; give the order a billing address, or add one to the party in Tryton", p.ID)
	}
	if shipping == nil {
		shipping = billing
	}
	pick := func(a *address, role func(addressRow) bool) int64 {
		if a != nil {
			if i := slices.IndexFunc(p.Addresses, func(r addressRow) bool { return r.is(a) }); i >= 0 {
				return p.Addresses[i].ID
			}
		}
		if i := slices.IndexFunc(p.Addresses, role); i >= 0 {
			return p.Addresses[i].ID
		}
		return p.Addresses[0].ID
	}
	return pick(billing, func(r addressRow) bool { return bool(r.Invoice) }),
		pick(shipping, func(r addressRow) bool { return bool(r.Delivery) }), nil
}

// saleVariant is a product variant an order line names, by its code (the SKU).
type saleVariant struct {
	ID      int64  `json:"id"`
	Code    string `json:"code"`
	Name    string `json:"name"`
	Salable flag   `json:"salable"`
}

// saleLines are the sale.line values of an order's lines. Every SKU is found as a variant
// in one search (Refs name templates, as Find(product, sku) answers); the unit and taxes
// are what Tryton's sale form gives the product for this party (its tax rule applies), one
// on_change per product; the price is the order's.
func (t *Target) saleLines(ctx context.Context, party int64, currency any, lines []orderLine) ([]map[string]any, error) {
	var skus []string
	for i, l := range lines {
		switch {
		case l.SKU == "":
			return nil, refuse("order line %d has no sku", i+1)
		case l.Quantity == nil || *l.Quantity <= 0:
			return nil, refuse("order line %d (sku %q) has no quantity above 0", i+1, l.SKU)
		case l.Price == nil:
			return nil, refuse("order line %d (sku %q) has no price", i+1, l.SKU)
		}
		if !slices.Contains(skus, l.SKU) {
			skus = append(skus, l.SKU)
		}
	}
	byCode, err := variantsBySKU(ctx, t, "order", skus, []string{"code", "name", "salable"}, func(v saleVariant) string { return v.Code })
	if err != nil {
		return nil, err
	}
	type defaults struct {
		unit  int64
		taxes []int64
	}
	known := map[int64]defaults{}
	out := make([]map[string]any, len(lines))
	for i, l := range lines {
		v := byCode[l.SKU]
		if !v.Salable {
			return nil, refuse("the product of sku %q (variant %d) is not salable in Tryton; tick Salable on it and give it a sale unit", l.SKU, v.ID)
		}
		d, ok := known[v.ID]
		if !ok {
			unit, taxes, err := t.lineDefaults(ctx, party, currency, v)
			if err != nil {
				return nil, err
			}
			d = defaults{unit, taxes}
			known[v.ID] = d
		}
		desc := l.Description
		if desc == "" {
			desc = v.Name
		}
		line := map[string]any{"type": "line", "product": v.ID, "quantity": *l.Quantity, "unit": d.unit,
			"unit_price": decimal(*l.Price), "description": desc}
		if len(d.taxes) > 0 {
			line["taxes"] = []any{[]any{"add", d.taxes}}
		}
		out[i] = line
	}
	return out, nil
}

// lineDefaults asks Tryton what its sale form fills in for a line of the variant: the
// sale unit, and the customer taxes after the party's tax rule.
func (t *Target) lineDefaults(ctx context.Context, party int64, currency any, v saleVariant) (int64, []int64, error) {
	values := map[string]any{"id": -1, "type": "line", "product": v.ID, "quantity": 1, "unit": nil, "unit_price": nil,
		"taxes": []any{}, "company": t.company, "_parent_sale.party": party, "_parent_sale.invoice_party": nil,
		"_parent_sale.currency": currency, "_parent_sale.company": t.company, "_parent_sale.sale_date": nil}
	// The taxes come as the form's x2many change: {"add": [[index, {"id": tax}], ...]}.
	var res []struct {
		Unit  many2one `json:"unit"`
		Taxes struct {
			Add [][]json.RawMessage `json:"add"`
		} `json:"taxes"`
	}
	if err := t.c.call(ctx, &res, "model.sale.line.on_change", values, []string{"product"}, t.ctx); err != nil {
		return 0, nil, fmt.Errorf("asking Tryton for the unit and taxes of sku %q: %w", v.Code, err)
	}
	if len(res) != 1 || res[0].Unit == nil {
		return 0, nil, refuse("Tryton gives the product of sku %q (variant %d) no sale unit; set one on it", v.Code, v.ID)
	}
	var taxes []int64
	for _, a := range res[0].Taxes.Add {
		var tax struct {
			ID int64 `json:"id"`
		}
		if len(a) != 2 || json.Unmarshal(a[1], &tax) != nil || tax.ID == 0 {
			return 0, nil, fmt.Errorf("asking Tryton for the taxes of sku %q: unexpected answer %s", v.Code, a)
		}
		taxes = append(taxes, tax.ID)
	}
	return *res[0].Unit, taxes, nil
}

// variantsBySKU finds, in one search, the variants whose codes are skus, reading fields of each
// into a V whose code code gives, by SKU. A SKU no active variant has is the refusal of the
// document (what names its kind: "order"), naming each (missingSKUs).
func variantsBySKU[V any](ctx context.Context, t *Target, what string, skus, fields []string, code func(V) string) (map[string]V, error) {
	rows, err := searchRead[V](ctx, t, "product.product", []any{[]any{"code", "in", skus}}, fields, nil)
	if err != nil {
		return nil, fmt.Errorf("finding the %s's products by sku: %w", what, err)
	}
	byCode := make(map[string]V, len(rows))
	for _, r := range rows {
		byCode[code(r)] = r
	}
	var missing []string
	for _, s := range skus {
		if _, ok := byCode[s]; !ok {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, t.missingSKUs(ctx, what, missing)
	}
	return byCode, nil
}

// missingSKUs is the refusal of a document (what names its kind: "order") whose SKUs no
// active variant has, naming each; a SKU that is only a template's code (the prefix of a
// product with variants) says so.
func (t *Target) missingSKUs(ctx context.Context, what string, missing []string) error {
	type row struct {
		ID   int64  `json:"id"`
		Code string `json:"code"`
	}
	templates, err := searchRead[row](ctx, t, "product.template", []any{[]any{"code", "in", missing}}, []string{"code"}, nil)
	if err != nil {
		return fmt.Errorf("finding the %s's products by sku: %w", what, err)
	}
	var msgs, unknown []string
	for _, tm := range templates {
		type variantCode struct {
			Code string `json:"code"`
		}
		vs, err := searchRead[variantCode](ctx, t, "product.product", []any{[]any{"template", "=", tm.ID}}, []string{"code"}, nil)
		if err != nil {
			return fmt.Errorf("reading the variants of product template %d: %w", tm.ID, err)
		}
		codes := make([]string, len(vs))
		for i, v := range vs {
			codes[i] = v.Code
		}
		msgs = append(msgs, fmt.Sprintf("sku %q is the code of product template %d, not of a variant: a line names one variant's sku (%s)", tm.Code, tm.ID, strings.Join(codes, ", ")))
	}
	for _, sku := range missing {
		if !slices.ContainsFunc(templates, func(tm row) bool { return tm.Code == sku }) {
			unknown = append(unknown, fmt.Sprintf("%q", sku))
		}
	}
	if len(unknown) > 0 {
		msgs = append([]string{fmt.Sprintf("Tryton has no product with the sku %s; create the products first (the product flow does), or correct the %s's skus", strings.Join(unknown, ", "), what)}, msgs...)
	}
	return refuse("%s", strings.Join(msgs, "; "))
}

// advance takes sale id from state to want: quote, then confirm. A sale at or past want, or
// cancelled, is left as it is: the target never takes a sale back.
func (t *Target) advance(ctx context.Context, id int64, state, want string) error {
	if saleRank(state) < 0 || saleRank(state) >= saleRank(want) {
		return nil
	}
	if state == StateDraft {
		if err := t.c.call(ctx, nil, "model.sale.sale.quote", []int64{id}, t.ctx); err != nil {
			return fmt.Errorf("quoting sale %d: %w", id, err)
		}
	}
	if want == StateQuotation {
		return nil
	}
	if err := t.c.call(ctx, nil, "model.sale.sale.confirm", []int64{id}, t.ctx); err != nil {
		return fmt.Errorf("confirming sale %d: %w", id, err)
	}
	return t.checkProcessed(ctx, id)
}

// checkProcessed makes sure a confirmed sale was processed (its invoice and shipment made).
// Tryton processes it in a task after the confirm's transaction, whose failure only its log
// shows; the sale then stays confirmed. Processing it again reports the failure.
func (t *Target) checkProcessed(ctx context.Context, id int64) error {
	state, err := t.saleState(ctx, id)
	if err != nil || state == "processing" || state == "done" {
		return err
	}
	if state == StateConfirmed {
		delayed, err := t.processDelayed(ctx)
		if err != nil || delayed {
			return err
		}
		if err := t.c.call(ctx, nil, "model.sale.sale.process", []int64{id}, t.ctx); err != nil {
			return fmt.Errorf("processing confirmed sale %d (making its invoice and shipment): %w", id, err)
		}
		if state, err = t.saleState(ctx, id); err != nil || state == "processing" || state == "done" {
			return err
		}
	}
	return refuse("Tryton left sale %d %s after confirming it, not processing; its server log says why", id, state)
}

// processDelayed reports whether Tryton's sale configuration delays processing confirmed
// sales (sale_process_after), so that a confirmed sale is where it should be.
func (t *Target) processDelayed(ctx context.Context) (bool, error) {
	var rows []struct {
		After any `json:"sale_process_after"`
	}
	if err := t.c.call(ctx, &rows, "model.sale.configuration.read", []int64{1}, []string{"sale_process_after"}, t.ctx); err != nil {
		return false, fmt.Errorf("reading Tryton's sale configuration: %w", err)
	}
	return len(rows) == 1 && rows[0].After != nil, nil
}

func (t *Target) saleState(ctx context.Context, id int64) (string, error) {
	var rows []struct {
		State string `json:"state"`
	}
	if err := t.c.call(ctx, &rows, "model.sale.sale.read", []int64{id}, []string{"state"}, t.ctx); err != nil {
		return "", fmt.Errorf("reading the state of sale %d: %w", id, err)
	}
	if len(rows) != 1 {
		return "", fmt.Errorf("reading the state of sale %d: Tryton answered %d sales", id, len(rows))
	}
	return rows[0].State, nil
}

// discardSale removes a sale just created that Tryton would not advance (cause), so that
// the refused order leaves nothing behind. A confirmed sale goes back to draft first: Tryton
// deletes only drafts and quotations.
func (t *Target) discardSale(ctx context.Context, id int64, cause error) error {
	err := func() error {
		if _, err := t.backToDraft(ctx, id); err != nil {
			return err
		}
		return t.c.call(ctx, nil, "model.sale.sale.delete", []int64{id}, t.ctx)
	}()
	if err != nil {
		return refuse("%v (removing the sale again failed too: %v; delete sale %d in Tryton, fix what Tryton says, then replay the record)", cause, err, id)
	}
	return fmt.Errorf("%w (the sale was removed again, so nothing of the order stays in Tryton: fix what Tryton says, then replay the record)", cause)
}

// unstick leaves a sale that existed before, and that Tryton would not advance (cause), in
// a state Tryton can go on from: a draft rather than confirmed without an invoice and a
// shipment.
func (t *Target) unstick(ctx context.Context, id int64, cause error) error {
	state, err := t.backToDraft(ctx, id)
	if err != nil {
		return refuse("%v (and setting sale %d back to draft failed: %v; set it back in Tryton, fix what Tryton says, then replay the record)", cause, id, err)
	}
	return fmt.Errorf("%w (sale %d is %s, with the order's changes: fix what Tryton says, then replay the record)", cause, id, state)
}

// backToDraft sets a sale Tryton confirmed but did not process back to draft, and returns
// its state.
func (t *Target) backToDraft(ctx context.Context, id int64) (string, error) {
	state, err := t.saleState(ctx, id)
	if err != nil || state != StateConfirmed {
		return state, err
	}
	if err := t.c.call(ctx, nil, "model.sale.sale.draft", []int64{id}, t.ctx); err != nil {
		return state, fmt.Errorf("setting sale %d back to draft: %w", id, err)
	}
	return StateDraft, nil
}

// saleRow is a sale as the target reads it, with its lines.
type saleRow struct {
	ID              int64      `json:"id"`
	State           string     `json:"state"`
	Number          string     `json:"number"`
	Reference       string     `json:"reference"`
	Description     string     `json:"description"`
	Comment         string     `json:"comment"`
	Party           int64      `json:"party"`
	InvoiceAddress  many2one   `json:"invoice_address"`
	ShipmentAddress many2one   `json:"shipment_address"`
	SaleDate        *dateValue `json:"sale_date"`
	Currency        *struct {
		Code string `json:"code"`
	} `json:"currency."`
	PaymentTerm *struct {
		Name string `json:"name"`
	} `json:"payment_term."`
	Lines []saleLineRow `json:"-"`
}

type saleLineRow struct {
	ID          int64         `json:"id"`
	Sale        int64         `json:"sale"`
	Type        string        `json:"type"`
	Sequence    *int64        `json:"sequence"`
	Quantity    float64       `json:"quantity"`
	UnitPrice   *decimalValue `json:"unit_price"`
	Description string        `json:"description"`
	Product     *struct {
		Code string `json:"code"`
	} `json:"product."`
}

// name names the sale in messages: its id, and its number once it has one.
func (s *saleRow) name() string {
	if s.Number != "" {
		return fmt.Sprintf("sale %d (number %s)", s.ID, s.Number)
	}
	return fmt.Sprintf("sale %d", s.ID)
}

var saleFields = []string{"state", "number", "reference", "description", "comment", "party", "invoice_address",
	"shipment_address", "sale_date", "currency.code", "payment_term.name"}

// readSales reads the sales matching domain with their lines, in two searches.
func (t *Target) readSales(ctx context.Context, domain []any) ([]saleRow, error) {
	sales, err := searchRead[saleRow](ctx, t, "sale.sale", domain, saleFields, nil)
	if err != nil || len(sales) == 0 {
		return sales, err
	}
	ids := make([]int64, len(sales))
	for i, s := range sales {
		ids[i] = s.ID
	}
	lines, err := searchRead[saleLineRow](ctx, t, "sale.line", []any{[]any{"sale", "in", ids}},
		[]string{"sale", "type", "sequence", "quantity", "unit_price", "description", "product.code"}, nil)
	if err != nil {
		return nil, err
	}
	// Tryton orders a sale's lines by sequence (empty first), then by id.
	slices.SortStableFunc(lines, func(a, b saleLineRow) int {
		switch {
		case a.Sequence == nil && b.Sequence != nil:
			return -1
		case a.Sequence != nil && b.Sequence == nil:
			return 1
		case a.Sequence != nil && *a.Sequence != *b.Sequence:
			return cmp.Compare(*a.Sequence, *b.Sequence)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for i := range sales {
		for _, l := range lines {
			if l.Sale == sales[i].ID {
				sales[i].Lines = append(sales[i].Lines, l)
			}
		}
	}
	return sales, nil
}

// saleChanges are the values that make the sale hold the order's fields in have, and the
// customer and addresses of refs; empty when it holds them already.
func (t *Target) saleChanges(ctx context.Context, cur *saleRow, rec *order, have map[string]bool, refs map[string]string) (map[string]any, error) {
	header, err := t.saleHeader(ctx, rec, have)
	if err != nil {
		return nil, err
	}
	values := map[string]any{}
	if have["number"] && rec.Number != cur.Reference {
		values["reference"] = header["reference"]
	}
	if have["currency"] && (cur.Currency == nil || cur.Currency.Code != rec.Currency) {
		values["currency"] = header["currency"]
	}
	if have["ordered_at"] {
		d, _ := saleDate(rec.OrderedAt) // saleHeader checked it
		if cur.SaleDate == nil || *cur.SaleDate != d {
			values["sale_date"] = header["sale_date"]
		}
	}
	if have["payment_term"] && (cur.PaymentTerm == nil || cur.PaymentTerm.Name != rec.PaymentTerm) {
		values["payment_term"] = header["payment_term"]
	}
	if have["payment_method"] || have["employee_number"] || have["note"] {
		method, employee, note := parseComment(cur.Comment)
		if have["payment_method"] {
			method = rec.PaymentMethod
		}
		if have["employee_number"] {
			employee = rec.EmployeeNumber
		}
		if have["note"] {
			note = rec.Note
		}
		if c := saleComment(method, employee, note); c != cur.Comment {
			values["comment"] = c
		}
	}
	partyID := cur.Party
	if _, ok := refs[connector.RefCustomer]; ok {
		if partyID, err = customerRef(refs); err != nil {
			return nil, err
		}
	}
	if partyID != cur.Party || have["billing_address"] || have["shipping_address"] {
		p, err := t.readParty(ctx, partyID)
		if err != nil {
			return nil, err
		}
		invoice, shipment, err := p.saleAddresses(rec.BillingAddress, rec.ShippingAddress)
		if err != nil {
			return nil, err
		}
		if partyID != cur.Party {
			values["party"] = partyID
		}
		if cur.InvoiceAddress == nil || *cur.InvoiceAddress != invoice {
			values["invoice_address"] = invoice
		}
		if cur.ShipmentAddress == nil || *cur.ShipmentAddress != shipment {
			values["shipment_address"] = shipment
		}
	}
	if have["lines"] && (len(rec.Lines) == 0 || !cur.holdsLines(rec.Lines) || values["party"] != nil) {
		if len(rec.Lines) == 0 {
			return nil, refuse("order %q has no lines", rec.Number)
		}
		currency := values["currency"]
		if currency == nil && cur.Currency != nil {
			if currency, err = t.lookup(ctx, "currency.currency", "code", cur.Currency.Code, "currency with the code"); err != nil {
				return nil, err
			}
		}
		lines, err := t.saleLines(ctx, partyID, currency, rec.Lines)
		if err != nil {
			return nil, err
		}
		ids := make([]int64, len(cur.Lines))
		for i, l := range cur.Lines {
			ids[i] = l.ID
		}
		cmds := []any{[]any{"create", lines}}
		if len(ids) > 0 {
			cmds = append([]any{[]any{"delete", ids}}, cmds...)
		}
		values["lines"] = cmds
	}
	return values, nil
}

// holdsLines reports whether the sale's lines are the order's: the same SKUs in the same
// order, with the same quantities and prices, and the same descriptions where the order
// gives one.
func (s *saleRow) holdsLines(lines []orderLine) bool {
	if len(s.Lines) != len(lines) {
		return false
	}
	for i, l := range lines {
		c := s.Lines[i]
		if c.Type != "line" || c.Product == nil || c.Product.Code != l.SKU || l.Quantity == nil || l.Price == nil ||
			!same(c.Quantity, *l.Quantity) || !same(c.UnitPrice.float(), *l.Price) ||
			(l.Description != "" && c.Description != l.Description) {
			return false
		}
	}
	return true
}

// same compares quantities and prices to Tryton's precision (4 digits for unit prices).
func same(a, b float64) bool { return math.Abs(a-b) < 5e-5 }

// findOrders finds sales by external reference (their description) or by the order's
// number (their reference), each with its fields in the canonical order shape.
func (t *Target) findOrders(ctx context.Context, field string, values []string) ([]connector.Found, error) {
	var domain []any
	var valueOf func(*saleRow) string
	switch field {
	case connector.FieldExternalRef:
		refs := make([]string, len(values))
		for i, v := range values {
			refs[i] = refPrefix + v
		}
		domain = []any{[]any{"description", "in", refs}}
		valueOf = func(s *saleRow) string { return strings.TrimPrefix(s.Description, refPrefix) }
	case FieldNumber:
		domain = []any{[]any{"reference", "in", values}}
		valueOf = func(s *saleRow) string { return s.Reference }
	default:
		return nil, fmt.Errorf("finding orders by %s: the tryton target finds them by external_ref or number", field)
	}
	sales, err := t.readSales(ctx, domain)
	if err != nil {
		return nil, fmt.Errorf("finding orders by %s: %w", field, err)
	}
	if len(sales) == 0 {
		return nil, nil
	}
	emails, err := t.partyEmails(ctx, sales)
	if err != nil {
		return nil, fmt.Errorf("reading the customers of orders: %w", err)
	}
	out := make([]connector.Found, len(sales))
	for i := range sales {
		s := &sales[i]
		out[i] = connector.Found{Value: valueOf(s), ID: idString(s.ID), Fields: s.fields(emails[s.Party])}
	}
	return out, nil
}

// partyEmails are the first e-mail address of each sale's party, in one search.
func (t *Target) partyEmails(ctx context.Context, sales []saleRow) (map[int64]string, error) {
	var parties []int64
	for _, s := range sales {
		if !slices.Contains(parties, s.Party) {
			parties = append(parties, s.Party)
		}
	}
	rows, err := searchRead[mechanismRow](ctx, t, "party.contact_mechanism", []any{[]any{"party", "in", parties}, []any{"type", "=", "email"}}, []string{"party", "value"}, nil)
	if err != nil {
		return nil, err
	}
	emails := map[int64]string{}
	for _, r := range rows {
		if _, ok := emails[r.Party]; !ok {
			emails[r.Party] = r.Value
		}
	}
	return emails, nil
}

// fields is the sale in the canonical order shape, with Tryton's state of it
// (connector.FieldState), by which the recipe takes on a sale an interrupted write left short
// of the flow's state.
func (s *saleRow) fields(email string) []byte {
	lines := make([]map[string]any, 0, len(s.Lines))
	for _, l := range s.Lines {
		if l.Type != "line" {
			continue
		}
		line := map[string]any{"quantity": l.Quantity, "price": l.UnitPrice.float()}
		if l.Product != nil {
			line["sku"] = l.Product.Code
		}
		lines = append(lines, line)
	}
	out := map[string]any{"number": s.Reference, "lines": lines, connector.FieldState: s.State}
	if s.Currency != nil {
		out["currency"] = s.Currency.Code
	}
	if email != "" {
		out["customer"] = map[string]any{"email": email}
	}
	if s.PaymentTerm != nil {
		out["payment_term"] = s.PaymentTerm.Name
	}
	method, employee, note := parseComment(s.Comment)
	for k, v := range map[string]string{"payment_method": method, "employee_number": employee, "note": note} {
		if v != "" {
			out[k] = v
		}
	}
	return mustJSON(out)
}
