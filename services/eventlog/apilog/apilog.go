// Package apilog is the API log the eventlog service keeps: one record per change event per
// flow saying what was done to which record, with what outcome, never the payload. Users search
// it by tenant, remote id, status and time; retention deletes it by age.
package apilog

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// Action is what a flow did with a change event.
type Action string

// The actions a record can report.
const (
	ActionCreated Action = "created"
	ActionUpdated Action = "updated"
	ActionDeleted Action = "deleted"
	ActionSkipped Action = "skipped"
	ActionFailed  Action = "failed"
)

func (a Action) valid() bool {
	switch a {
	case ActionCreated, ActionUpdated, ActionDeleted, ActionSkipped, ActionFailed:
		return true
	}
	return false
}

// Status is whether the outcome was the one wanted.
type Status string

// The statuses a record can report.
const (
	StatusSuccess Status = "success"
	StatusFailure Status = "failure"
)

func (s Status) valid() bool {
	return s == StatusSuccess || s == StatusFailure
}

// Record is the outcome of one change event in one flow.
type Record struct {
	Tenant     string
	EventID    string
	Integrator string
	// Flow is empty for an event that failed before any flow took it (a dead letter from
	// ingest). Tenant, EventID and Flow identify the record.
	Flow           string
	Entity         string
	SourceEndpoint string
	SourceKey      string // the remote id
	TargetID       string
	Action         Action
	Status         Status
	Reason         string // why skipped or failed, e.g. "filtered out", "stale version 3 < 5", the error text
	ErrorCode      string
	Attempts       int
	Duration       time.Duration
	TraceID        string
	OccurredAt     time.Time // when the change happened in the source; zero when unknown
	// LoggedAt is when the outcome was recorded; Insert stamps the current time when it is
	// zero. Times come back in UTC with microsecond precision, what both backends store.
	LoggedAt time.Time
}

// Query selects records of one tenant. Empty fields do not filter.
type Query struct {
	Tenant                              string // required: a query never crosses tenants
	SourceKey, Integrator, Flow, Entity string
	Status                              Status
	Action                              Action
	From, To                            time.Time // on LoggedAt; From inclusive, To exclusive; zero is open
	Limit                               int       // records per page: 0 means DefaultLimit, at most MaxLimit
	Cursor                              string    // Page.NextCursor of the previous page
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is one page of a query's results, newest first.
type Page struct {
	Records []Record
	// NextCursor continues the query after the last record; empty on the last page.
	NextCursor string
}

// QueryError reports a Query the store refuses, naming the field, so that an API can answer
// with an invalid-argument error instead of an internal one.
type QueryError struct {
	Field  string // "tenant", "limit", "cursor", "status", "action", "from", "to" or "top_errors"
	Reason string
}

func (e *QueryError) Error() string {
	return "invalid API log query: " + e.Field + ": " + e.Reason
}

// Store is the API log.
type Store interface {
	// Insert writes a batch in one statement or transaction. A record replaces an earlier one
	// with the same tenant, event id and flow, so a redelivered event never adds a second
	// record, unless the earlier one is a success: the first success of an event stands. It is
	// what changed the target; a delivery of the event after it (at-least-once, after a crash)
	// changes nothing there, and its outcome (the ledger may call it a stale version once a
	// newer change was applied) would misreport what happened. Records are applied in the
	// batch's order by the same rule.
	Insert(ctx context.Context, rs []Record) error
	// Query returns one page of a tenant's records, newest first: by LoggedAt descending,
	// ties broken by event id and then flow, both descending. The cursor is a position in that
	// order, so paging neither repeats nor skips a record while new records arrive.
	Query(ctx context.Context, q Query) (Page, error)
	// Report aggregates a tenant's records per integrator, flow, entity and UTC day: counts
	// by action, failures, latency percentiles and the top error codes. Rows come by day,
	// then integrator, flow and entity.
	Report(ctx context.Context, q ReportQuery) ([]ReportRow, error)
	// Traffic counts a tenant's records per flow and source endpoint, in no fixed order.
	Traffic(ctx context.Context, q TrafficQuery) ([]FlowTraffic, error)
	// DeleteTenant removes every record of tenant and returns how many there were.
	DeleteTenant(ctx context.Context, tenant string) (int64, error)
	// DeleteBefore removes the records of tenant logged before the given time (retention).
	DeleteBefore(ctx context.Context, tenant string, before time.Time) (int64, error)
	// Tenants lists the tenants that have records, sorted: retention covers records of
	// tenants no flow config names (events of unknown tenants) too.
	Tenants(ctx context.Context) ([]string, error)
}

// migrationOwner is the API log's name in schema_migrations.
const migrationOwner = "eventlog.apilog"

//go:embed migrations
var migrationFiles embed.FS

// migrate brings the API log's tables in db up to date.
func migrate(ctx context.Context, db *sqlstore.DB) error {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("reading the API log's embedded migrations: %w", err)
	}
	if err := db.Migrate(ctx, migrationOwner, files); err != nil {
		return fmt.Errorf("opening the API log: %w", err)
	}
	return nil
}

