package connector

import (
	"context"
	"encoding/json"
	"time"
)

// Change is one change of one record, as a source read it.
type Change struct {
	// Key is the record's key in the source system (its id, a code).
	Key string
	// Version orders the changes of one key: an updated-at (Unix microseconds) or a
	// sequence. A later change of a key has a greater version; the event id of a change
	// derives from its key and version, so a change read twice is stored once.
	Version int64
	// Delete says the record was deleted (a tombstone); Payload may then be empty.
	Delete bool
	// Payload is the record as the source holds it, a JSON object.
	Payload json.RawMessage
	// OccurredAt is when the change happened, as the source says; zero: unknown.
	OccurredAt time.Time
}

// Page is what one Read returns: changes in the order the source made them, and the cursor
// that reads what follows them.
type Page struct {
	Changes []Change
	// Cursor is where the next Read goes on from. The platform stores it, durably, only
	// once every change of the page is stored on the bus; a Read from it never returns a
	// change of this page or an earlier one again, and never skips one that follows.
	Cursor string
	// More says that more changes follow now: the platform reads on from Cursor at once
	// instead of waiting for the next poll.
	More bool
}

// Source is one source system that is polled, opened with an endpoint's settings.
//
// The platform calls Read on a schedule, from one goroutine of one replica at a time, and
// publishes each page's changes before it moves the cursor. Read is therefore free to read
// a change again when it cannot tell (the event id makes the second copy harmless), but it
// must never skip one: a source system whose changes commit out of order (an updated-at set
// before a long transaction commits) needs the source to read back far enough.
type Source interface {
	// Read returns the changes of entity made since cursor, at most one page of them. The
	// empty cursor reads from the beginning. A cursor the source cannot parse, or one of
	// another entity, is an error that names it. A returned error fails the poll: the
	// cursor stays where it was, and the next poll reads from it again.
	Read(ctx context.Context, entity, cursor string) (Page, error)
	// Check checks that the source answers and accepts its credentials, for `syncline
	// endpoint test`; it reads nothing it would have to keep.
	Check(ctx context.Context) error
	// Close releases the source's connections; no other call may run during or after it.
	Close() error
}

// SourceFactory opens a source from settings that ValidateSettings has already checked and
// normalised, and whose destinations env's egress policy has allowed. Budget in env is the
// endpoint's request budget; every request a source sends runs within it, as a target's
// do. ctx bounds the opening only.
type SourceFactory func(ctx context.Context, settings map[string]any, env Env) (Source, error)

// SourceEntitiesFunc lists the entities a source endpoint's checked settings can be polled
// for. A problem with the settings is a *SettingsError.
type SourceEntitiesFunc func(settings map[string]any) ([]string, error)
