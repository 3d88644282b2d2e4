package tryton

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// The states an invoice can be taken to (Write.State), draft by default: validated is
// Tryton's validate_invoice (a supplier invoice gets its number and a draft move), posted
// is Tryton's post (the number from the invoice sequence and a posted move).
const (
	InvoiceDraft     = "draft"
	InvoiceValidated = "validated"
	InvoicePosted    = "posted"
)

// The canonical invoice kinds and Tryton's invoice types.
const (
	kindSales    = "sales"
	kindPurchase = "purchase"
	typeOut      = "out"
	typeIn       = "in"
)

// invoiceLine is one line of a canonical invoice.
type invoiceLine struct {
	SKU         string   `json:"sku"`
	Description string   `json:"description"`
	Quantity    *float64 `json:"quantity"`
	Price       *float64 `json:"price"`
	TaxRate     *float64 `json:"tax_rate"`
}

// invoiceTotals are the source's totals, which Tryton's own computation must match.
type invoiceTotals struct {
	Net   *float64 `json:"net"`
	Tax   *float64 `json:"tax"`
	Gross *float64 `json:"gross"`
}

// invoice is the canonical invoice record. The party comes as Write.Refs[customer], found
// or made by the recipe; due_date is informational, since Tryton computes due dates from
// the payment term; taxes are Tryton's own, checked through the totals.
type invoice struct {
	Number    string         `json:"number"`
	Kind      string         `json:"kind"`
	Date      string         `json:"date"`
	Currency  string         `json:"currency"`
	Reference string         `json:"reference"`
	Lines     []invoiceLine  `json:"lines"`
	Totals    *invoiceTotals `json:"totals"`
}

// invoiceType is Tryton's type of an invoice of kind.
func invoiceType(kind string) (string, error) {
	switch kind {
	case "", kindSales:
		return typeOut, nil
	case kindPurchase:
		return typeIn, nil
	}
	return "", refuse("invoice kind %q is neither %q nor %q", kind, kindSales, kindPurchase)
}

func invoiceKind(typ string) string {
	if typ == typeIn {
		return kindPurchase
	}
	return kindSales
}

// writeInvoice creates or updates one invoice (account.invoice) and takes it to the
// write's state. The source's number is the invoice's reference (Tryton numbers an invoice
// itself when it posts it), the external reference its description, and the source's own
// reference its comment.
func (t *Target) writeInvoice(ctx context.Context, w connector.Write) (string, error) {
	if w.Op == connector.WriteDelete {
		return "", refuse("the tryton target does not delete invoices: delete a draft one in Tryton, and undo a posted one there with a credit note")
	}
	state, err := documentState("an invoice", w.State, invoiceStates)
	if err != nil {
		return "", err
	}
	var rec invoice
	have, err := decodePayload(w.Payload, &rec)
	if err != nil {
		return "", err
	}
	switch w.Op {
	case connector.WriteCreate:
		id, err := t.createInvoice(ctx, w, &rec, state)
		if err != nil {
			return "", err
		}
		return idString(id), nil
	case connector.WriteUpdate:
		id, err := parseID(w.ID)
		if err != nil {
			return "", err
		}
		return w.ID, t.updateInvoice(ctx, id, w, &rec, have, state)
	}
	return "", refuse("write %q is not create, update or delete", w.Op)
}

