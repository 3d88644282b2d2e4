// Package ledger keeps, per tenant, flow and source key, what the dedup service last did to a
// record in the target: the target id, the content hash, the source version and whether the
// target confirmed it. It answers "does this record already exist in the target?" without
// asking the target, which is what makes retries and replays safe.
package ledger

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// Key identifies one source record within one flow of one tenant.
type Key struct {
	Tenant, Flow, SourceKey string
}

// String formats the key for error messages.
func (k Key) String() string {
	return k.Tenant + "/" + k.Flow + "/" + k.SourceKey
}

// State says how far the target has got with an entry.
type State string

// The states of an entry.
const (
	// StatePending means the change was decided and pushed but the target has not confirmed it.
	StatePending State = "pending"
	// StateApplied means the target confirmed the change.
	StateApplied State = "applied"
	// StateFailed means the target refused the change.
	StateFailed State = "failed"
)

func (s State) valid() bool {
	return s == StatePending || s == StateApplied || s == StateFailed
}

// Entry is what the ledger knows about one source record.
type Entry struct {
	Key
	TargetID      string // empty until the target confirms
	ContentHash   string // hex sha256 of the mapped record
	SourceVersion int64
	State         State
	LastEventID   string // event that last changed the entry, so that its redelivery is recognised
	LastAction    string // "created", "updated" or "deleted"
	// UpdatedAt is when the entry last changed, in UTC with microsecond precision (what both
	// backends store). Put stamps the current time when it is zero.
	UpdatedAt time.Time
}

// Confirmation records the target's answer to the change made by one event.
type Confirmation struct {
	Key
	EventID  string // the entry's LastEventID; a confirmation of an older event changes nothing
	State    State
	TargetID string // set on the entry when not empty
}

// Version raises one entry's source version; see Store.Advance.
type Version struct {
	Key
	SourceVersion int64
}

// Store is the ledger. Every method takes a whole batch and costs one statement or one
// transaction, however large the batch.
type Store interface {
	// Lookup returns the entries that exist for keys, in one query. Keys may span tenants and
	// flows and may repeat; keys without an entry are absent from the map.
	Lookup(ctx context.Context, keys []Key) (map[Key]Entry, error)
	// Put creates or replaces entries in one transaction. When a key appears twice in the
	// batch, the last one wins.
	Put(ctx context.Context, entries []Entry) error
	// Insert writes entries for keys that had none when they were looked up: the
	// common case of records new to the target, which a store may write faster than
	// Put can. Its result is Put's whatever the keys, so an entry that exists after
	// all (a redelivered batch) is replaced.
	Insert(ctx context.Context, entries []Entry) error
	// Confirm sets the state, and the target id when not empty, of each entry whose
	// LastEventID is the confirmation's EventID, so that a late confirmation of a superseded
	// event cannot overwrite a newer decision. When a key appears twice in the batch, the
	// last confirmation wins, as in Put. It returns how many entries changed: a redelivered
	// confirmation changes nothing and is not counted.
	Confirm(ctx context.Context, cs []Confirmation) (int, error)
	// Advance raises the source version of each key's entry to the given version when it is
	// lower, and changes nothing else, so that a confirmation written meanwhile is kept: a newer
	// version that changes nothing in the target (skipped) still makes every older one stale.
	// A key without an entry gets a deleted one (state applied, no event): the delete of a
	// record the target never had is remembered, so an older change arriving late is stale.
	// When a key appears twice, the higher version wins.
	Advance(ctx context.Context, vs []Version) error
	// DeleteTenant removes every entry of tenant and returns how many there were.
	DeleteTenant(ctx context.Context, tenant string) (int64, error)
}

// migrationOwner is the ledger's name in schema_migrations.
const migrationOwner = "dedup.ledger"

//go:embed migrations
var migrationFiles embed.FS

// migrate brings the ledger's tables in db up to date.
func migrate(ctx context.Context, db *sqlstore.DB) error {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("reading the ledger's embedded migrations: %w", err)
	}
	if err := db.Migrate(ctx, migrationOwner, files); err != nil {
		return fmt.Errorf("opening the ledger: %w", err)
	}
	return nil
}

// New migrates the ledger's tables in db and returns the store for db's dialect. ctx bounds
// the migration only.
func New(ctx context.Context, db *sqlstore.DB) (Store, error) {
	switch db.Dialect {
	case sqlstore.Postgres:
		return NewPostgres(ctx, db)
	case sqlstore.SQLite:
		return NewSQLite(ctx, db)
	default:
		return nil, fmt.Errorf("opening the ledger: unsupported database dialect %s", db.Dialect)
	}
}

// now returns the current time as the backends store it.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// validateEntry refuses an entry that would make the ledger lie, naming its place in the batch.
func validateEntry(i int, e *Entry) error {
	switch {
	case e.Tenant == "" || e.Flow == "" || e.SourceKey == "":
		return fmt.Errorf("entry %d (%s): tenant, flow and source key are all required", i, e.Key)
	case !e.State.valid():
		return fmt.Errorf("entry %d (%s): unknown state %q; use pending, applied or failed", i, e.Key, e.State)
	case e.LastAction != "" && e.LastAction != "created" && e.LastAction != "updated" && e.LastAction != "deleted":
		return fmt.Errorf("entry %d (%s): unknown last action %q; use created, updated or deleted", i, e.Key, e.LastAction)
	}
	return nil
}

// validateVersion refuses a version without a whole key, naming its place in the batch.
func validateVersion(i int, v *Version) error {
	if v.Tenant == "" || v.Flow == "" || v.SourceKey == "" {
		return fmt.Errorf("version %d (%s): tenant, flow and source key are all required", i, v.Key)
	}
	return nil
}

// validateConfirmation refuses a confirmation that could match the wrong entry.
func validateConfirmation(i int, c *Confirmation) error {
	switch {
	case c.Tenant == "" || c.Flow == "" || c.SourceKey == "":
		return fmt.Errorf("confirmation %d (%s): tenant, flow and source key are all required", i, c.Key)
	case c.EventID == "":
		return fmt.Errorf("confirmation %d (%s): the event id is required, it decides whether the confirmation is current", i, c.Key)
	case !c.State.valid():
		return fmt.Errorf("confirmation %d (%s): unknown state %q; use pending, applied or failed", i, c.Key, c.State)
	}
	return nil
}
