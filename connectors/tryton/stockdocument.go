package tryton

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/syncline/syncline/pkg/connector"
)

// document is the canonical document (pkg/entity's document shape) as far as a Tryton stock
// record holds it. The party is the recipe's (Write.Refs). Not written: amount (a stock
// document moves goods, not money) and the lines' descriptions (a stock move and an
// inventory line have no text; Tryton shows the product's name); nor the prices of a count's
// or a write-off's lines, which Tryton values at the product's cost price.
type document struct {
	Number       string         `json:"number"`
	DocumentType string         `json:"document_type"`
	Date         string         `json:"date"`
	Currency     string         `json:"currency"`
	Lines        []documentLine `json:"lines"`
	Reference    string         `json:"reference"`
	Note         string         `json:"note"`
}

// documentLine is one canonical document line.
type documentLine struct {
	SKU      string   `json:"sku"`
	Quantity *float64 `json:"quantity"`
	Price    *float64 `json:"price"`
}

// stockKind says how the target keeps one kind of stock document in Tryton.
type stockKind struct {
	entity string
	// what names the document in messages ("goods receipt"); record names Tryton's record
	// ("supplier shipment").
	what, record string
	model        string
	// states are the states a flow takes the document to (Capabilities.States); path is
	// every state of Tryton's workflow the target takes the record through, in order.
	states, path []string
	// party is the record's party field (supplier, customer) and from the party's location
	// its goods come from; empty for a document without a party.
	party, from string
	// address is the record's address field of the party that Tryton requires (a return's
	// delivery address); empty: none.
	address string
	// priced says that the moves carry a unit price: Tryton requires one of goods coming in
	// from a supplier or a customer.
	priced bool
}

const modelInventory = "stock.inventory"

var stockKinds = []*stockKind{
	{entity: EntityGoodsReceipt, what: "goods receipt", record: "supplier shipment", model: "stock.shipment.in",
		states: shipmentStates, path: shipmentStates, party: "supplier", from: "supplier_location", priced: true},
	{entity: EntityOrderReturn, what: "order return", record: "customer return shipment", model: "stock.shipment.out.return",
		states: shipmentStates, path: shipmentStates, party: "customer", from: "customer_location", address: "delivery_address", priced: true},
	{entity: EntityInventoryCount, what: "inventory count", record: "inventory", model: modelInventory,
		states: stockStates, path: stockStates},
	// Tryton reserves an internal shipment's goods (waiting, then assigned) before it is
	// done.
	{entity: EntityWriteOff, what: "write-off", record: "internal shipment", model: "stock.shipment.internal",
		states: stockStates, path: []string{StateDraft, "waiting", "assigned", StateDone}},
}

// stockKindOf is the kind of stock document of entity, or nil.
func stockKindOf(entity string) *stockKind {
	for _, k := range stockKinds {
		if k.entity == entity {
			return k
		}
	}
	return nil
}

func (k *stockKind) inventory() bool { return k.model == modelInventory }

// a is what with its article: "a goods receipt", "an order return".
func (k *stockKind) a() string {
	if strings.ContainsRune("aeiou", rune(k.what[0])) {
		return "an " + k.what
	}
	return "a " + k.what
}

// linesField is the record's field of its lines: an inventory's lines, a shipment's moves.
func (k *stockKind) linesField() string {
	if k.inventory() {
		return "lines"
	}
	return "moves"
}

// dateFields are the record's fields the document's date is written to: an inventory's
// date, the day a shipment is planned and done (received) on.
func (k *stockKind) dateFields() []string {
	switch {
	case k.inventory():
		return []string{"date"}
	case k.party == "":
		return []string{"planned_start_date", "planned_date", "effective_date"}
	}
	return []string{"planned_date", "effective_date"}
}

// writeStockDocument creates or updates one stock document of kind k and takes it as far as
// w.State says. Every write runs under t.seq: creating the record draws its number.
func (t *Target) writeStockDocument(ctx context.Context, k *stockKind, w connector.Write) (string, error) {
	if w.Op == connector.WriteDelete {
		return "", refuse("the tryton target does not delete %ss, whose stock moves Tryton keeps; cancel %s %s in Tryton (a draft can then be deleted there), or filter deletes out of the flow", k.what, k.record, w.ID)
	}
	want, err := documentState(k.a(), w.State, k.states)
	if err != nil {
		return "", err
	}
	var rec document
	have, err := decodePayload(w.Payload, &rec)
	if err != nil {
		return "", err
	}
	if rec.DocumentType != "" && rec.DocumentType != k.entity {
		return "", refuse("the document is of type %q and this flow writes %ss (%q): send it through the flow of its type, or map document_type onto %q", rec.DocumentType, k.what, k.entity, k.entity)
	}
	if strings.ContainsAny(rec.Number, "\r\n") || strings.ContainsAny(rec.Reference, "\r\n") {
		return "", refuse("the %s's number or reference has a line break, which Tryton's note of them cannot keep apart; map them to one line each", k.what)
	}
	t.seq.Lock()
	defer t.seq.Unlock()
	switch w.Op {
	case connector.WriteCreate:
		id, err := t.createStockDocument(ctx, k, w.Key, &rec, w.Refs, want)
		if err != nil {
			return "", err
		}
		return idString(id), nil
	case connector.WriteUpdate:
		id, err := parseID(w.ID)
		if err != nil {
			return "", err
		}
		return w.ID, t.updateStockDocument(ctx, k, id, &rec, have, w.Refs, want)
	}
	return "", refuse("write %q is not create or update", w.Op)
}

