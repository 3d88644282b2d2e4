package recipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/entity"
)

// The codes of a document's failures, besides the upsert recipe's.
const (
	// CodeUnknownProduct: a line's SKU is not in the target; the document is not written.
	CodeUnknownProduct = "unknown_product"
	// CodeNoCustomer: the document's customer (party) could not be found or made.
	CodeNoCustomer = "no_customer"
	// CodeUnknownInvoice: the invoice a payment settles is not in the target.
	CodeUnknownInvoice = "unknown_invoice"
)

// Documents lists the entities the document recipe serves, when their target reads them in
// their canonical shape: orders, invoices, payments and the document types of pkg/entity
// (its document schema is their one list). Each is a document: its duplicate policy
// defaults to skip.
func Documents() []string {
	return append([]string{"order", "invoice", "payment"}, entity.DocumentTypes()...)
}

// IsDocument reports whether name is a document (see Documents).
func IsDocument(name string) bool {
	switch name {
	case "order", "invoice", "payment":
		return true
	}
	return entity.IsDocumentType(name)
}

// Document is what the document recipe needs of a flow beyond the upsert recipe's: for an
// order, its customer is found by e-mail and created or updated (or the flow's default
// customer is used), every SKU of its lines must be in the target, and only then is the order
// written, with the ids of its customer and products (connector.Write.Refs). An invoice or
// another document does the same with its party, when it names one, and with the SKUs its
// lines name; a payment finds the invoice it settles.
//
// Every step is a lookup and then a write, so a document delivered again after a crash
// between its customer and itself finds the customer the first delivery made.
type Document struct {
	// State is how far the target takes a document it writes (connector.Write.State);
	// empty: the target's default.
	State string
	// DefaultCustomer is the e-mail of the customer in the target that every order is booked
	// on instead of its own customer (a point-of-sale debtor, say); empty: each order's own.
	DefaultCustomer string
	// Types maps a source document type (an order's type: order, invoice) to the one the
	// target takes.
	Types map[string]string
	// Customer, Product and Invoice are what the target can do with the records a document
	// refers to.
	Customer, Product, Invoice connector.Capabilities
	// Lock serialises finding and making one customer among every process that writes to
	// the target, so that two orders of one new customer make one customer; nil serialises
	// within this process only.
	Lock Locker
}

// check lists what the target lacks for the flow's documents (see Check).
func (d *Document) check(f Flow) []string {
	var missing []string
	if d.State != "" && !slices.Contains(f.Caps.States, d.State) {
		if len(f.Caps.States) == 0 {
			missing = append(missing, fmt.Sprintf("document states (the flow's spec.document.state is %s; leave it out for this target)", d.State))
		} else {
			missing = append(missing, fmt.Sprintf("the document state %s (the flow's spec.document.state; it takes %s)", d.State, strings.Join(f.Caps.States, ", ")))
		}
	}
	if len(f.Caps.Types) > 0 {
		for _, from := range slices.Sorted(maps.Keys(d.Types)) {
			if to := d.Types[from]; !slices.Contains(f.Caps.Types, to) {
				missing = append(missing, fmt.Sprintf("orders of type %s (the flow's spec.document.types maps %s onto it; it takes %s)", to, from, strings.Join(f.Caps.Types, ", ")))
			}
		}
	}
	switch {
	case f.Entity == "payment":
		if !d.Invoice.CanFind(connector.FieldNumber) {
			missing = append(missing, "finding invoices by number (a payment names the invoice it settles)")
		}
	case f.Entity == "order":
		if !d.Product.CanFind(connector.FieldSKU) {
			missing = append(missing, "finding products by SKU (every SKU of an order must be in the target)")
		}
		if !d.Customer.CanFind(connector.FieldEmail) {
			missing = append(missing, "finding customers by e-mail (an order's customer, or the flow's default customer)")
		} else if d.DefaultCustomer == "" && !d.Customer.Create {
			missing = append(missing, "creating customers (an order's new customer; or set the flow's spec.document.defaultCustomer)")
		}
	}
	return missing
}