// New migrates the API log's tables in db and returns the store for db's dialect. ctx bounds
// the migration only.
func New(ctx context.Context, db *sqlstore.DB) (Store, error) {
	switch db.Dialect {
	case sqlstore.Postgres:
		return NewPostgres(ctx, db)
	case sqlstore.SQLite:
		return NewSQLite(ctx, db)
	default:
		return nil, fmt.Errorf("opening the API log: unsupported database dialect %s", db.Dialect)
	}
}

// columns is the select list both backends scan, in scanRecord's order.
const columns = `tenant, event_id, flow, integrator, entity, source_endpoint, source_key, target_id,
	action, status, reason, error_code, attempts, duration_ns, trace_id, occurred_at, logged_at`

func now() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// validateRecord refuses a record that could not be found again or says nothing, naming its
// place in the batch.
func validateRecord(i int, r *Record) error {
	switch {
	case r.Tenant == "" || r.EventID == "":
		return fmt.Errorf("record %d (event %q, flow %q): tenant and event id are required", i, r.EventID, r.Flow)
	case !r.Action.valid():
		return fmt.Errorf("record %d (event %s, flow %q): unknown action %q; use created, updated, deleted, skipped or failed", i, r.EventID, r.Flow, r.Action)
	case !r.Status.valid():
		return fmt.Errorf("record %d (event %s, flow %q): unknown status %q; use success or failure", i, r.EventID, r.Flow, r.Status)
	case r.Attempts < 0 || r.Duration < 0:
		return fmt.Errorf("record %d (event %s, flow %q): attempts and duration cannot be negative", i, r.EventID, r.Flow)
	}
	return nil
}

// position is a place in the query order: the last record of a page.
type position struct {
	loggedAt time.Time
	eventID  string
	flow     string
}

// cursorVersion leads every cursor so that a later format can tell old cursors apart.
const cursorVersion = 1