// createStockDocument creates the record of a stock document with its lines and notes, and
// advances it to want. A record Tryton will not advance is removed again, so that a refused
// document leaves nothing behind and its replay creates it afresh.
//
// A shipment carries its external reference in its reference, written in the call that
// creates it; an inventory, which has no such field, in a note written in the next call (a
// write stopped between the two leaves a draft inventory without it, which moves no stock).
func (t *Target) createStockDocument(ctx context.Context, k *stockKind, key string, rec *document, refs map[string]string, want string) (int64, error) {
	if rec.Number == "" {
		return 0, refuse("the %s has no number; map the source's number onto number", k.what)
	}
	if len(rec.Lines) == 0 {
		return 0, refuse("%s %q has no lines, and a Tryton %s is its lines; map the source's lines", k.what, rec.Number, k.record)
	}
	var party int64
	if k.party != "" {
		var err error
		if party, err = documentParty(k, refs); err != nil {
			return 0, err
		}
	}
	values, places, err := t.stockHeader(ctx, k, party)
	if err != nil {
		return 0, err
	}
	if rec.Date != "" {
		d, err := trytonDate(rec.Date, "date")
		if err != nil {
			return 0, err
		}
		for _, f := range k.dateFields() {
			values[f] = d
		}
	}
	lines, err := t.stockLines(ctx, k, rec, places, rec.Currency)
	if err != nil {
		return 0, err
	}
	values[k.linesField()] = []any{[]any{"create", lines}}
	if !k.inventory() {
		values["reference"] = refPrefix + key
	}
	id, err := t.create(ctx, k.model, values)
	if err != nil {
		return 0, err
	}
	notes := []string{docNote{Number: rec.Number, Reference: rec.Reference, Note: rec.Note}.message()}
	if k.inventory() {
		notes = append([]string{refPrefix + key}, notes...)
	}
	err = t.addNotes(ctx, k, id, notes...)
	if err == nil {
		err = t.advanceStock(ctx, k, id, StateDraft, want)
	}
	if err != nil {
		if !isRefusal(err) {
			return 0, err
		}
		return 0, t.discardStock(ctx, k, id, err)
	}
	return id, nil
}

// documentParty is a receipt's or a return's party, as the recipe found or made it.
func documentParty(k *stockKind, refs map[string]string) (int64, error) {
	s := refs[connector.RefCustomer]
	if s == "" {
		return 0, refuse("%s needs its party (the %s), and the record came without its Tryton id (Write.Refs[%q]); map the source's %s onto the document's party (its name or e-mail), which the recipe finds or makes", k.a(), k.party, connector.RefCustomer, k.party)
	}
	id, err := parseID(s)
	if err != nil {
		return 0, refuse("the %s's party %q (Write.Refs[%q]) is not a Tryton party id", k.what, s, connector.RefCustomer)
	}
	return id, nil
}

// stockPlaces are the locations a document's moves go from and to: a party's location to the
// warehouse's input zone, or the storage zone to lost and found. An inventory's lines are
// counted in to, the storage zone.
type stockPlaces struct{ from, to int64 }

// stockHeader returns the record's fields that follow from the settings and the party (0:
// none), and where its goods move.
func (t *Target) stockHeader(ctx context.Context, k *stockKind, party int64) (map[string]any, stockPlaces, error) {
	values := map[string]any{"company": t.company}
	var p stockPlaces
	switch {
	case k.party != "":
		pv, from, err := t.stockParty(ctx, k, party)
		if err != nil {
			return nil, p, err
		}
		maps.Copy(values, pv)
		warehouse, err := t.warehouse(ctx)
		if err != nil {
			return nil, p, err
		}
		input, err := t.zone(ctx, "input_location", "input zone")
		if err != nil {
			return nil, p, err
		}
		values["warehouse"] = warehouse
		p = stockPlaces{from: from, to: input}
	case k.inventory():
		storage, err := t.storage(ctx, "")
		if err != nil {
			return nil, p, err
		}
		values["location"] = storage
		p.to = storage
	default:
		storage, err := t.storage(ctx, "")
		if err != nil {
			return nil, p, err
		}
		// The location Tryton's own inventories book missing goods to.
		lost, err := t.zone(ctx, "lost_found_location", "lost and found location")
		if err != nil {
			return nil, p, err
		}
		values["from_location"], values["to_location"] = storage, lost
		p = stockPlaces{from: storage, to: lost}
	}
	return values, p, nil
}

// stockParty returns the record's fields of its party (the supplier or customer, and a
// return's delivery address) and the party's location its goods come from.
func (t *Target) stockParty(ctx context.Context, k *stockKind, party int64) (map[string]any, int64, error) {
	var rows []struct {
		Name     string   `json:"name"`
		Supplier many2one `json:"supplier_location"`
		Customer many2one `json:"customer_location"`
	}
	if err := t.c.call(ctx, &rows, "model.party.party.read", []int64{party}, []string{"name", k.from}, t.ctx); err != nil {
		return nil, 0, fmt.Errorf("reading the %s's party %d: %w", k.what, party, err)
	}
	if len(rows) != 1 {
		return nil, 0, refuse("Tryton has no party %d, the %s's %s", party, k.what, k.party)
	}
	loc := rows[0].Supplier
	if k.from == "customer_location" {
		loc = rows[0].Customer
	}
	if loc == nil {
		return nil, 0, refuse("party %q has no %s location in Tryton, where the %s's goods come from; set one on the party", rows[0].Name, k.party, k.what)
	}
	values := map[string]any{k.party: party}
	if k.address != "" {
		addr, err := t.deliveryAddress(ctx, party, rows[0].Name)
		if err != nil {
			return nil, 0, err
		}
		values[k.address] = addr
	}
	return values, *loc, nil
}