func (t *Target) createInvoice(ctx context.Context, w connector.Write, rec *invoice, state string) (int64, error) {
	if rec.Number == "" {
		return 0, refuse("an invoice needs a number")
	}
	typ, err := invoiceType(rec.Kind)
	if err != nil {
		return 0, err
	}
	party, err := partyRef(w.Refs)
	if err != nil {
		return 0, err
	}
	values, err := t.invoiceParty(ctx, typ, party)
	if err != nil {
		return 0, err
	}
	values["type"] = typ
	values["reference"] = rec.Number
	values["description"] = refPrefix + w.Key
	if rec.Reference != "" {
		values["comment"] = rec.Reference
	}
	if values["invoice_date"], err = t.invoiceDate(ctx, rec.Date); err != nil {
		return 0, err
	}
	if rec.Currency != "" {
		if values["currency"], err = t.lookup(ctx, "currency.currency", "code", rec.Currency, "currency with the code"); err != nil {
			return 0, err
		}
	}
	lines, err := t.invoiceLines(ctx, typ, rec.Lines)
	if err != nil {
		return 0, err
	}
	values["lines"] = []any{[]any{"create", lines}}
	id, err := t.create(ctx, "account.invoice", values)
	if err != nil {
		return 0, err
	}
	// Tryton computes a draft invoice's taxes on write, not on create.
	err = t.write(ctx, "account.invoice", []int64{id}, map[string]any{"description": refPrefix + w.Key})
	if err == nil {
		err = t.checkTotals(ctx, id, rec.Totals)
	}
	if err == nil {
		err = t.advanceInvoice(ctx, id, state)
	}
	if err == nil {
		return id, nil
	}
	if isRefusal(err) {
		// The invoice is still a draft without a number (a refused transition is
		// rolled back): take it away, so that the refusal leaves nothing behind and a
		// replay creates it afresh.
		if derr := t.c.call(ctx, nil, "model.account.invoice.delete", []int64{id}, t.ctx); derr != nil {
			return 0, fmt.Errorf("removing draft invoice %d after its refusal (%v): %w", id, err, derr)
		}
	}
	return 0, err
}

// updateInvoice writes the fields present in the record to a draft invoice, replacing its
// lines when the record has them, and takes it to state. Tryton freezes an invoice once it
// is validated or posted, so those are refused.
func (t *Target) updateInvoice(ctx context.Context, id int64, w connector.Write, rec *invoice, have map[string]bool, state string) error {
	type row struct {
		ID    int64   `json:"id"`
		Type  string  `json:"type"`
		State string  `json:"state"`
		Party int64   `json:"party"`
		Lines []int64 `json:"lines"`
	}
	var rows []row
	if err := t.c.call(ctx, &rows, "model.account.invoice.read", []int64{id}, []string{"type", "state", "party", "lines"}, t.ctx); err != nil {
		return err
	}
	if len(rows) != 1 {
		return refuse("Tryton has no invoice %d", id)
	}
	cur := rows[0]
	if cur.State != InvoiceDraft {
		return refuse("invoice %d is %s in Tryton, and Tryton changes draft invoices only: correct a posted invoice in Tryton with a credit note and send the correction as a new invoice; a validated one can be reset to draft in Tryton, then replay this record", id, cur.State)
	}
	values := map[string]any{}
	if have["kind"] {
		typ, err := invoiceType(rec.Kind)
		if err != nil {
			return err
		}
		if typ != cur.Type {
			return refuse("invoice %d is a %s invoice in Tryton, the record a %s one: an invoice's kind does not change; delete the draft in Tryton and replay the record", id, invoiceKind(cur.Type), invoiceKind(typ))
		}
	}
	if have["number"] {
		values["reference"] = rec.Number
	}
	if have["reference"] {
		values["comment"] = rec.Reference
	}
	if have["date"] {
		d, err := t.invoiceDate(ctx, rec.Date)
		if err != nil {
			return err
		}
		values["invoice_date"] = d
	}
	if have["currency"] {
		c, err := t.lookup(ctx, "currency.currency", "code", rec.Currency, "currency with the code")
		if err != nil {
			return err
		}
		values["currency"] = c
	}
	if w.Refs[connector.RefCustomer] != "" {
		party, err := partyRef(w.Refs)
		if err != nil {
			return err
		}
		if party != cur.Party {
			header, err := t.invoiceParty(ctx, cur.Type, party)
			if err != nil {
				return err
			}
			delete(header, "journal") // the kind, and so the journal, stays
			maps.Copy(values, header)
		}
	}
	if have["lines"] {
		lines, err := t.invoiceLines(ctx, cur.Type, rec.Lines)
		if err != nil {
			return err
		}
		values["lines"] = []any{[]any{"delete", cur.Lines}, []any{"create", lines}}
	}
	if err := t.write(ctx, "account.invoice", []int64{id}, values); err != nil {
		return err
	}
	if have["totals"] {
		if err := t.checkTotals(ctx, id, rec.Totals); err != nil {
			return err
		}
	}
	return t.advanceInvoice(ctx, id, state)
}

