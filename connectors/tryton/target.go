// Package tryton is the "tryton" target connector: it writes customers, products,
// categories, stock levels, orders (as sales), invoices, payments and the stock documents
// (goods receipts, order returns, inventory counts, write-offs) into a Tryton 6.0 ERP over
// its JSON-RPC API, as a thin adapter under the platform's recipe (which looks records
// up, applies write modes and duplicate policies, finds or makes what documents refer to,
// and classifies outcomes).
//
// Where each entity keeps its external reference (the source key), so that
// Find(external_ref) finds what an earlier write created:
//
//   - customer: an untyped party identifier (party.identifier, type empty) whose code is
//     "syncline:" + key, on the customer's party (the company party for a company);
//   - product: an untyped product identifier "syncline:" + key on each variant of the
//     template; the target id is the template's;
//   - category: a note (ir.note) on the category whose message is "syncline:" + key, since
//     product.category has no free field;
//   - stock: an untyped product identifier "syncline-stock:" + key on the variant; the
//     target id is the variant's;
//   - order: the sale's description "syncline:" + key, written in the same call that
//     creates the sale (a sale has no identifiers, and a note would leave a moment in which
//     the sale exists without it); the order's number is the sale's reference. The target
//     id is the sale's;
//   - invoice: the invoice's description, "syncline:" + key. The source's number is the
//     invoice's reference (Tryton numbers an invoice itself when it posts it, so
//     Find(invoice, number) searches the references, then the comments), and the source's
//     own reference is its comment;
//   - payment: the description of the move Tryton's pay wizard books for it,
//     "syncline-payment:" + key; the target id is the move's. A payment whose move exists
//     is never paid again, since Tryton's wizard would book a repeated partial payment twice.
//   - goods-receipt, order-return, write-off: the reference of the Tryton shipment that
//     holds it (a supplier shipment, a customer return shipment, an internal shipment of the
//     storage zone to lost and found), "syncline:" + key, written in the call that creates
//     it. The target id is the shipment's;
//   - inventory-count: a note (ir.note) "syncline:" + key on the inventory, which has no free
//     field, written in the call after the one that creates it (a write stopped between the
//     two leaves a draft inventory, which moves no stock, without it). The target id is the
//     inventory's.
//
// A stock document's number, reference and note are a note on its record, "Number: " +
// number, then "Reference: " + reference, then the note, one line each: Find(number)
// searches these notes.
//
// Party codes keep coming from Tryton's sequence, product codes are the SKUs, and sale,
// shipment and inventory numbers are Tryton's own.
//
// Tryton's SQLite backend draws sequence numbers (party codes, inventory and shipment
// numbers, the numbers of quoted sales and of their shipments, invoice and move numbers)
// without a lock, so parallel writers get the same number (two clients creating 50 parties
// each collided 37 times, and parallel posting numbered 24 invoices with 6 numbers). The
// target therefore serialises every write that draws a number or finds-or-creates a shared
// record (a category, an attribute), every order and stock document, and every payment from
// the look for its earlier booking to the booking, whatever the budget allows; reads and
// plain updates run in parallel.
package tryton

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// refPrefix and stockRefPrefix namespace the external references among the identifiers a
// party or product may hold from people or other integrations.
const (
	refPrefix      = "syncline:"
	stockRefPrefix = "syncline-stock:"
)

// pageSize bounds the ids one search or read asks for, so that an answer stays small.
const pageSize = 200

// Target writes into one Tryton database. It is safe for concurrent use.
type Target struct {
	c        *client
	settings Settings

	company int64
	// ctx is the context dict every call sends: the company (list prices are per company,
	// sales and inventories need it).
	ctx map[string]any

	// seq serialises the writes that draw a sequence number or find-or-create a shared
	// record; see the package doc.
	seq sync.Mutex

	// known caches the ids of master data that never changes under the connector (units,
	// countries, relation types, warehouses), by kind and name.
	knownMu sync.Mutex
	known   map[string]int64
}

var _ connector.Target = (*Target)(nil)