// deliveryAddress is the party's delivery address, else its first. A party the recipe made
// from a document has none (a document names no address), and Tryton requires one on a
// return: it gets the empty address Tryton's own client gives every new party.
func (t *Target) deliveryAddress(ctx context.Context, party int64, name string) (int64, error) {
	addrs, err := searchRead[addressRow](ctx, t, "party.address", []any{[]any{"party", "=", party}}, []string{"delivery"}, nil)
	if err != nil {
		return 0, err
	}
	if i := slices.IndexFunc(addrs, func(a addressRow) bool { return bool(a.Delivery) }); i >= 0 {
		return addrs[i].ID, nil
	}
	if len(addrs) > 0 {
		return addrs[0].ID, nil
	}
	id, err := t.create(ctx, "party.address", map[string]any{"party": party})
	if err != nil {
		return 0, fmt.Errorf("giving party %q the address Tryton requires of a return: %w", name, err)
	}
	return id, nil
}

// zone is the location of settings.warehouse that field names (input_location,
// lost_found_location); what names it in the refusal when the warehouse has none.
func (t *Target) zone(ctx context.Context, field, what string) (int64, error) {
	return t.remember("zone\x00"+field+"\x00"+t.settings.Warehouse, func() (int64, error) {
		rows, err := searchRead[map[string]json.RawMessage](ctx, t, "stock.location",
			[]any{[]any{"type", "=", "warehouse"}, []any{"code", "=", t.settings.Warehouse}}, []string{field}, nil)
		if err != nil {
			return 0, err
		}
		if len(rows) == 0 {
			return 0, refuse("Tryton has no warehouse with the code %q (settings.warehouse); name one that exists", t.settings.Warehouse)
		}
		var id many2one
		if err := json.Unmarshal(rows[0][field], &id); err != nil || id == nil {
			return 0, refuse("warehouse %q has no %s in Tryton; set one on the warehouse", t.settings.Warehouse, what)
		}
		return *id, nil
	})
}

// companyCurrency is the company's currency, which prices are in when a document names none.
func (t *Target) companyCurrency(ctx context.Context) (int64, error) {
	return t.remember("company currency", func() (int64, error) {
		var rows []struct {
			Currency int64 `json:"currency"`
		}
		if err := t.c.call(ctx, &rows, "model.company.company.read", []int64{t.company}, []string{"currency"}, t.ctx); err != nil {
			return 0, fmt.Errorf("reading the company's currency: %w", err)
		}
		if len(rows) != 1 {
			return 0, fmt.Errorf("reading the company's currency: Tryton answered %d companies", len(rows))
		}
		return rows[0].Currency, nil
	})
}

// docVariant is a product variant a stock document's line names by its SKU.
type docVariant struct {
	ID        int64         `json:"id"`
	Code      string        `json:"code"`
	Type      string        `json:"type"`
	Uom       int64         `json:"default_uom"`
	CostPrice *decimalValue `json:"cost_price"`
}

// stockLines are the values of the record's lines (moves, or an inventory's lines) of the
// document's lines. Every SKU is found as a variant in one search (Refs name templates, as
// Find(product, sku) answers); a quantity is in the product's default unit. A move of goods
// in from a party costs the line's price, else the product's cost price, in currency (the
// company's when empty).
func (t *Target) stockLines(ctx context.Context, k *stockKind, rec *document, p stockPlaces, currency string) ([]map[string]any, error) {
	variants, err := t.docVariants(ctx, k, rec)
	if err != nil {
		return nil, err
	}
	var cur int64
	if k.priced {
		if currency != "" {
			cur, err = t.lookup(ctx, "currency.currency", "code", currency, "currency with the code")
		} else {
			cur, err = t.companyCurrency(ctx)
		}
		if err != nil {
			return nil, err
		}
	}
	out := make([]map[string]any, len(rec.Lines))
	for i, l := range rec.Lines {
		v := variants[l.SKU]
		if k.inventory() {
			out[i] = map[string]any{"product": v.ID, "quantity": *l.Quantity}
			continue
		}
		m := map[string]any{"product": v.ID, "uom": v.Uom, "quantity": *l.Quantity,
			"from_location": p.from, "to_location": p.to, "company": t.company}
		if k.priced {
			price := v.CostPrice.float()
			if l.Price != nil {
				price = *l.Price
			}
			m["unit_price"], m["currency"] = decimal(price), cur
		}
		out[i] = m
	}
	return out, nil
}

// docVariants checks the document's lines and finds their variants by SKU, in one search.
// Every line needs a SKU (Tryton moves and counts products, not text), a quantity (above 0
// for a move), and a product Tryton keeps stock of; an inventory counts each product once.
func (t *Target) docVariants(ctx context.Context, k *stockKind, rec *document) (map[string]docVariant, error) {
	var skus []string
	for i, l := range rec.Lines {
		switch {
		case l.SKU == "":
			return nil, refuse("line %d of %s %q has no sku, and Tryton records a %s as products moved or counted; give the line the sku of its product, or leave lines without one out in the flow's mapping", i+1, k.what, rec.Number, k.what)
		case l.Quantity == nil:
			return nil, refuse("line %d of %s %q (sku %q) has no quantity", i+1, k.what, rec.Number, l.SKU)
		case k.inventory() && *l.Quantity < 0:
			return nil, refuse("line %d of %s %q (sku %q) counts %v; a count is 0 or more", i+1, k.what, rec.Number, l.SKU, *l.Quantity)
		case !k.inventory() && *l.Quantity <= 0:
			return nil, refuse("line %d of %s %q (sku %q) has quantity %v; a %s moves a quantity above 0", i+1, k.what, rec.Number, l.SKU, *l.Quantity, k.what)
		case k.inventory() && slices.Contains(skus, l.SKU):
			return nil, refuse("line %d of %s %q counts sku %q again, and a Tryton inventory counts each product once; add its lines up in the source or the flow's mapping", i+1, k.what, rec.Number, l.SKU)
		}
		if !slices.Contains(skus, l.SKU) {
			skus = append(skus, l.SKU)
		}
	}
	byCode, err := variantsBySKU(ctx, t, k.what, skus, []string{"code", "type", "default_uom", "cost_price"}, func(v docVariant) string { return v.Code })
	if err != nil {
		return nil, err
	}
	for i, l := range rec.Lines {
		// Tryton moves goods and assets, and counts goods.
		if typ := byCode[l.SKU].Type; typ != "goods" && (k.inventory() || typ != "assets") {
			return nil, refuse("line %d of %s %q: the product of sku %q is a %s, and Tryton keeps no stock of it; leave it out of the %s", i+1, k.what, rec.Number, l.SKU, typ, k.what)
		}
	}
	return byCode, nil
}