// partyRef is the invoice's party as the recipe found or made it.
func partyRef(refs map[string]string) (int64, error) {
	s := refs[connector.RefCustomer]
	if s == "" {
		return 0, refuse("the invoice came without the Tryton id of its party (Refs[%q]): the recipe finds or creates the party before the invoice; give the invoice a party, or the flow a default party", connector.RefCustomer)
	}
	return parseID(s)
}

// invoiceParty returns the header fields that follow from the party: the party, its
// invoice address, its receivable (sales) or payable (purchase) account, its payment term
// (else the company's default for sales), and the revenue or expense journal.
func (t *Target) invoiceParty(ctx context.Context, typ string, party int64) (map[string]any, error) {
	var parties []struct {
		Name         string   `json:"name"`
		Receivable   many2one `json:"account_receivable"`
		Payable      many2one `json:"account_payable"`
		CustomerTerm many2one `json:"customer_payment_term"`
		SupplierTerm many2one `json:"supplier_payment_term"`
	}
	if err := t.c.call(ctx, &parties, "model.party.party.read", []int64{party},
		[]string{"name", "account_receivable", "account_payable", "customer_payment_term", "supplier_payment_term"}, t.ctx); err != nil {
		return nil, err
	}
	if len(parties) != 1 {
		return nil, refuse("Tryton has no party %d (the invoice's party)", party)
	}
	p := parties[0]
	account, term := p.Receivable, p.CustomerTerm
	accountKind, journalType := "receivable", "revenue"
	if typ == typeIn {
		account, term, accountKind, journalType = p.Payable, p.SupplierTerm, "payable", "expense"
	}
	if account == nil || (term == nil && typ == typeOut) {
		// The company's defaults (Tryton has no default supplier payment term).
		var conf []struct {
			Receivable many2one `json:"default_account_receivable"`
			Payable    many2one `json:"default_account_payable"`
			Term       many2one `json:"default_customer_payment_term"`
		}
		if err := t.c.call(ctx, &conf, "model.account.configuration.read", []int64{1},
			[]string{"default_account_receivable", "default_account_payable", "default_customer_payment_term"}, t.ctx); err != nil {
			return nil, err
		}
		if len(conf) == 1 {
			if account == nil {
				account = conf[0].Receivable
				if typ == typeIn {
					account = conf[0].Payable
				}
			}
			if term == nil && typ == typeOut {
				term = conf[0].Term
			}
		}
	}
	if account == nil {
		return nil, refuse("party %q has no %s account and Tryton's accounting configuration no default one: set one in Tryton", p.Name, accountKind)
	}
	addrs, err := searchRead[addressRow](ctx, t, "party.address", []any{[]any{"party", "=", party}}, []string{"invoice"}, nil)
	if err != nil {
		return nil, err
	}
	var addr int64
	if len(addrs) == 0 {
		// A supplier an invoice made has no address (an invoice names none), and Tryton
		// needs one to invoice: it gets the empty address Tryton's own client gives every
		// new party, which the accounting fills in when it wants to.
		if addr, err = t.create(ctx, "party.address", map[string]any{"party": party}); err != nil {
			return nil, fmt.Errorf("giving party %q the address Tryton needs to invoice it: %w", p.Name, err)
		}
	} else {
		addr = addrs[0].ID
	}
	if i := slices.IndexFunc(addrs, func(a addressRow) bool { return bool(a.Invoice) }); i >= 0 {
		addr = addrs[i].ID
	}
	journal, err := t.lookup(ctx, "account.journal", "type", journalType, "journal of the type")
	if err != nil {
		return nil, err
	}
	values := map[string]any{"party": party, "invoice_address": addr, "account": *account, "journal": journal}
	if term != nil {
		values["payment_term"] = *term
	}
	return values, nil
}

