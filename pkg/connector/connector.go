// Package connector is the SDK that every connector implements: the records a target receives,
// the Target interface, the Spec that describes a connector's settings, and the Registry that
// maps a connector type name to its spec and factory.
//
// A connector registers under a type name ("sql", "rest", ...) with a spec; the spec drives
// settings validation, so a bad endpoint is refused when it is saved instead of failing at
// run time. The registry is a value a caller constructs, never a process global, so two
// services can run side by side in one process with different connector sets.
package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Kind says which side of a flow a connector serves.
type Kind string

const (
	// KindSource connectors produce change events (polling, webhooks, native events).
	KindSource Kind = "source"
	// KindTarget connectors apply records to a target system.
	KindTarget Kind = "target"
)

// Operation is what a record asks the target to do.
type Operation string

const (
	// OpUpsert creates the record or updates it by key.
	OpUpsert Operation = "upsert"
	// OpDelete removes the record by key; deleting a record that is not there succeeds,
	// because a retried batch must not fail on its own earlier effect.
	OpDelete Operation = "delete"
)

// Record is one mapped record on its way to a target, as the pipeline hands it to the
// platform's recipe (pkg/recipe), which turns it into lookups and writes.
type Record struct {
	// Key is the source key; every target stores it as the record's external reference
	// (FieldExternalRef), so a lost ledger entry is repaired by a lookup instead of a
	// duplicate.
	Key string
	Op  Operation
	// Create is true when the ledger has never seen this key for this flow, or saw its
	// create refused. The recipe then looks the record up by its external reference
	// before it creates it.
	Create bool
	// TargetID is the record's id in the target as the ledger knows it; empty when the
	// ledger does not know it (the recipe then finds it by external reference).
	TargetID string
	// Version is the source version (an updated-at or a sequence); targets that can
	// compare it never let an older version overwrite a newer one.
	Version int64
	// Payload is the target record, a JSON object (field -> value). Empty for deletes.
	Payload json.RawMessage
}

// WriteMode says when a target writes one field of a record, so that data enriched in the
// target is not overwritten (DESIGN section 4, products). The recipe applies them for every
// target: a target is only ever asked to write the fields that are to be written.
type WriteMode string

const (
	// WriteAlways writes the field on create and on every update.
	WriteAlways WriteMode = "always"
	// WriteCreateOnly writes the field when the record is created, never over it after.
	WriteCreateOnly WriteMode = "create_only"
	// WriteUpdateOnly writes the field on updates of a record that exists, not on create.
	WriteUpdateOnly WriteMode = "update_only"
	// WriteIfEmpty writes the field when the target's value is missing or empty.
	WriteIfEmpty WriteMode = "if_empty"
)

// FieldExternalRef is the field every target finds records by: the source key, which a
// target stores with each record it creates (a column, a reference field, a code).
const FieldExternalRef = "external_ref"

// The fields the document recipe finds records by (besides FieldExternalRef), for targets
// that serve documents (orders, invoices, payments): a customer by e-mail (case-insensitive)
// or by name, a product by SKU (a variant's, or a simple product's), an invoice by number.
const (
	FieldEmail  = "email"
	FieldName   = "name"
	FieldSKU    = "sku"
	FieldNumber = "number"
)

// FieldState names, in a found document's Found.Fields, the state the target holds it in (a
// sale's draft, quotation, confirmed...; an invoice's draft, posted...). The recipe uses it to
// take a document that an interrupted write left short of the flow's state (Write.State) on
// to it. A target that reads documents gives it.
const FieldState = "state"

// The names of Write.Refs: the records a document refers to, as the recipe found or made
// them in the target.
const (
	// RefCustomer is the id of an order's customer, or of an invoice's or a document's
	// party (a customer record of the target).
	RefCustomer = "customer"
	// RefInvoice is the id of the invoice a payment settles.
	RefInvoice = "invoice"
)

// RefSKU names, in Write.Refs, the id of the product of a document line's SKU, as the
// target's Find(product, sku) answered it.
func RefSKU(sku string) string { return "sku:" + sku }

// AnyEntity in Capabilities.Entity says that the target stores records of any entity, in
// whatever shape the flow's mapping gives them (the sql target: one table, any columns).
const AnyEntity = "*"

// Capabilities say what a target can do with one entity. The platform composes the recipe
// from them, and the control plane refuses a flow whose target lacks what the flow needs.
type Capabilities struct {
	// Entity is the entity's name (customer, product, category, stock, ...) or AnyEntity.
	Entity string
	// FindBy lists the fields the target finds records of the entity by; every target that
	// creates records finds them by FieldExternalRef, which the recipe looks up before each
	// create. Other fields (email, sku, name) serve the recipes that look records up by
	// them.
	FindBy []string
	// Read says that a found record comes with its current fields (Found.Fields), which the
	// if_empty write mode, the duplicate policy's field diff and `flow test` need.
	Read bool
	// Create, Update and Delete say which writes the target accepts.
	Create, Update, Delete bool
	// Canonical says that records must have the entity's canonical shape (pkg/entity): the
	// mapper refuses a mapped record that lacks a required field before any call.
	Canonical bool
	// States lists, for a document entity, how far the target can take a document it
	// creates, the default first: Tryton's sales go to draft, quotation or confirmed. A
	// flow's document state must be one of them; empty: the target has one way.
	States []string
	// Types lists, for an order, the source document types (the order's type field: order,
	// invoice) the target takes; a flow maps the others onto one of them. Empty takes every
	// type.
	Types []string
}

// CanFind reports whether the target finds records of the entity by field.
func (c Capabilities) CanFind(field string) bool {
	for _, f := range c.FindBy {
		if f == field {
			return true
		}
	}
	return false
}