// Locker takes a lock by name until unlock is called; ctx bounds the wait. Names are the
// recipe's: the Locker must make them unique per tenant and target.
type Locker func(ctx context.Context, name string) (unlock func(), err error)

// localLocks serialises customers within the process when a flow has no Locker.
var localLocks sync.Map // name -> *sync.Mutex

func lockLocal(_ context.Context, name string) (func(), error) {
	m, _ := localLocks.LoadOrStore(name, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock, nil
}

// docFields are the fields of a document the recipe reads.
type docFields struct {
	Type            *string         `json:"type"`
	Customer        *partyFields    `json:"customer"`
	Party           *partyFields    `json:"party"`
	BillingAddress  json.RawMessage `json:"billing_address"`
	ShippingAddress json.RawMessage `json:"shipping_address"`
	Lines           []struct {
		SKU *string `json:"sku"`
	} `json:"lines"`
	Invoice *string `json:"invoice"`
}

// partyFields is an order's customer or a document's party.
type partyFields struct {
	Email   *string `json:"email"`
	Name    *string `json:"name"`
	Company *string `json:"company"`
	Phone   *string `json:"phone"`
	TaxID   *string `json:"tax_id"`
}

// pending is a document of a round whose write waits for what it refers to.
type pending struct {
	i      int
	fields docFields
	skus   []string
	refs   map[string]string
	// payload is the write's payload as the recipe changes it (the mapped type).
	payload json.RawMessage
	// failed says the document failed, and its step says why.
	failed bool
}

// resolve completes the planned writes of the documents of one round: it maps their types,
// checks their SKUs (one lookup for the round), finds or makes their customers, finds the
// invoices payments settle, and puts what it found in each write's Refs. A document whose
// SKUs, customer or invoice are missing fails, and nothing of it is written. dryRun looks
// customers up but makes none.
func (d *Document) resolve(ctx context.Context, t connector.Target, f Flow, records []connector.Record, round []int, steps []Step, dryRun bool) error {
	var docs []*pending
	for _, i := range round {
		w := steps[i].Write
		if w == nil || w.Op == connector.WriteDelete {
			continue
		}
		p := &pending{i: i, refs: map[string]string{}, payload: w.Payload}
		// The record's whole payload says what it refers to, also when write modes
		// leave fields out of the write.
		if err := json.Unmarshal(records[i].Payload, &p.fields); err != nil {
			steps[i] = refused(records[i], fmt.Sprintf("the %s does not have the canonical shape: %v; map it to the shape pkg/entity documents", f.Entity, err))
			continue
		}
		if why := d.mapType(f, p); why != "" {
			steps[i] = refused(records[i], why)
			continue
		}
		docs = append(docs, p)
	}
	fail := func(p *pending, code, why string) {
		p.failed = true
		steps[p.i] = Step{Outcome: Outcome{Action: Failed, Code: code, Reason: fmt.Sprintf("record %q: %s", records[p.i].Key, why)}}
	}
	docs, err := d.checkSKUs(ctx, t, f, docs, fail)
	if err != nil {
		return err
	}
	if f.Entity == "payment" {
		docs, err = d.findInvoices(ctx, t, f, docs, fail)
	} else {
		docs, err = d.resolveCustomers(ctx, t, f, docs, dryRun, fail)
	}
	if err != nil {
		return err
	}
	for _, p := range docs {
		w := steps[p.i].Write
		w.Payload = p.payload
		w.State = d.State
		if len(p.refs) > 0 {
			w.Refs = p.refs
		}
	}
	d.finish(f, records, round, steps)
	return nil
}

// finish takes on to the flow's state each document of round that the target holds short of
// it, and that the recipe would otherwise leave as it is (a skip, or found as written): the
// document was found by its external reference, so it is this flow's own, left there by a
// write that stopped between making it and advancing it (a sale made but not confirmed). The
// write changes no field; the target only advances the document.
func (d *Document) finish(f Flow, records []connector.Record, round []int, steps []Step) {
	want := slices.Index(f.Caps.States, d.State)
	if d.State == "" || want < 0 || !f.Caps.Update {
		return
	}
	for _, i := range round {
		s := &steps[i]
		if s.Write != nil || s.Current == nil || s.TargetID == "" ||
			!(s.Action == Created || s.Action == Skipped && s.Code == CodeDuplicate) {
			continue
		}
		var cur struct {
			State string `json:"state"`
		}
		if json.Unmarshal(s.Current, &cur) != nil {
			continue
		}
		// A state the flow does not name (processing, done, cancelled) is past them all,
		// or not the flow's to change.
		if at := slices.Index(f.Caps.States, cur.State); at < 0 || at >= want {
			continue
		}
		r := records[i]
		s.Outcome = Outcome{Action: Created, TargetID: s.TargetID}
		s.Write = &connector.Write{Op: connector.WriteUpdate, Key: r.Key, ID: s.TargetID, Version: r.Version, Payload: json.RawMessage("{}"), State: d.State}
	}
}

// mapType maps an order's type through the flow's Types and checks the target takes it; it
// says why not, or "".
func (d *Document) mapType(f Flow, p *pending) string {
	if f.Entity != "order" {
		return ""
	}
	from := "order"
	if p.fields.Type != nil && *p.fields.Type != "" {
		from = *p.fields.Type
	}
	to := from
	if m, ok := d.Types[from]; ok {
		to = m
	}
	if len(f.Caps.Types) > 0 && !slices.Contains(f.Caps.Types, to) {
		return fmt.Sprintf("the order is of type %s, which target %s does not take (it takes %s); map the type onto one it takes in the flow's spec.document.types, e.g. %s: %s",
			to, f.Target, strings.Join(f.Caps.Types, ", "), from, f.Caps.Types[0])
	}
	if to != from {
		fields, ok := object(p.payload)
		if !ok {
			return "the payload is not a JSON object; the mapping must produce an object of field -> value"
		}
		fields["type"], _ = json.Marshal(to) // a string always encodes
		p.payload = encode(fields, func(string) bool { return true })
	}
	return ""
}

// checkSKUs finds every SKU of the round's documents in one lookup, and fails each document
// that names one the target does not have, naming all of them. It returns the documents
// that go on.
func (d *Document) checkSKUs(ctx context.Context, t connector.Target, f Flow, docs []*pending, fail func(*pending, string, string)) ([]*pending, error) {
	var all []string
	for _, p := range docs {
		for _, l := range p.fields.Lines {
			if l.SKU != nil && *l.SKU != "" && !slices.Contains(p.skus, *l.SKU) {
				p.skus = append(p.skus, *l.SKU)
			}
		}
		all = append(all, p.skus...)
	}
	if len(all) == 0 {
		return docs, nil
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if !d.Product.CanFind(connector.FieldSKU) {
		for _, p := range docs {
			if len(p.skus) > 0 {
				fail(p, CodeRefused, fmt.Sprintf("target %s cannot find products by SKU, which the %s's lines need; use a target that can", f.Target, f.Entity))
			}
		}
		return keep(docs, func(p *pending) bool { return len(p.skus) == 0 }), nil
	}
	found, err := t.Find(ctx, "product", connector.FieldSKU, all)
	if err != nil {
		return nil, fmt.Errorf("looking up %d SKUs of %s lines in %s: %w", len(all), f.Entity, f.Target, err)
	}
	ids := map[string]string{}
	for _, g := range found {
		if _, seen := ids[g.Value]; !seen {
			ids[g.Value] = g.ID
		}
	}
	return keep(docs, func(p *pending) bool {
		var missing []string
		for _, sku := range p.skus {
			if id, ok := ids[sku]; ok {
				p.refs[connector.RefSKU(sku)] = id
			} else {
				missing = append(missing, sku)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			fail(p, CodeUnknownProduct, fmt.Sprintf("target %s has no product with SKU %s, so nothing of the %s was written; create the products there (or sync them first), then replay the %s",
				f.Target, strings.Join(missing, ", "), f.Entity, f.Entity))
			return false
		}
		return true
	}), nil
}

// customerKey is the external reference of a customer the recipe makes for a document: its
// e-mail in lower case, or its name when it has none.
func customerKey(by, value string) string { return by + ":" + strings.ToLower(value) }

// resolveCustomers gives each document the id of its customer (an order's customer, another
// document's party): the flow's default customer, or the customer found by e-mail (by name
// for a party without one), made when it is not there and updated when the document knows
// more. Finding and making one customer runs under its lock, so that documents of one new
// customer written at once make one customer.
func (d *Document) resolveCustomers(ctx context.Context, t connector.Target, f Flow, docs []*pending, dryRun bool, fail func(*pending, string, string)) ([]*pending, error) {
	if f.Entity == "order" && d.DefaultCustomer != "" {
		return d.defaultCustomer(ctx, t, f, docs, fail)
	}
	// want is the customer record each lookup value makes or updates: the last document's
	// of the round that names it.
	type want struct {
		by, value string
		payload   json.RawMessage
		docs      []*pending
	}
	wants := map[string]*want{}
	var kept []*pending
	for _, p := range docs {
		party := p.fields.Party
		if f.Entity == "order" {
			party = p.fields.Customer
		}
		if party == nil {
			if f.Entity == "order" {
				fail(p, CodeNoCustomer, "the order has no customer and the flow names no default customer; map the order's customer (with its e-mail), or set the flow's spec.document.defaultCustomer")
				continue
			}
			kept = append(kept, p) // a document without a party
			continue
		}
		// E-mails are looked up as customers are made with them: in lower case, which a
		// target that compares them exactly finds too.
		by, value := connector.FieldEmail, strings.ToLower(str(party.Email))
		if value == "" {
			by, value = connector.FieldName, str(party.Name)
		}
		if value == "" {
			fail(p, CodeNoCustomer, fmt.Sprintf("the %s's customer has neither an e-mail nor a name to find it by; map one of them", f.Entity))
			continue
		}
		if !d.Customer.CanFind(by) {
			fail(p, CodeNoCustomer, fmt.Sprintf("target %s cannot find customers by %s, which the %s's customer needs; map the customer's e-mail, or use a target that can", f.Target, by, f.Entity))
			continue
		}
		k := by + "\x00" + strings.ToLower(value)
		w := wants[k]
		if w == nil {
			w = &want{by: by, value: value}
			wants[k] = w
		}
		w.payload = customerPayload(party, p.fields)
		w.docs = append(w.docs, p)
		kept = append(kept, p)
	}
	failAll := func(w *want, code, why string) {
		for _, p := range w.docs {
			fail(p, code, why)
		}
	}
	// In name order, so that two rounds that share customers never wait on each other.
	for _, k := range slices.Sorted(maps.Keys(wants)) {
		w := wants[k]
		id, why, err := d.findOrMakeCustomer(ctx, t, f, w.by, w.value, w.payload, dryRun)
		if err != nil {
			return nil, err
		}
		if why != "" {
			failAll(w, CodeNoCustomer, why)
			continue
		}
		for _, p := range w.docs {
			p.refs[connector.RefCustomer] = id
		}
	}
	return keep(kept, func(p *pending) bool { return !p.failed }), nil
}

// findOrMakeCustomer finds the customer whose by field is value and makes or updates it as
// payload says; it returns the customer's id, or why it has none (for the document), or the
// target's error. A customer that is not there is looked up again and made under its lock,
// so that documents of one new customer written at once make one customer; one that is there
// (the usual case) costs no lock.
func (d *Document) findOrMakeCustomer(ctx context.Context, t connector.Target, f Flow, by, value string, payload json.RawMessage, dryRun bool) (id, why string, err error) {
	find := func() ([]connector.Found, error) {
		found, err := t.Find(ctx, "customer", by, []string{value})
		if err != nil {
			return nil, fmt.Errorf("looking up the customer %s in %s: %w", value, f.Target, err)
		}
		return found, nil
	}
	found, err := find()
	if err != nil {
		return "", "", err
	}
	if len(found) == 0 && !dryRun {
		lock := d.Lock
		if lock == nil {
			lock = lockLocal
		}
		unlock, err := lock(ctx, "customer/"+f.Target+"/"+customerKey(by, value))
		if err != nil {
			return "", "", fmt.Errorf("locking the customer of %s %s in %s: %w", f.Entity, value, f.Target, err)
		}
		defer unlock()
		if found, err = find(); err != nil {
			return "", "", err
		}
	}
	var w connector.Write
	switch len(found) {
	case 0:
		if !d.Customer.Create {
			return "", fmt.Sprintf("target %s has no customer %s and cannot create customers; create it there, or set the flow's default customer", f.Target, value), nil
		}
		w = connector.Write{Op: connector.WriteCreate, Key: customerKey(by, value), Payload: payload}
	case 1:
		id = found[0].ID
		current, _ := object(found[0].Fields)
		fields, _ := object(payload)
		if current != nil && holds(current, fields, nil) || !d.Customer.Update {
			return id, "", nil
		}
		w = connector.Write{Op: connector.WriteUpdate, Key: customerKey(by, value), ID: id, Payload: payload}
	default:
		ids := make([]string, len(found))
		for i, g := range found {
			ids[i] = g.ID
		}
		slices.Sort(ids)
		return "", fmt.Sprintf("target %s has %d customers with %s %s (ids %s); merge them there, then replay the %s", f.Target, len(found), by, value, strings.Join(ids, ", "), f.Entity), nil
	}
	if dryRun {
		if id == "" {
			id = "(new)"
		}
		return id, "", nil
	}
	results, err := t.Write(ctx, "customer", []connector.Write{w})
	if err != nil {
		return "", "", fmt.Errorf("writing the customer %s to %s: %w", value, f.Target, err)
	}
	if len(results) != 1 {
		return "", "", fmt.Errorf("target %s returned %d results for 1 write", f.Target, len(results))
	}
	switch r := results[0]; {
	case r.Err != nil:
		return "", fmt.Sprintf("target %s refused its customer %s: %v", f.Target, value, r.Err), nil
	case r.Skipped != "":
		return "", fmt.Sprintf("target %s left out its customer %s: %s", f.Target, value, r.Skipped), nil
	case r.TargetID != "":
		id = r.TargetID
	}
	if id == "" {
		return "", fmt.Sprintf("target %s wrote the customer %s and returned no id for it; report this as a bug of the %s connector", f.Target, value, f.Target), nil
	}
	return id, "", nil
}

// defaultCustomer books every order on the flow's default customer.
func (d *Document) defaultCustomer(ctx context.Context, t connector.Target, f Flow, docs []*pending, fail func(*pending, string, string)) ([]*pending, error) {
	if len(docs) == 0 {
		return docs, nil
	}
	why := ""
	var id string
	if !d.Customer.CanFind(connector.FieldEmail) {
		why = fmt.Sprintf("target %s cannot find customers by e-mail, which the flow's default customer needs", f.Target)
	} else {
		found, err := t.Find(ctx, "customer", connector.FieldEmail, []string{d.DefaultCustomer})
		if err != nil {
			return nil, fmt.Errorf("looking up the default customer %s in %s: %w", d.DefaultCustomer, f.Target, err)
		}
		switch len(found) {
		case 0:
			why = fmt.Sprintf("the flow's default customer %s is not in target %s; create it there, or change spec.document.defaultCustomer", d.DefaultCustomer, f.Target)
		case 1:
			id = found[0].ID
		default:
			why = fmt.Sprintf("target %s has %d customers with the flow's default customer's e-mail %s; merge them there", f.Target, len(found), d.DefaultCustomer)
		}
	}
	if why != "" {
		for _, p := range docs {
			fail(p, CodeNoCustomer, why)
		}
		return nil, nil
	}
	for _, p := range docs {
		p.refs[connector.RefCustomer] = id
	}
	return docs, nil
}

// findInvoices finds, in one lookup, the invoices the round's payments settle.
func (d *Document) findInvoices(ctx context.Context, t connector.Target, f Flow, docs []*pending, fail func(*pending, string, string)) ([]*pending, error) {
	var numbers []string
	for _, p := range docs {
		if n := str(p.fields.Invoice); n != "" {
			numbers = append(numbers, n)
		}
	}
	if len(numbers) == 0 {
		return docs, nil
	}
	if !d.Invoice.CanFind(connector.FieldNumber) {
		for _, p := range docs {
			if str(p.fields.Invoice) != "" {
				fail(p, CodeRefused, fmt.Sprintf("target %s cannot find invoices by number, which a payment of an invoice needs; use a target that can", f.Target))
			}
		}
		return keep(docs, func(p *pending) bool { return str(p.fields.Invoice) == "" }), nil
	}
	slices.Sort(numbers)
	numbers = slices.Compact(numbers)
	found, err := t.Find(ctx, "invoice", connector.FieldNumber, numbers)
	if err != nil {
		return nil, fmt.Errorf("looking up %d invoices of payments in %s: %w", len(numbers), f.Target, err)
	}
	ids := map[string][]string{}
	for _, g := range found {
		if !slices.Contains(ids[g.Value], g.ID) {
			ids[g.Value] = append(ids[g.Value], g.ID)
		}
	}
	return keep(docs, func(p *pending) bool {
		n := str(p.fields.Invoice)
		if n == "" {
			return true
		}
		switch len(ids[n]) {
		case 0:
			fail(p, CodeUnknownInvoice, fmt.Sprintf("target %s has no invoice %s, which the payment settles; replay the payment once the invoice is there", f.Target, n))
			return false
		case 1:
			p.refs[connector.RefInvoice] = ids[n][0]
			return true
		}
		fail(p, CodeUnknownInvoice, fmt.Sprintf("target %s has %d invoices numbered %s (ids %s); name the one the payment settles by a number only it has", f.Target, len(ids[n]), n, strings.Join(ids[n], ", ")))
		return false
	}), nil
}

// customerPayload is the canonical customer record of a document's customer, with the
// document's addresses.
func customerPayload(party *partyFields, doc docFields) json.RawMessage {
	c := map[string]any{}
	set := func(name string, v *string) {
		if v != nil && *v != "" {
			c[name] = *v
		}
	}
	set("email", party.Email)
	set("name", party.Name)
	set("company", party.Company)
	set("phone", party.Phone)
	set("tax_id", party.TaxID)
	if _, ok := c["email"]; ok {
		c["email"] = strings.ToLower(c["email"].(string))
	}
	if len(doc.BillingAddress) > 0 && !isEmpty(doc.BillingAddress) {
		c["billing_address"] = doc.BillingAddress
	}
	if len(doc.ShippingAddress) > 0 && !isEmpty(doc.ShippingAddress) {
		c["shipping_address"] = doc.ShippingAddress
	}
	if _, ok := c["name"]; !ok {
		var addr struct {
			Name *string `json:"name"`
		}
		if json.Unmarshal(doc.BillingAddress, &addr) == nil && str(addr.Name) != "" {
			c["name"] = *addr.Name
		} else if e := str(party.Email); e != "" {
			c["name"] = e
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(errors.New("recipe: a customer of strings and JSON values always encodes"))
	}
	return b
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

func keep(docs []*pending, ok func(*pending) bool) []*pending {
	var out []*pending
	for _, p := range docs {
		if ok(p) {
			out = append(out, p)
		}
	}
	return out
}