// invoiceDate is Tryton's date for an ISO date, or Tryton's today when it is empty (a
// supplier invoice cannot be posted without a date).
func (t *Target) invoiceDate(ctx context.Context, iso string) (any, error) {
	if iso == "" {
		var today json.RawMessage
		if err := t.c.call(ctx, &today, "model.ir.date.today", t.ctx); err != nil {
			return nil, err
		}
		return today, nil
	}
	return trytonDate(iso, "date")
}

// trytonDate is Tryton's encoding of an ISO 8601 date; field names it in the refusal.
func trytonDate(iso, field string) (map[string]any, error) {
	d, err := time.Parse(time.DateOnly, iso)
	if err != nil {
		return nil, refuse("%s %q is not an ISO 8601 date (YYYY-MM-DD)", field, iso)
	}
	return map[string]any{"__class__": "date", "year": d.Year(), "month": int(d.Month()), "day": d.Day()}, nil
}

// accountCategoryRow is what an accounting category gives the lines booked through it.
type accountCategoryRow struct {
	ID            int64    `json:"id"`
	Name          string   `json:"name"`
	Revenue       many2one `json:"account_revenue"`
	Expense       many2one `json:"account_expense"`
	CustomerTaxes []int64  `json:"customer_taxes_used"`
	SupplierTaxes []int64  `json:"supplier_taxes_used"`
}

// account is the account lines of an invoice of typ are booked to, and taxes their default
// taxes.
func (c *accountCategoryRow) account(typ string) many2one {
	if typ == typeIn {
		return c.Expense
	}
	return c.Revenue
}

func (c *accountCategoryRow) taxes(typ string) []int64 {
	if typ == typeIn {
		return c.SupplierTaxes
	}
	return c.CustomerTaxes
}

// taxRow is one of Tryton's taxes, for matching a line's tax rate.
type taxRow struct {
	ID    int64         `json:"id"`
	Name  string        `json:"name"`
	Type  string        `json:"type"`
	Rate  *decimalValue `json:"rate"`
	Group *struct {
		Kind string `json:"kind"`
	} `json:"group."`
}