// Open checks the settings and env's egress policy, logs in and finds the company. Every
// connection goes through env.Egress's dialer, which checks each address it connects to.
// ctx bounds the opening only.
func Open(ctx context.Context, s Settings, env connector.Env) (*Target, error) {
	if err := s.validate(ctx, env); err != nil {
		return nil, err
	}
	// Every request goes through this one transport, so the endpoint's budget (rate and
	// concurrency, shared by every flow writing to it) applies by wrapping it.
	dialer := env.Egress.Dialer(env.Tenant, "")
	var rt http.RoundTripper = &http.Transport{
		DialContext:           dialer.DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: s.Timeout,
	}
	if env.Budget != nil {
		rt = env.Budget.Transport(rt)
	}
	t := &Target{
		c:        newClient(rt, s.URL, s.Database, s.User, s.Password, s.Timeout),
		settings: s,
		known:    map[string]int64{},
	}
	if err := t.findCompany(ctx); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return t, nil
}

// findCompany sets the company every call works in: the one named by the settings, or the
// user's current one.
func (t *Target) findCompany(ctx context.Context) error {
	if t.settings.Company == "" {
		var prefs struct {
			Company *int64 `json:"company"`
		}
		if err := t.c.call(ctx, &prefs, "model.res.user.get_preferences", true, map[string]any{}); err != nil {
			return fmt.Errorf("reading the preferences of Tryton user %q: %w", t.settings.User, err)
		}
		if prefs.Company == nil {
			return fmt.Errorf("the Tryton user %q has no current company: set one for the user, or name it in settings.company", t.settings.User)
		}
		t.company = *prefs.Company
	} else {
		var ids []int64
		if err := t.c.call(ctx, &ids, "model.company.company.search", [][]any{{"party.name", "=", t.settings.Company}}, 0, 2, nil, map[string]any{}); err != nil {
			return fmt.Errorf("finding the company of settings.company: %w", err)
		}
		if len(ids) != 1 {
			return &connector.SettingsError{Path: "settings.company", Reason: fmt.Sprintf("Tryton has %d companies named %q that user %q may see; name one that exists", len(ids), t.settings.Company, t.settings.User)}
		}
		t.company = ids[0]
	}
	t.ctx = map[string]any{"company": t.company}
	return nil
}

// Check logs in (again) and reads the user's preferences: the target answers and accepts
// the credentials. It writes nothing.
func (t *Target) Check(ctx context.Context) error {
	if _, err := t.c.login(ctx, t.currentSession()); err != nil {
		return err
	}
	if err := t.c.call(ctx, nil, "model.res.user.get_preferences", true, map[string]any{}); err != nil {
		return fmt.Errorf("checking Tryton at %s: %w", t.c.base, err)
	}
	return nil
}

func (t *Target) currentSession() string {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.c.session
}

// Close ends the session.
func (t *Target) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := t.c.close(ctx)
	t.c.http.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("logging out of Tryton at %s: %w", t.c.base, err)
	}
	return nil
}

// Find returns the records of entity whose field equals one of values.
func (t *Target) Find(ctx context.Context, entity, field string, values []string) ([]connector.Found, error) {
	if len(values) == 0 {
		return nil, nil
	}
	switch entity {
	case EntityCustomer:
		return t.findCustomers(ctx, field, values)
	case EntityProduct:
		return t.findProducts(ctx, field, values)
	case EntityCategory:
		return t.findCategories(ctx, field, values)
	case EntityStock:
		return t.findStock(ctx, field, values)
	case EntityOrder:
		return t.findOrders(ctx, field, values)
	case EntityInvoice:
		return t.findInvoices(ctx, field, values)
	case EntityPayment:
		return t.findPayments(ctx, field, values)
	}
	if k := stockKindOf(entity); k != nil {
		return t.findStockDocuments(ctx, k, field, values)
	}
	return nil, fmt.Errorf("finding %s records: the tryton target serves %s", entity, served)
}

