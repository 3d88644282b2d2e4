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

// Record is one mapped record on its way to a target.
type Record struct {
	// Key is the source key; every target stores it as the record's external reference,
	// so a lost ledger entry is repaired by a lookup instead of a duplicate.
	Key string
	Op  Operation
	// Create is true when the ledger has never seen this key for this flow. It is a hint:
	// targets that must choose between POST and PUT use it; upserting targets may ignore it.
	Create bool
	// Version is the source version (an updated-at or a sequence); targets that can
	// compare it never let an older version overwrite a newer one.
	Version int64
	// Payload is the target record, a JSON object (field -> value). Empty for deletes.
	Payload json.RawMessage
	// WriteModes say, per field, when the target writes it (the flow's write modes); a
	// field not listed is WriteAlways. The map is the flow's, shared by its records: read
	// it, never change it.
	WriteModes map[string]WriteMode
}

// WriteMode says when a target writes one field of a record, so that data enriched in the
// target is not overwritten (DESIGN section 4, products).
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

// Result is the outcome of one record, at the same index as the record.
type Result struct {
	// TargetID is the record's id in the target system; empty when Err is set.
	TargetID string
	// Err, when set, is permanent for this record: retrying will not fix it (a constraint
	// violation, a missing column). It is reported and dead-lettered, not retried, and it
	// names the record key, what failed and what to do.
	Err error
}

// Target pushes records into one target system.
//
// Push applies records in order and returns one Result per record, at the same index. A
// returned error means the batch as a whole could not be applied (connection lost, timeout,
// cancelled context): the flow is paused and the batch is pushed again once the target works
// (the connector probes it), so Push must be idempotent: applying a batch twice leaves the
// target as applying it once. Report a record's own problem in its Result, not as an error:
// an error pauses every record of the flow behind it. ctx bounds the call. Push may be called
// from several goroutines at once (one per partition), with batches that never share a key.
//
// Close releases the target's connections; no Push may run during or after it.
type Target interface {
	Push(ctx context.Context, entity string, records []Record) ([]Result, error)
	Close() error
}

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