// Tryton's stock documents have no field for the source's number (theirs come from a
// sequence), its reference or a note: a note (ir.note) on the record keeps them, one line
// each, the number first and then the reference, before the note. Find(number) searches
// these notes.
const (
	noteNumber    = "Number: "
	noteReference = "Reference: "
)

// docNote is what a stock document's note keeps of the source's document.
type docNote struct{ Number, Reference, Note string }

func (n docNote) message() string {
	lines := []string{noteNumber + n.Number}
	if n.Reference != "" {
		lines = append(lines, noteReference+n.Reference)
	}
	if n.Note != "" {
		lines = append(lines, n.Note)
	}
	return strings.Join(lines, "\n")
}

// parseDocNote reads a note as message writes it; false for another note (a person's).
func parseDocNote(msg string) (docNote, bool) {
	first, rest, _ := strings.Cut(msg, "\n")
	if !strings.HasPrefix(first, noteNumber) {
		return docNote{}, false
	}
	n := docNote{Number: strings.TrimPrefix(first, noteNumber)}
	if line, after, _ := strings.Cut(rest, "\n"); strings.HasPrefix(line, noteReference) {
		n.Reference, rest = strings.TrimPrefix(line, noteReference), after
	}
	n.Note = rest
	return n, true
}

// addNotes adds notes with messages to record id, in one call.
func (t *Target) addNotes(ctx context.Context, k *stockKind, id int64, messages ...string) error {
	resource := fmt.Sprintf("%s,%d", k.model, id)
	notes := make([]map[string]any, len(messages))
	for i, m := range messages {
		notes[i] = map[string]any{"resource": resource, "message": m}
	}
	if err := t.c.call(ctx, nil, "model.ir.note.create", notes, t.ctx); err != nil {
		return fmt.Errorf("noting the source's number on %s %d: %w", k.record, id, err)
	}
	return nil
}

// likeEscape escapes the wildcards of Tryton's like operator in s.
var likeEscape = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace

// advanceStock takes record id of kind k from state to want along k.path, one Tryton step at
// a time. A record at or past want, or off the path (cancelled), is left as it is: the
// target never takes a document back.
func (t *Target) advanceStock(ctx context.Context, k *stockKind, id int64, state, want string) error {
	from, to := slices.Index(k.path, state), slices.Index(k.path, want)
	if from < 0 || from >= to {
		return nil
	}
	steps := k.path[from+1 : to+1]
	if slices.Contains(steps, "assigned") {
		if err := t.checkWriteOff(ctx, k, id); err != nil {
			return err
		}
	}
	for _, next := range steps {
		if err := t.stockStep(ctx, k, id, next); err != nil {
			return err
		}
	}
	return nil
}

// stockStep takes record id one step of Tryton's workflow on, to next.
func (t *Target) stockStep(ctx context.Context, k *stockKind, id int64, next string) error {
	var method string
	switch {
	case k.inventory():
		// Tryton books the difference between the count and each line's expected
		// quantity, which it computes when the inventory is written and then keeps: writing
		// it again brings that up to date with what moved since.
		if err := t.write(ctx, k.model, []int64{id}, map[string]any{"lines": []any{}}); err != nil {
			return fmt.Errorf("bringing the expected quantities of inventory %d up to date: %w", id, err)
		}
		method = "confirm"
	case next == StateReceived:
		method = "receive" // done as well when the warehouse's input zone is its storage zone
	case next == "waiting":
		method = "wait"
	case next == "assigned":
		var ok bool
		if err := t.c.call(ctx, &ok, "model."+k.model+".assign_try", []int64{id}, t.ctx); err != nil {
			return fmt.Errorf("reserving the goods of %s %d: %w", k.record, id, err)
		}
		if !ok {
			return refuse("Tryton could not reserve the goods of %s %d (other shipments took them meanwhile); replay the record once the storage zone holds them", k.record, id)
		}
		return nil
	default:
		method = "done"
	}
	err := t.c.call(ctx, nil, "model."+k.model+"."+method, []int64{id}, t.ctx)
	if name, ok := originWarning(err); ok {
		if err := t.acceptWarning(ctx, name); err != nil {
			return fmt.Errorf("accepting Tryton's warning that the moves of %s %d have no origin: %w", k.record, id, err)
		}
		err = t.c.call(ctx, nil, "model."+k.model+"."+method, []int64{id}, t.ctx)
	}
	if err != nil {
		return fmt.Errorf("taking %s %d to %s: %w", k.record, id, next, err)
	}
	return nil
}