// Write applies writes in order. A record Tryton refuses, or that cannot be expressed in
// Tryton, fails alone with Tryton's message; an outage fails the call.
func (t *Target) Write(ctx context.Context, entity string, writes []connector.Write) ([]connector.Result, error) {
	var one func(context.Context, connector.Write) (string, error)
	switch entity {
	case EntityCustomer:
		one = t.writeCustomer
	case EntityProduct:
		one = t.writeProduct
	case EntityCategory:
		one = t.writeCategory
	case EntityStock:
		one = t.writeStock
	case EntityOrder:
		one = t.writeOrder
	case EntityInvoice:
		one = t.writeInvoice
	case EntityPayment:
		one = t.writePayment
	default:
		k := stockKindOf(entity)
		if k == nil {
			return nil, fmt.Errorf("writing %s records: the tryton target serves %s", entity, served)
		}
		one = func(ctx context.Context, w connector.Write) (string, error) { return t.writeStockDocument(ctx, k, w) }
	}
	results := make([]connector.Result, len(writes))
	for i, w := range writes {
		id, err := one(ctx, w)
		switch {
		case err == nil:
			results[i].TargetID = id
		case errors.As(err, new(*skip)):
			results[i].Skipped = err.Error()
		case isRefusal(err):
			results[i].Err = fmt.Errorf("%s %q: %w", entity, w.Key, err)
		default:
			return nil, fmt.Errorf("writing %s %q: %w", entity, w.Key, err)
		}
	}
	return results, nil
}

// refusal is a record's own problem found before any call: a value Tryton cannot hold.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refuse(format string, args ...any) error { return &refusal{msg: fmt.Sprintf(format, args...)} }

// skip is a record the target leaves out on purpose (connector.Result.Skipped): a stock
// level of a product whose stock Tryton, or this endpoint, does not manage.
type skip struct{ msg string }

func (s *skip) Error() string { return s.msg }

func skipped(format string, args ...any) error { return &skip{msg: fmt.Sprintf(format, args...)} }

// isRefusal reports whether err is the record's own problem rather than the target's.
func isRefusal(err error) bool {
	var r *refusal
	return errors.As(err, &r) || userError(err)
}

// decodePayload decodes a record's payload into v and returns the names of the fields
// present and not null (an update writes only those). Fields the canonical entity does not
// name are left alone: a flow may carry more than the canonical shape.
func decodePayload(payload json.RawMessage, v any) (map[string]bool, error) {
	var present map[string]json.RawMessage
	if err := json.Unmarshal(payload, &present); err != nil {
		return nil, refuse("the record is not a JSON object: %v", err)
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return nil, refuse("the record does not have the canonical shape: %v", err)
	}
	have := make(map[string]bool, len(present))
	for k, raw := range present {
		if string(raw) != "null" {
			have[k] = true
		}
	}
	return have, nil
}

// parseID reads a target id the ledger holds.
func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, refuse("target id %q is not a Tryton record id", s)
	}
	return id, nil
}

func idString(id int64) string { return strconv.FormatInt(id, 10) }

// searchIDs returns the ids of model matching domain, all of them, page by page.
func (t *Target) searchIDs(ctx context.Context, model string, domain []any) ([]int64, error) {
	var all []int64
	for offset := 0; ; offset += pageSize {
		var ids []int64
		if err := t.c.call(ctx, &ids, "model."+model+".search", domain, offset, pageSize, [][]string{{"id", "ASC"}}, t.ctx); err != nil {
			return nil, err
		}
		all = append(all, ids...)
		if len(ids) < pageSize {
			return all, nil
		}
	}
}

// searchRead returns fields of the records of model matching domain, all of them, page by
// page, each decoded into a T. rpcCtx is the Tryton context to send; nil sends t.ctx.
func searchRead[T any](ctx context.Context, t *Target, model string, domain []any, fields []string, rpcCtx map[string]any) ([]T, error) {
	if rpcCtx == nil {
		rpcCtx = t.ctx
	}
	var all []T
	for offset := 0; ; offset += pageSize {
		var page []T
		if err := t.c.call(ctx, &page, "model."+model+".search_read", domain, offset, pageSize, [][]string{{"id", "ASC"}}, fields, rpcCtx); err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < pageSize {
			return all, nil
		}
	}
}