// WriteOp is one write the recipe asks of a target.
type WriteOp string

const (
	// WriteCreate creates a record, storing Write.Key as its external reference.
	WriteCreate WriteOp = "create"
	// WriteUpdate changes the fields in Write.Payload of the record Write.ID, and leaves
	// every other field as it is.
	WriteUpdate WriteOp = "update"
	// WriteDelete removes the record Write.ID; removing a record that is not there
	// succeeds, because a retried batch must not fail on its own earlier effect.
	WriteDelete WriteOp = "delete"
)

// Write is one change the recipe asks a target to make.
type Write struct {
	Op WriteOp
	// Key is the source key: the external reference a create stores.
	Key string
	// ID is the target's id of the record an update or delete changes.
	ID string
	// Version is the source version; a target that stores it never lets an older version
	// overwrite a newer one.
	Version int64
	// Payload holds the fields to write, a JSON object: on create every field the write
	// modes let through, on update only those to change. Empty for deletes.
	Payload json.RawMessage
	// Refs are, for a document, the ids in the target of the records it refers to, which
	// the recipe found or made before it: RefCustomer, RefInvoice, and RefSKU(sku) for the
	// product of each line's SKU. Nil for other entities.
	Refs map[string]string
	// State is how far the target takes the document it creates or updates, one of its
	// Capabilities.States as the flow says; empty: the target's default.
	State string
}

// Found is one record a Find matched.
type Found struct {
	// Value is the looked-up value it matched.
	Value string
	// ID is the record's id in the target.
	ID string
	// Fields are the record's current fields, named as the flow's records name them, when
	// the target can read (Capabilities.Read); nil otherwise.
	Fields json.RawMessage
}

// Result is the outcome of one write, at the same index as the write.
type Result struct {
	// TargetID is the record's id in the target system; empty when Err is set.
	TargetID string
	// Err, when set, is the target's refusal of this record: retrying will not fix it (a
	// constraint violation, a missing column, a 4xx answer). It is dead-lettered with the
	// target's message, which names the record key, what failed and what to do, and never
	// holds the payload.
	Err error
	// Skipped, when set, says the target left the record out on purpose, and why: a stock
	// level of a product whose stock it does not manage. It is a success, logged as
	// skipped with the reason; nothing is dead-lettered.
	Skipped string
}

// Target is one target system, opened with an endpoint's settings.
//
// Find and Write may be called from several goroutines at once (one per partition), with
// batches that never share a key. A returned error means the call as a whole failed: a
// *ThrottledError makes the flow wait as the target asked; any other error is an outage,
// which pauses the flow until the target works again (the connector probes it), so Write
// must be idempotent: applying a batch twice leaves the target as applying it once. A
// record's own problem goes in its Result, never in the error: an error holds back every
// record of the flow behind it. ctx bounds each call.
type Target interface {
	// Find returns the records of entity whose field equals one of values, in any order,
	// several for a value that matches more than one. field is one of the entity's
	// Capabilities.FindBy.
	Find(ctx context.Context, entity, field string, values []string) ([]Found, error)
	// Write applies writes in order and returns one Result per write, at the same index.
	Write(ctx context.Context, entity string, writes []Write) ([]Result, error)
	// Check checks that the target answers and accepts its credentials, for `syncline
	// endpoint test`; it writes nothing.
	Check(ctx context.Context) error
	// Close releases the target's connections; no other call may run during or after it.
	Close() error
}

// ThrottledError is a target's "slow down": a 429 or 503 answer, or its own limit. The flow
// waits RetryAfter (or the budget's back-off when it is zero) and then tries again; nothing
// is failed or paused.
type ThrottledError struct {
	RetryAfter time.Duration
	Err        error
}

func (e *ThrottledError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("the target asked to slow down for %s: %v", e.RetryAfter, e.Err)
	}
	return fmt.Sprintf("the target asked to slow down: %v", e.Err)
}

func (e *ThrottledError) Unwrap() error { return e.Err }

// TargetFactory opens a target from settings that ValidateSettings has already checked and
// normalised (defaults filled in, see ValidateSettings for the value types), and whose
// destinations (Spec.Reaches) env's egress policy has allowed. The target makes every
// connection through env.Egress (its Dialer, ResolvePath), which checks again at connect
// time. ctx bounds the opening only, not the target's lifetime.
type TargetFactory func(ctx context.Context, settings map[string]any, env Env) (Target, error)

// Env is whose endpoint a connector serves and what it may reach.
type Env struct {
	Tenant string
	Egress *Egress
	// ReadOnly says the target is opened for a test (`syncline endpoint test`,
	// `syncline flow test`): it must change nothing in the target system, not
	// even what it would set up on its first write (a table, a column).
	ReadOnly bool
	// Budget is the endpoint's request budget, shared by every flow that writes to it; never
	// nil when the platform opens a target (Registry.OpenTarget makes one from the settings
	// when the caller gives none). Every request the target sends runs within it:
	// an HTTP connector sends through Budget.Transport, any other calls Budget.Acquire
	// around each request.
	Budget *Budget
}

// Destination is one place an endpoint's settings make its connector reach: a network host
// (Host and Port, and the Database it opens, if its protocol names one) or a file (Path, as
// given: a relative path is in the tenant's folder).
type Destination struct {
	// Setting is the setting it comes from, for messages: "settings.dsn".
	Setting  string
	Host     string
	Port     int
	Database string
	Path     string
}

// ReachFunc lists the destinations of an endpoint's checked settings. A problem with the
// settings themselves is a *SettingsError; the value of a secret setting is never in it.
type ReachFunc func(settings map[string]any) ([]Destination, error)