// invoiceLines are the account.invoice.line values of lines. A line with a SKU is the
// variant with that code, booked to the revenue (sales) or expense (purchase) account of
// its accounting category; a line without one is booked through the accounting category
// of settings.invoice_line_category (else settings.account_category). A line's tax rate
// picks its taxes: the category's when their rates add up to it, else Tryton's one
// percentage tax of that rate; a line without a rate gets the category's.
func (t *Target) invoiceLines(ctx context.Context, typ string, lines []invoiceLine) ([]map[string]any, error) {
	if len(lines) == 0 {
		return nil, refuse("the invoice has no lines, and Tryton books an invoice from its lines: map the source's lines, or one line of the net amount with its tax rate")
	}
	var skus []string
	textLines := false
	for i, l := range lines {
		if l.Quantity == nil || l.Price == nil {
			return nil, refuse("line %d needs a quantity and a price", i+1)
		}
		if l.TaxRate != nil && *l.TaxRate < 0 {
			return nil, refuse("line %d has a negative tax rate %v", i+1, *l.TaxRate)
		}
		switch {
		case l.SKU == "":
			textLines = true
		case !slices.Contains(skus, l.SKU):
			skus = append(skus, l.SKU)
		}
	}
	type variantRow struct {
		ID       int64    `json:"id"`
		Code     string   `json:"code"`
		Name     string   `json:"name"`
		Uom      int64    `json:"default_uom"`
		Category many2one `json:"account_category"`
	}
	variants := map[string]variantRow{}
	if len(skus) > 0 {
		var err error
		if variants, err = variantsBySKU(ctx, t, "invoice", skus, []string{"code", "name", "default_uom", "account_category"}, func(v variantRow) string { return v.Code }); err != nil {
			return nil, err
		}
	}
	catIDs := []int64{}
	for _, s := range skus {
		switch v := variants[s]; {
		case v.Category == nil:
			return nil, refuse("product %q has no accounting category in Tryton, so its line has no account to be booked to: give it one in Tryton (settings.account_category does for the products Syncline creates)", s)
		case !slices.Contains(catIDs, *v.Category):
			catIDs = append(catIDs, *v.Category)
		}
	}
	var textCat int64
	if textLines {
		name := t.settings.InvoiceLineCategory
		setting := "settings.invoice_line_category"
		if name == "" {
			name, setting = t.settings.AccountCategory, "settings.account_category"
		}
		if name == "" {
			return nil, refuse("a line has no sku, and neither settings.invoice_line_category nor settings.account_category names the accounting category whose account books it: set one of them on the endpoint")
		}
		id, err := t.lookup(ctx, "product.category", "name", name, "product category ("+setting+")")
		if err != nil {
			return nil, err
		}
		textCat = id
		if !slices.Contains(catIDs, id) {
			catIDs = append(catIDs, id)
		}
	}
	var cats []accountCategoryRow
	if err := t.c.call(ctx, &cats, "model.product.category.read", catIDs, []string{"name", "account_revenue", "account_expense", "customer_taxes_used", "supplier_taxes_used"}, t.ctx); err != nil {
		return nil, err
	}
	catOf := func(id int64) *accountCategoryRow {
		i := slices.IndexFunc(cats, func(c accountCategoryRow) bool { return c.ID == id })
		if i < 0 {
			return nil
		}
		return &cats[i]
	}
	var taxes []taxRow // read when a line's rate is not its category's
	out := make([]map[string]any, 0, len(lines))
	for i, l := range lines {
		v := map[string]any{"quantity": *l.Quantity, "unit_price": decimal(*l.Price)}
		var cat *accountCategoryRow
		if l.SKU == "" {
			cat = catOf(textCat)
		} else {
			p := variants[l.SKU]
			v["product"], v["unit"] = p.ID, p.Uom
			if l.Description == "" {
				v["description"] = p.Name
			}
			cat = catOf(*p.Category)
		}
		if l.Description != "" {
			v["description"] = l.Description
		}
		if cat == nil || cat.account(typ) == nil {
			name := "?"
			if cat != nil {
				name = cat.Name
			}
			return nil, refuse("line %d: the accounting category %q has no %s account in Tryton: set one there", i+1, name, map[string]string{typeOut: "revenue", typeIn: "expense"}[typ])
		}
		v["account"] = *cat.account(typ)
		ids := cat.taxes(typ)
		if l.TaxRate != nil {
			if taxes == nil {
				var err error
				if taxes, err = searchRead[taxRow](ctx, t, "account.tax", []any{[]any{"parent", "=", nil}}, []string{"name", "type", "rate", "group.kind"}, nil); err != nil {
					return nil, err
				}
			}
			var ok bool
			if ids, ok = taxesForRate(taxes, ids, *l.TaxRate, typ); !ok {
				return nil, refuse("line %d: Tryton has no percentage tax of %v %% for %s invoices: create one in Tryton, or correct the tax rate", i+1, *l.TaxRate, invoiceKind(typ))
			}
		}
		if len(ids) > 0 {
			v["taxes"] = []any{[]any{"add", ids}}
		}
		out = append(out, v)
	}
	return out, nil
}