// create creates one record of model and returns its id.
func (t *Target) create(ctx context.Context, model string, values map[string]any) (int64, error) {
	var ids []int64
	if err := t.c.call(ctx, &ids, "model."+model+".create", []any{values}, t.ctx); err != nil {
		return 0, err
	}
	if len(ids) != 1 {
		return 0, fmt.Errorf("creating a %s: Tryton answered %d ids for one record", model, len(ids))
	}
	return ids[0], nil
}

func (t *Target) write(ctx context.Context, model string, ids []int64, values map[string]any) error {
	if len(ids) == 0 || len(values) == 0 {
		return nil
	}
	return t.c.call(ctx, nil, "model."+model+".write", ids, values, t.ctx)
}

// exists reports whether model has a record with id (active or not).
func (t *Target) exists(ctx context.Context, model string, id int64) (bool, error) {
	var n int64
	err := t.c.call(ctx, &n, "model."+model+".search_count", []any{[]any{"id", "=", id}, []any{"active", "in", []bool{true, false}}}, t.ctx)
	if err != nil {
		var re *RPCError
		if errors.As(err, &re) && re.Kind == "" {
			// A model without an active field: count by id alone.
			err = t.c.call(ctx, &n, "model."+model+".search_count", []any{[]any{"id", "=", id}}, t.ctx)
		}
	}
	return n > 0, err
}

// lookup finds the id of a master record by a unique field (a unit's symbol, a country's
// code), caching it: master data does not change under the connector. A missing one is the
// record's refusal, naming what Tryton lacks.
func (t *Target) lookup(ctx context.Context, model, field, value, what string) (int64, error) {
	return t.remember(model+"\x00"+field+"\x00"+value, func() (int64, error) {
		var ids []int64
		if err := t.c.call(ctx, &ids, "model."+model+".search", []any{[]any{field, "=", value}}, 0, 2, nil, t.ctx); err != nil {
			return 0, err
		}
		if len(ids) == 0 {
			return 0, refuse("Tryton has no %s %q; create it in Tryton first", what, value)
		}
		return ids[0], nil
	})
}

// remember returns the id of master data known under key, finding it with find the first
// time: master data (units, warehouses, journals) does not change under the connector. An
// error is not remembered.
func (t *Target) remember(key string, find func() (int64, error)) (int64, error) {
	t.knownMu.Lock()
	id, ok := t.known[key]
	t.knownMu.Unlock()
	if ok {
		return id, nil
	}
	id, err := find()
	if err != nil {
		return 0, err
	}
	t.knownMu.Lock()
	t.known[key] = id
	t.knownMu.Unlock()
	return id, nil
}

// acceptWarning accepts Tryton's UserWarning of name once, as a person answering it in the
// client would: with a res.user.warning record of its name, which the next check of the
// warning consumes.
func (t *Target) acceptWarning(ctx context.Context, name string) error {
	uid, err := t.c.userID(ctx)
	if err != nil {
		return err
	}
	_, err = t.create(ctx, "res.user.warning", map[string]any{"user": uid, "name": name, "always": false})
	return err
}

// many2one is how Tryton answers a many2one field: an id or null.
type many2one = *int64

func decimal(v float64) map[string]any {
	return map[string]any{"__class__": "Decimal", "decimal": strconv.FormatFloat(v, 'f', -1, 64)}
}

// dateValue is Tryton's encoding of a Date field.
type dateValue struct {
	Year  int `json:"year"`
	Month int `json:"month"`
	Day   int `json:"day"`
}

func (d dateValue) encode() map[string]any {
	return map[string]any{"__class__": "date", "year": d.Year, "month": d.Month, "day": d.Day}
}

// iso is the date as ISO 8601 text, or nil for a missing date.
func (d *dateValue) iso() any {
	if d == nil {
		return nil
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// decimalValue is Tryton's encoding of a Numeric field.
type decimalValue struct {
	Decimal string `json:"decimal"`
}

func (d *decimalValue) float() float64 {
	if d == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(d.Decimal, 64)
	return f
}

// flag reads Tryton's booleans, which SQLite answers as 1 and 0.
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true", "1":
		*f = true
	default:
		*f = false
	}
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding read fields: %v", err)) // only maps of plain values reach here
	}
	return b
}