// originWarning reports whether err is Tryton's warning that moves to or from a customer
// (or a supplier, with the purchase module) have no origin (a sale or purchase line), and
// its name. The source's document is their origin, which Tryton has no record of: the
// warning is accepted, once, as a person recording a return by hand would.
func originWarning(err error) (string, bool) {
	var re *RPCError
	if !errors.As(err, &re) || re.Kind != "UserWarning" {
		return "", false
	}
	hash, ok := strings.CutSuffix(re.Warning, ".done") // stock.move's check_origin: md5 + ".done"
	return re.Warning, ok && len(hash) == 32 && strings.Trim(hash, "0123456789abcdef") == ""
}

// checkWriteOff refuses a write-off of more than the storage zone holds unreserved, before
// any step: Tryton reserves a write-off's goods before it takes them out, and would leave it
// waiting, its moves split into what it could reserve and the rest.
func (t *Target) checkWriteOff(ctx context.Context, k *stockKind, id int64) error {
	moves, err := searchRead[struct {
		Product  int64   `json:"product"`
		Quantity float64 `json:"quantity"`
	}](ctx, t, "stock.move", []any{[]any{"shipment", "=", fmt.Sprintf("%s,%d", k.model, id)}}, []string{"product", "quantity"}, nil)
	if err != nil {
		return fmt.Errorf("reading the moves of %s %d: %w", k.record, id, err)
	}
	need := map[int64]float64{}
	var products []int64
	for _, m := range moves {
		if _, ok := need[m.Product]; !ok {
			products = append(products, m.Product)
		}
		need[m.Product] += m.Quantity
	}
	if len(products) == 0 {
		return nil
	}
	storage, err := t.storage(ctx, "")
	if err != nil {
		return err
	}
	var have []struct {
		ID       int64   `json:"id"`
		Code     string  `json:"code"`
		Quantity float64 `json:"quantity"`
	}
	if err := t.c.call(ctx, &have, "model.product.product.read", products, []string{"code", "quantity"}, t.stockContext(storage, true)); err != nil {
		return fmt.Errorf("reading the stock a write-off takes: %w", err)
	}
	var short []string
	for _, p := range products {
		for _, h := range have {
			if h.ID == p && h.Quantity < need[p]-1e-9 {
				short = append(short, fmt.Sprintf("%v of sku %q (the write-off takes %v)", h.Quantity, h.Code, need[p]))
			}
		}
	}
	if len(short) > 0 {
		return refuse("the storage zone of warehouse %q holds only %s that no shipment reserves; count the stock first (an inventory count), or write off no more than is there", t.settings.Warehouse, strings.Join(short, ", "))
	}
	return nil
}

// discardStock removes a record just created that Tryton would not advance (cause), with its
// notes, so that the refused document leaves nothing behind. Tryton cancels a record before
// it deletes it; one whose goods already moved (a received shipment) cannot be, and says so.
func (t *Target) discardStock(ctx context.Context, k *stockKind, id int64, cause error) error {
	err := func() error {
		if err := t.c.call(ctx, nil, "model."+k.model+".delete", []int64{id}, t.ctx); err != nil {
			return err
		}
		notes, err := t.searchIDs(ctx, "ir.note", []any{[]any{"resource", "=", fmt.Sprintf("%s,%d", k.model, id)}})
		if err != nil || len(notes) == 0 {
			return err
		}
		return t.c.call(ctx, nil, "model.ir.note.delete", notes, t.ctx)
	}()
	if err != nil {
		return refuse("%v (removing %s %d again failed too: %v; delete it in Tryton, fix what Tryton says, then replay the record)", cause, k.record, id, err)
	}
	return fmt.Errorf("%w (the %s was removed again, so nothing of the %s stays in Tryton: fix what Tryton says, then replay the record)", cause, k.record, k.what)
}

// updateStockDocument writes the fields of the document given (its date, party, lines,
// which replace the record's, and its number, reference and note) and advances the record
// to want. Past draft a document's stock has moved, so only a draft is changed; an update
// that changes nothing succeeds whatever the state, so a source that sends a document again,
// or the recipe taking one on to the flow's state (an empty payload), only advances it.
func (t *Target) updateStockDocument(ctx context.Context, k *stockKind, id int64, rec *document, have map[string]bool, refs map[string]string, want string) error {
	recs, err := t.readStockDocuments(ctx, k, []int64{id})
	if err != nil {
		return err
	}
	if len(recs) != 1 {
		return refuse("Tryton has no %s %d (it was deleted there); replay the record as a create", k.record, id)
	}
	cur := &recs[0]
	values, note, err := t.stockChanges(ctx, k, cur, rec, have, refs)
	if err != nil {
		return err
	}
	if len(values) > 0 || note != nil {
		if cur.State != StateDraft {
			return refuse("%s is %s in Tryton, and only a draft %s is changed: %s", cur.name(k), cur.State, k.what, stockAdvice(cur.State))
		}
		if err := t.write(ctx, k.model, []int64{id}, values); err != nil {
			return err
		}
		if note != nil {
			if err := t.setDocNote(ctx, k, cur, note.message()); err != nil {
				return err
			}
		}
	}
	if err := t.advanceStock(ctx, k, id, cur.State, want); err != nil {
		if !isRefusal(err) {
			return err
		}
		return t.unstickStock(ctx, k, id, err)
	}
	return nil
}

// stockAdvice says what to do about an update of a stock document in state.
func stockAdvice(state string) string {
	switch state {
	case "cancelled":
		return "it was cancelled there; discard the record, or set it back to draft in Tryton and replay the record"
	case StateDone:
		return "its stock has moved; correct the stock with a new document (an inventory count, a write-off) and discard the record"
	}
	return "change it in Tryton by hand and discard the record, or cancel it there, set it back to draft and replay the record"
}