// taxesForRate returns the taxes of a line whose tax rate (in percent) is rate: the
// defaults when their rates add up to it, else the one percentage tax of that rate that
// Tryton allows on invoices of typ (no taxes for 0 % when Tryton has no such tax); false
// when Tryton has none.
func taxesForRate(all []taxRow, defaults []int64, rate float64, typ string) ([]int64, bool) {
	sum, percentOnly := 0.0, true
	for _, id := range defaults {
		i := slices.IndexFunc(all, func(t taxRow) bool { return t.ID == id })
		if i < 0 || all[i].Type != "percentage" {
			percentOnly = false
			break
		}
		sum += all[i].Rate.float() * 100
	}
	if percentOnly && math.Abs(sum-rate) < 1e-6 {
		return defaults, true
	}
	kind := "sale"
	if typ == typeIn {
		kind = "purchase"
	}
	for _, tx := range all {
		if tx.Type == "percentage" && math.Abs(tx.Rate.float()*100-rate) < 1e-6 &&
			(tx.Group == nil || tx.Group.Kind == kind || tx.Group.Kind == "both") {
			return []int64{tx.ID}, true
		}
	}
	return nil, rate == 0
}

// checkTotals refuses an invoice whose totals, as Tryton computes them from the lines,
// differ from the source's by a cent or more: an invoice that would be posted with
// other amounts than the source billed.
func (t *Target) checkTotals(ctx context.Context, id int64, want *invoiceTotals) error {
	if want == nil || (want.Net == nil && want.Tax == nil && want.Gross == nil) {
		return nil
	}
	var rows []struct {
		Net   *decimalValue `json:"untaxed_amount"`
		Tax   *decimalValue `json:"tax_amount"`
		Gross *decimalValue `json:"total_amount"`
	}
	if err := t.c.call(ctx, &rows, "model.account.invoice.read", []int64{id}, []string{"untaxed_amount", "tax_amount", "total_amount"}, t.ctx); err != nil {
		return err
	}
	if len(rows) != 1 {
		return fmt.Errorf("reading the totals of invoice %d: Tryton answered %d invoices", id, len(rows))
	}
	var diffs []string
	for _, c := range []struct {
		name string
		want *float64
		got  *decimalValue
	}{{"net", want.Net, rows[0].Net}, {"tax", want.Tax, rows[0].Tax}, {"gross", want.Gross, rows[0].Gross}} {
		if c.want != nil && math.Abs(*c.want-c.got.float()) >= 0.005 {
			diffs = append(diffs, fmt.Sprintf("%s %s (the record says %v)", c.name, c.got.Decimal, *c.want))
		}
	}
	if len(diffs) > 0 {
		return refuse("Tryton computes the totals %s from the lines: check the lines' prices and tax rates, and Tryton's tax rounding (per document or per line)", strings.Join(diffs, ", "))
	}
	return nil
}

// advanceInvoice takes a draft invoice to state. Validating a supplier invoice and posting
// any invoice draw numbers from sequences, so both run under t.seq.
//
// Posting a sales invoice whose payment term puts a due date in the past makes Tryton
// warn (a UserWarning, which a person answers in the client). An invoice the source issued
// before it reached Tryton is such an invoice, so that one warning is accepted, once, as
// the person would: with a res.user.warning record of its name. Every other warning is
// the record's refusal.
func (t *Target) advanceInvoice(ctx context.Context, id int64, state string) error {
	method := map[string]string{InvoiceValidated: "validate_invoice", InvoicePosted: "post"}[state]
	if method == "" {
		return nil
	}
	t.seq.Lock()
	defer t.seq.Unlock()
	err := t.c.call(ctx, nil, "model.account.invoice."+method, []int64{id}, t.ctx)
	var re *RPCError
	if !errors.As(err, &re) || re.Kind != "UserWarning" || re.Warning != fmt.Sprintf("invoice_payment_term_%d", id) {
		return err
	}
	if err := t.acceptWarning(ctx, re.Warning); err != nil {
		return fmt.Errorf("accepting Tryton's warning that invoice %d is due in the past: %w", id, err)
	}
	return t.c.call(ctx, nil, "model.account.invoice."+method, []int64{id}, t.ctx)
}