// encodeCursor packs a position as version, logged-at microseconds, the event id's length, the
// event id and the flow, in URL-safe base64: opaque to callers, and safe in a query string.
func encodeCursor(p position) string {
	buf := make([]byte, 0, 2*binary.MaxVarintLen64+1+len(p.eventID)+len(p.flow))
	buf = append(buf, cursorVersion)
	buf = binary.AppendVarint(buf, p.loggedAt.UnixMicro())
	buf = binary.AppendUvarint(buf, uint64(len(p.eventID)))
	buf = append(buf, p.eventID...)
	buf = append(buf, p.flow...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

func decodeCursor(s string) (position, error) {
	bad := &QueryError{Field: "cursor", Reason: "not a cursor this API returned; start again without a cursor"}
	buf, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(buf) == 0 || buf[0] != cursorVersion {
		return position{}, bad
	}
	buf = buf[1:]
	micros, n := binary.Varint(buf)
	if n <= 0 {
		return position{}, bad
	}
	buf = buf[n:]
	idLen, n := binary.Uvarint(buf)
	if n <= 0 || idLen > uint64(len(buf)-n) {
		return position{}, bad
	}
	buf = buf[n:]
	return position{
		loggedAt: time.UnixMicro(micros).UTC(),
		eventID:  string(buf[:idLen]),
		flow:     string(buf[idLen:]),
	}, nil
}

// queryPlan is a validated Query turned into SQL for one dialect.
type queryPlan struct {
	sql   string
	args  []any
	limit int
}

// dialect says how the backends differ in the SQL that planQuery writes.
type dialect struct {
	placeholder func(n int) string // the n-th bound variable, from 1
	timeArg     func(time.Time) any
}

// planQuery validates q and writes the page's SELECT. It fetches one record more than the
// limit, to learn whether another page follows.
func planQuery(q Query, d dialect) (queryPlan, error) {
	switch {
	case q.Tenant == "":
		return queryPlan{}, &QueryError{Field: "tenant", Reason: "required; a query never spans tenants"}
	case q.Limit < 0 || q.Limit > MaxLimit:
		return queryPlan{}, &QueryError{Field: "limit", Reason: fmt.Sprintf("%d is out of range; use 1 to %d, or 0 for %d", q.Limit, MaxLimit, DefaultLimit)}
	case q.Status != "" && !q.Status.valid():
		return queryPlan{}, &QueryError{Field: "status", Reason: fmt.Sprintf("unknown status %q; use success or failure", q.Status)}
	case q.Action != "" && !q.Action.valid():
		return queryPlan{}, &QueryError{Field: "action", Reason: fmt.Sprintf("unknown action %q; use created, updated, deleted, skipped or failed", q.Action)}
	case !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From):
		return queryPlan{}, &QueryError{Field: "to", Reason: fmt.Sprintf("%s is not after from %s", q.To.Format(time.RFC3339Nano), q.From.Format(time.RFC3339Nano))}
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	var b strings.Builder
	args := make([]any, 0, 12)
	arg := func(v any) string {
		args = append(args, v)
		return d.placeholder(len(args))
	}
	b.WriteString("SELECT " + columns + " FROM api_log_records WHERE tenant = " + arg(q.Tenant))
	for _, f := range []struct{ column, value string }{
		{"source_key", q.SourceKey},
		{"integrator", q.Integrator},
		{"flow", q.Flow},
		{"entity", q.Entity},
		{"action", string(q.Action)},
	} {
		if f.value != "" {
			b.WriteString(" AND " + f.column + " = " + arg(f.value))
		}
	}
	// The status is written as a literal (it is one of two checked values)
	// so that the planner can use the partial index of failures.
	if q.Status != "" {
		b.WriteString(" AND status = '" + string(q.Status) + "'")
	}
	if !q.From.IsZero() {
		b.WriteString(" AND logged_at >= " + arg(d.timeArg(q.From)))
	}
	if !q.To.IsZero() {
		b.WriteString(" AND logged_at < " + arg(d.timeArg(q.To)))
	}
	if q.Cursor != "" {
		p, err := decodeCursor(q.Cursor)
		if err != nil {
			return queryPlan{}, err
		}
		b.WriteString(" AND (logged_at, event_id, flow) < (" + arg(d.timeArg(p.loggedAt)) + ", " + arg(p.eventID) + ", " + arg(p.flow) + ")")
	}
	b.WriteString(" ORDER BY logged_at DESC, event_id DESC, flow DESC LIMIT " + strconv.Itoa(limit+1))
	return queryPlan{sql: b.String(), args: args, limit: limit}, nil
}

// page trims the extra record planQuery asked for and turns it into the next cursor.
func (p queryPlan) page(records []Record) Page {
	if len(records) <= p.limit {
		return Page{Records: records}
	}
	records = records[:p.limit]
	last := &records[len(records)-1]
	return Page{
		Records:    records,
		NextCursor: encodeCursor(position{loggedAt: last.LoggedAt, eventID: last.EventID, flow: last.Flow}),
	}
}