// stockChanges are the values that make the record hold the document's fields in have and
// the party of refs, and its new note (nil when the note holds the document's already).
func (t *Target) stockChanges(ctx context.Context, k *stockKind, cur *stockRecord, rec *document, have map[string]bool, refs map[string]string) (map[string]any, *docNote, error) {
	values := map[string]any{}
	if have["date"] && rec.Date != cur.date() {
		d, err := trytonDate(rec.Date, "date")
		if err != nil {
			return nil, nil, err
		}
		for _, f := range k.dateFields() {
			values[f] = d
		}
	}
	party := cur.Party
	if k.party != "" && refs[connector.RefCustomer] != "" {
		var err error
		if party, err = documentParty(k, refs); err != nil {
			return nil, nil, err
		}
	}
	currency := cur.currency()
	if have["currency"] {
		currency = rec.Currency
	}
	newParty, newCurrency := party != cur.Party, k.priced && currency != cur.currency()
	var p stockPlaces
	if newParty || have["lines"] {
		pv, places, err := t.stockHeader(ctx, k, party)
		if err != nil {
			return nil, nil, err
		}
		if newParty {
			values[k.party] = pv[k.party]
			if k.address != "" {
				values[k.address] = pv[k.address]
			}
		}
		p = places
	}
	switch {
	case have["lines"] && (newParty || newCurrency || !cur.holdsLines(k, rec.Lines)):
		if len(rec.Lines) == 0 {
			return nil, nil, refuse("%s %q has no lines, and a Tryton %s is its lines; map the source's lines", k.what, rec.Number, k.record)
		}
		lines, err := t.stockLines(ctx, k, rec, p, currency)
		if err != nil {
			return nil, nil, err
		}
		cmds := []any{[]any{"create", lines}}
		if ids := cur.lineIDs(); len(ids) > 0 {
			cmds = append([]any{[]any{"delete", ids}}, cmds...)
		}
		values[k.linesField()] = cmds
	case newParty || newCurrency:
		// The lines stay; their moves come from the new party, or cost in the new currency.
		move := map[string]any{}
		if newParty {
			move["from_location"] = p.from
		}
		if newCurrency {
			c, err := t.lookup(ctx, "currency.currency", "code", currency, "currency with the code")
			if err != nil {
				return nil, nil, err
			}
			move["currency"] = c
		}
		values[k.linesField()] = []any{[]any{"write", cur.lineIDs(), move}}
	}
	n := cur.Note
	if have["number"] {
		if rec.Number == "" {
			return nil, nil, refuse("the %s has no number; map the source's number onto number", k.what)
		}
		n.Number = rec.Number
	}
	if have["reference"] {
		n.Reference = rec.Reference
	}
	if have["note"] {
		n.Note = rec.Note
	}
	if (have["number"] || have["reference"] || have["note"]) && (cur.noteID == 0 || n.message() != cur.noteMessage) {
		return values, &n, nil
	}
	return values, nil, nil
}

// setDocNote writes message into the record's note, or adds the note when it has none (a
// write stopped between creating the record and its note).
func (t *Target) setDocNote(ctx context.Context, k *stockKind, cur *stockRecord, message string) error {
	if cur.noteID == 0 {
		return t.addNotes(ctx, k, cur.ID, message)
	}
	if err := t.write(ctx, "ir.note", []int64{cur.noteID}, map[string]any{"message": message}); err != nil {
		return fmt.Errorf("noting the source's number on %s %d: %w", k.record, cur.ID, err)
	}
	return nil
}

// unstickStock leaves a record that existed before, and that Tryton would not advance
// (cause), where Tryton can go on from: a write-off Tryton could not reserve goes back to
// draft instead of waiting.
func (t *Target) unstickStock(ctx context.Context, k *stockKind, id int64, cause error) error {
	recs, err := t.readStockDocuments(ctx, k, []int64{id})
	if err != nil || len(recs) != 1 {
		return fmt.Errorf("%w (and reading %s %d again failed: %v)", cause, k.record, id, err)
	}
	state := recs[0].State
	if state == "waiting" || state == "assigned" {
		if err := t.c.call(ctx, nil, "model."+k.model+".draft", []int64{id}, t.ctx); err != nil {
			return refuse("%v (and setting %s %d back to draft failed: %v; set it back in Tryton, fix what Tryton says, then replay the record)", cause, k.record, id, err)
		}
		state = StateDraft
	}
	return fmt.Errorf("%w (%s %d is %s, with the record's changes: fix what Tryton says, then replay the record)", cause, k.record, id, state)
}

// stockRecord is a stock document as the target reads it back from Tryton.
type stockRecord struct {
	ID    int64
	State string
	// Number is Tryton's own, from its sequence; Key the external reference ("" when the
	// record has none).
	Number, Key string
	Party       int64
	PartyName   string
	Date        *dateValue
	Lines       []stockLine
	// Note is what the record's note keeps of the source's document; noteID and
	// noteMessage are that note's, 0 and "" when the record has none.
	Note        docNote
	noteID      int64
	noteMessage string
}

// stockLine is one move of a shipment (an incoming move of a receipt or a return) or one
// line of an inventory.
type stockLine struct {
	ID       int64
	SKU      string
	Quantity float64
	Price    float64
	Currency string
}

// name names the record in messages: its kind, id and Tryton number.
func (r *stockRecord) name(k *stockKind) string {
	return fmt.Sprintf("%s %d (number %s)", k.record, r.ID, r.Number)
}

// date is the document's date as ISO 8601 text, "" when the record has none.
func (r *stockRecord) date() string {
	if r.Date == nil {
		return ""
	}
	return r.Date.iso().(string)
}