// findInvoices finds invoices by external reference (their description) or by number.
// A number is the source's, which the invoice keeps as its reference; a value no
// invoice has as its number is looked up as the source's own reference (the comment), as
// a payment may name its invoice either way.
func (t *Target) findInvoices(ctx context.Context, field string, values []string) ([]connector.Found, error) {
	type row struct {
		ID          int64  `json:"id"`
		Reference   string `json:"reference"`
		Description string `json:"description"`
		Comment     string `json:"comment"`
	}
	matches := map[int64][]string{}
	switch field {
	case connector.FieldExternalRef:
		refs := make([]string, len(values))
		for i, v := range values {
			refs[i] = refPrefix + v
		}
		rows, err := searchRead[row](ctx, t, "account.invoice", []any{[]any{"description", "in", refs}}, []string{"description"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding invoices by external reference: %w", err)
		}
		for _, r := range rows {
			matches[r.ID] = append(matches[r.ID], strings.TrimPrefix(r.Description, refPrefix))
		}
	case FieldNumber:
		rows, err := searchRead[row](ctx, t, "account.invoice", []any{[]any{"reference", "in", values}}, []string{"reference"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding invoices by number: %w", err)
		}
		var rest []string
		for _, v := range values {
			if !slices.ContainsFunc(rows, func(r row) bool { return r.Reference == v }) {
				rest = append(rest, v)
			}
		}
		if len(rest) > 0 {
			more, err := searchRead[row](ctx, t, "account.invoice", []any{[]any{"comment", "in", rest}}, []string{"comment"}, nil)
			if err != nil {
				return nil, fmt.Errorf("finding invoices by reference: %w", err)
			}
			for _, r := range more {
				r.Reference = r.Comment
				rows = append(rows, r)
			}
		}
		for _, r := range rows {
			if !slices.Contains(matches[r.ID], r.Reference) {
				matches[r.ID] = append(matches[r.ID], r.Reference)
			}
		}
	default:
		return nil, fmt.Errorf("finding invoices by %s: the tryton target finds them by external_ref or number", field)
	}
	if len(matches) == 0 {
		return nil, nil
	}
	ids := make([]int64, 0, len(matches))
	for id := range matches {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	fields, err := t.readInvoices(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("reading invoices: %w", err)
	}
	var out []connector.Found
	for _, id := range ids {
		for _, v := range matches[id] {
			out = append(out, connector.Found{Value: v, ID: idString(id), Fields: fields[id]})
		}
	}
	return out, nil
}

// readInvoices reads invoices back in the canonical shape, with Tryton's state added.
// Each line's tax rate is the sum of its percentage taxes', and the taxes are Tryton's.
func (t *Target) readInvoices(ctx context.Context, ids []int64) (map[int64]json.RawMessage, error) {
	type invoiceRow struct {
		ID        int64         `json:"id"`
		Type      string        `json:"type"`
		State     string        `json:"state"`
		Reference string        `json:"reference"`
		Comment   string        `json:"comment"`
		Date      *dateValue    `json:"invoice_date"`
		Net       *decimalValue `json:"untaxed_amount"`
		Tax       *decimalValue `json:"tax_amount"`
		Gross     *decimalValue `json:"total_amount"`
		Party     *struct {
			Name string `json:"name"`
		} `json:"party."`
		Currency *struct {
			Code string `json:"code"`
		} `json:"currency."`
	}
	type lineRow struct {
		Invoice     int64         `json:"invoice"`
		Description string        `json:"description"`
		Quantity    float64       `json:"quantity"`
		Price       *decimalValue `json:"unit_price"`
		Taxes       []int64       `json:"taxes"`
		Product     *struct {
			Code string `json:"code"`
		} `json:"product."`
	}
	type taxLine struct {
		Invoice int64         `json:"invoice"`
		Base    *decimalValue `json:"base"`
		Amount  *decimalValue `json:"amount"`
		Tax     *struct {
			Type string        `json:"type"`
			Rate *decimalValue `json:"rate"`
		} `json:"tax."`
	}
	var invoices []invoiceRow
	if err := t.c.call(ctx, &invoices, "model.account.invoice.read", ids, []string{"type", "state", "reference", "comment", "invoice_date",
		"untaxed_amount", "tax_amount", "total_amount", "party.name", "currency.code"}, t.ctx); err != nil {
		return nil, err
	}
	lines, err := searchRead[lineRow](ctx, t, "account.invoice.line", []any{[]any{"invoice", "in", ids}}, []string{"invoice", "description", "quantity", "unit_price", "taxes", "product.code"}, nil)
	if err != nil {
		return nil, err
	}
	taxLines, err := searchRead[taxLine](ctx, t, "account.invoice.tax", []any{[]any{"invoice", "in", ids}}, []string{"invoice", "base", "amount", "tax.type", "tax.rate"}, nil)
	if err != nil {
		return nil, err
	}
	var taxIDs []int64
	for _, l := range lines {
		for _, id := range l.Taxes {
			if !slices.Contains(taxIDs, id) {
				taxIDs = append(taxIDs, id)
			}
		}
	}
	var taxes []taxRow
	if len(taxIDs) > 0 {
		if err := t.c.call(ctx, &taxes, "model.account.tax.read", taxIDs, []string{"type", "rate"}, t.ctx); err != nil {
			return nil, err
		}
	}
	out := make(map[int64]json.RawMessage, len(invoices))
	for _, inv := range invoices {
		rec := map[string]any{
			"number": inv.Reference, "kind": invoiceKind(inv.Type), "date": inv.Date.iso(), "state": inv.State,
			"totals": map[string]any{"net": inv.Net.float(), "tax": inv.Tax.float(), "gross": inv.Gross.float()},
		}
		if inv.Comment != "" {
			rec["reference"] = inv.Comment
		}
		if inv.Party != nil {
			rec["party"] = map[string]any{"name": inv.Party.Name}
		}
		if inv.Currency != nil {
			rec["currency"] = inv.Currency.Code
		}
		recLines := []map[string]any{}
		for _, l := range lines {
			if l.Invoice != inv.ID {
				continue
			}
			rate := 0.0
			for _, id := range l.Taxes {
				if i := slices.IndexFunc(taxes, func(t taxRow) bool { return t.ID == id }); i >= 0 && taxes[i].Type == "percentage" {
					rate += taxes[i].Rate.float() * 100
				}
			}
			line := map[string]any{"description": l.Description, "quantity": l.Quantity, "price": l.Price.float(), "tax_rate": roundRate(rate)}
			if l.Product != nil {
				line["sku"] = l.Product.Code
			}
			recLines = append(recLines, line)
		}
		rec["lines"] = recLines
		recTaxes := []map[string]any{}
		for _, tl := range taxLines {
			if tl.Invoice != inv.ID || tl.Tax == nil || tl.Tax.Type != "percentage" {
				continue
			}
			recTaxes = append(recTaxes, map[string]any{"rate": roundRate(tl.Tax.Rate.float() * 100), "base": tl.Base.float(), "amount": tl.Amount.float()})
		}
		rec["taxes"] = recTaxes
		out[inv.ID] = mustJSON(rec)
	}
	return out, nil
}

// roundRate drops the float noise of a rate Tryton keeps as a fraction (0.19 * 100).
func roundRate(r float64) float64 { return math.Round(r*1e6) / 1e6 }