// currency is the currency code of the record's moves' prices, "" when they have none.
func (r *stockRecord) currency() string {
	if len(r.Lines) == 0 {
		return ""
	}
	return r.Lines[0].Currency
}

func (r *stockRecord) lineIDs() []int64 {
	ids := make([]int64, len(r.Lines))
	for i, l := range r.Lines {
		ids[i] = l.ID
	}
	return ids
}

// holdsLines reports whether the record's lines are the document's: the same SKUs in the same
// order with the same quantities, and the same prices where the document gives them and the
// record keeps them.
func (r *stockRecord) holdsLines(k *stockKind, lines []documentLine) bool {
	if len(r.Lines) != len(lines) {
		return false
	}
	for i, l := range lines {
		c := r.Lines[i]
		if c.SKU != l.SKU || l.Quantity == nil || !same(c.Quantity, *l.Quantity) || (k.priced && l.Price != nil && !same(c.Price, *l.Price)) {
			return false
		}
	}
	return true
}

// state is the record's state as Found.Fields gives it: Tryton's, except that a write-off
// Tryton holds waiting or assigned (a write stopped between the steps that take it to done)
// reads as a draft, which it still is, no stock having moved: so the recipe takes it on to
// the flow's state like any draft an interrupted write left behind.
func (r *stockRecord) state(k *stockKind) string {
	if i := slices.Index(k.path, r.State); i > 0 && !slices.Contains(k.states, r.State) {
		return k.states[0]
	}
	return r.State
}

// fields is the record in the canonical document shape, with its state
// (connector.FieldState).
func (r *stockRecord) fields(k *stockKind) json.RawMessage {
	lines := make([]map[string]any, 0, len(r.Lines))
	for _, l := range r.Lines {
		line := map[string]any{"sku": l.SKU, "quantity": l.Quantity}
		if k.priced {
			line["price"] = l.Price
		}
		lines = append(lines, line)
	}
	out := map[string]any{"document_type": k.entity, "date": r.Date.iso(), "lines": lines, connector.FieldState: r.state(k)}
	for name, v := range map[string]string{"number": r.Note.Number, "reference": r.Note.Reference, "note": r.Note.Note} {
		if v != "" {
			out[name] = v
		}
	}
	if c := r.currency(); k.priced && c != "" {
		out["currency"] = c
	}
	if r.PartyName != "" {
		out["party"] = map[string]any{"name": r.PartyName}
	}
	return mustJSON(out)
}

// readStockDocuments reads the records of kind k with ids, each with its lines and notes,
// in four searches; ids Tryton does not have are left out.
func (t *Target) readStockDocuments(ctx context.Context, k *stockKind, ids []int64) ([]stockRecord, error) {
	type party struct {
		Name string `json:"name"`
	}
	type row struct {
		ID            int64      `json:"id"`
		State         string     `json:"state"`
		Number        string     `json:"number"`
		Reference     string     `json:"reference"`
		Supplier      many2one   `json:"supplier"`
		Customer      many2one   `json:"customer"`
		SupplierName  *party     `json:"supplier."`
		CustomerName  *party     `json:"customer."`
		EffectiveDate *dateValue `json:"effective_date"`
		PlannedDate   *dateValue `json:"planned_date"`
		Date          *dateValue `json:"date"`
		Incoming      []int64    `json:"incoming_moves"`
		Moves         []int64    `json:"moves"`
	}
	fields := []string{"state", "number"}
	switch {
	case k.inventory():
		fields = append(fields, "date")
	case k.party != "":
		fields = append(fields, "reference", "effective_date", "planned_date", k.party, k.party+".name", "incoming_moves")
	default:
		fields = append(fields, "reference", "effective_date", "planned_date", "moves")
	}
	rows, err := searchRead[row](ctx, t, k.model, []any{[]any{"id", "in", ids}}, fields, nil)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	out := make([]stockRecord, len(rows))
	resources := make([]string, len(rows))
	var lineOf map[int64]int // a move's id -> its record's index
	for i, r := range rows {
		rec := stockRecord{ID: r.ID, State: r.State, Number: r.Number, Date: r.EffectiveDate}
		if k.inventory() {
			rec.Date = r.Date
		} else if rec.Date == nil {
			rec.Date = r.PlannedDate
		}
		if after, ok := strings.CutPrefix(r.Reference, refPrefix); ok {
			rec.Key = after
		}
		switch {
		case r.Supplier != nil && r.SupplierName != nil:
			rec.Party, rec.PartyName = *r.Supplier, r.SupplierName.Name
		case r.Customer != nil && r.CustomerName != nil:
			rec.Party, rec.PartyName = *r.Customer, r.CustomerName.Name
		}
		for _, m := range append(r.Incoming, r.Moves...) {
			if lineOf == nil {
				lineOf = map[int64]int{}
			}
			lineOf[m] = i
		}
		out[i] = rec
		resources[i] = fmt.Sprintf("%s,%d", k.model, r.ID)
	}
	if err := t.readStockLines(ctx, k, out, lineOf); err != nil {
		return nil, err
	}
	notes, err := searchRead[struct {
		ID       int64  `json:"id"`
		Resource string `json:"resource"`
		Message  string `json:"message"`
	}](ctx, t, "ir.note", []any{[]any{"resource", "in", resources}}, []string{"resource", "message"}, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the notes of %ss: %w", k.record, err)
	}
	for _, n := range notes {
		i := slices.Index(resources, n.Resource)
		if i < 0 {
			continue
		}
		rec := &out[i]
		if key, ok := strings.CutPrefix(n.Message, refPrefix); ok && k.inventory() && rec.Key == "" {
			rec.Key = key
		} else if d, ok := parseDocNote(n.Message); ok && rec.noteID == 0 {
			rec.Note, rec.noteID, rec.noteMessage = d, n.ID, n.Message
		}
	}
	return out, nil
}

// readStockLines reads the lines of recs: an inventory's lines, else the moves lineOf names
// (a move's id -> its record's index), in one search each.
func (t *Target) readStockLines(ctx context.Context, k *stockKind, recs []stockRecord, lineOf map[int64]int) error {
	type product struct {
		Code string `json:"code"`
	}
	if k.inventory() {
		ids := make([]int64, len(recs))
		for i, r := range recs {
			ids[i] = r.ID
		}
		lines, err := searchRead[struct {
			ID        int64    `json:"id"`
			Inventory int64    `json:"inventory"`
			Quantity  *float64 `json:"quantity"`
			Product   *product `json:"product."`
		}](ctx, t, "stock.inventory.line", []any{[]any{"inventory", "in", ids}}, []string{"inventory", "quantity", "product.code"}, nil)
		if err != nil {
			return fmt.Errorf("reading the lines of inventories: %w", err)
		}
		for _, l := range lines {
			i := slices.Index(ids, l.Inventory)
			if i < 0 || l.Product == nil {
				continue
			}
			line := stockLine{ID: l.ID, SKU: l.Product.Code}
			if l.Quantity != nil {
				line.Quantity = *l.Quantity
			}
			recs[i].Lines = append(recs[i].Lines, line)
		}
		return nil
	}
	if len(lineOf) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(lineOf))
	moves, err := searchRead[struct {
		ID        int64         `json:"id"`
		Quantity  float64       `json:"quantity"`
		UnitPrice *decimalValue `json:"unit_price"`
		Product   *product      `json:"product."`
		Currency  *struct {
			Code string `json:"code"`
		} `json:"currency."`
	}](ctx, t, "stock.move", []any{[]any{"id", "in", ids}}, []string{"quantity", "unit_price", "product.code", "currency.code"}, nil)
	if err != nil {
		return fmt.Errorf("reading the moves of %ss: %w", k.record, err)
	}
	for _, m := range moves {
		line := stockLine{ID: m.ID, Quantity: m.Quantity, Price: m.UnitPrice.float()}
		if m.Product != nil {
			line.SKU = m.Product.Code
		}
		if m.Currency != nil {
			line.Currency = m.Currency.Code
		}
		recs[lineOf[m.ID]].Lines = append(recs[lineOf[m.ID]].Lines, line)
	}
	return nil
}

// findStockDocuments finds records of kind k by external reference (a shipment's reference,
// an inventory's note) or by the source's number (their note), each with its fields in the
// canonical document shape.
func (t *Target) findStockDocuments(ctx context.Context, k *stockKind, field string, values []string) ([]connector.Found, error) {
	matches := map[int64][]string{}
	type note struct {
		Resource string `json:"resource"`
		Message  string `json:"message"`
	}
	idOf := func(resource string) int64 {
		id, _ := strconv.ParseInt(strings.TrimPrefix(resource, k.model+","), 10, 64)
		return id
	}
	notesOf := likeEscape(k.model) + ",%"
	switch field {
	case connector.FieldExternalRef:
		refs := make([]string, len(values))
		for i, v := range values {
			refs[i] = refPrefix + v
		}
		if k.inventory() {
			notes, err := searchRead[note](ctx, t, "ir.note", []any{[]any{"message", "in", refs}, []any{"resource", "like", notesOf}}, []string{"resource", "message"}, nil)
			if err != nil {
				return nil, fmt.Errorf("finding %ss by external reference: %w", k.what, err)
			}
			for _, n := range notes {
				matches[idOf(n.Resource)] = append(matches[idOf(n.Resource)], strings.TrimPrefix(n.Message, refPrefix))
			}
			break
		}
		rows, err := searchRead[struct {
			ID        int64  `json:"id"`
			Reference string `json:"reference"`
		}](ctx, t, k.model, []any{[]any{"reference", "in", refs}}, []string{"reference"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding %ss by external reference: %w", k.what, err)
		}
		for _, r := range rows {
			matches[r.ID] = append(matches[r.ID], strings.TrimPrefix(r.Reference, refPrefix))
		}
	case FieldNumber:
		// The number is the note's first line: the whole note, or the note's start up to
		// its first line break. Like is a superset (SQLite's ignores case), so each note
		// found is read and matched exactly.
		or := []any{"OR"}
		for _, v := range values {
			or = append(or, []any{"message", "=", noteNumber + v}, []any{"message", "like", likeEscape(noteNumber+v) + "\n%"})
		}
		notes, err := searchRead[note](ctx, t, "ir.note", []any{[]any{"resource", "like", notesOf}, or}, []string{"resource", "message"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding %ss by number: %w", k.what, err)
		}
		for _, n := range notes {
			d, ok := parseDocNote(n.Message)
			if id := idOf(n.Resource); ok && slices.Contains(values, d.Number) && !slices.Contains(matches[id], d.Number) {
				matches[id] = append(matches[id], d.Number)
			}
		}
	default:
		return nil, fmt.Errorf("finding %ss by %s: the tryton target finds them by external_ref or number", k.what, field)
	}
	delete(matches, 0)
	if len(matches) == 0 {
		return nil, nil
	}
	recs, err := t.readStockDocuments(ctx, k, slices.Sorted(maps.Keys(matches)))
	if err != nil {
		return nil, fmt.Errorf("reading %ss: %w", k.record, err)
	}
	var out []connector.Found
	for i := range recs {
		r := &recs[i]
		for _, v := range matches[r.ID] {
			out = append(out, connector.Found{Value: v, ID: idString(r.ID), Fields: r.fields(k)})
		}
	}
	return out, nil
}
