// Package deadletter is the eventlog's store of dead letters (DESIGN section 1): change
// events that failed for a reason retrying will not fix, kept so that they can be replayed
// once the cause is fixed. What the bus knows of a letter (tenant, flow, stage, code, reason,
// remote id...) is kept in the clear for listing and filtering; the event itself only sealed
// under the master key, bound to its tenant. Letters expire with the tenant's retention.
//
// One implementation serves both backends: the statements are written once with ? and
// rewritten to $n for PostgreSQL, and times are stored as each backend stores them.
package deadletter

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// State is where a letter is in its life.
type State string

const (
	StateOpen      State = "open"      // waiting for its cause to be fixed
	StateReplayed  State = "replayed"  // sent again; its outcome is in the API log
	StateDiscarded State = "discarded" // given up; the sealed event is gone
)

// Letter is one dead letter.
type Letter struct {
	Tenant string
	// ID identifies the letter within its tenant: the dead-letter message's id, so that a
	// redelivered dead letter is stored once.
	ID         string
	EventID    string
	Integrator string
	Flow       string
	Entity     string
	SourceKey  string // the remote id
	Stage      string // where it failed: mapper, dedup, connector
	Code       string
	Reason     string
	Attempts   int
	DeadAt     time.Time
	// Sealed is the failed message (subject, headers, bytes) sealed with the master key;
	// empty once discarded. List leaves it out; Get returns it.
	Sealed    string
	State     State
	Replays   int
	UpdatedAt time.Time
}

// Filter selects a tenant's letters. Empty fields do not filter.
type Filter struct {
	Tenant                               string // required
	Flow, Stage, Code, SourceKey, Entity string
	State                                State
	From, To                             time.Time // on DeadAt; From inclusive, To exclusive
	Limit                                int       // 0 means DefaultLimit; at most MaxLimit
	Cursor                               string    // NextCursor of the previous page
	// WithSealed returns each letter's sealed event too, for a replay.
	WithSealed bool
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is one page of a listing, newest first.
type Page struct {
	Letters    []Letter
	NextCursor string // empty on the last page
}

// ErrNotFound is wrapped by the errors for a letter that does not exist.
var ErrNotFound = errors.New("dead letter not found")

// ErrBadCursor is wrapped by List's error for a page token it did not give.
var ErrBadCursor = errors.New("not a page token of this list")

// Store keeps dead letters.
type Store struct {
	db *sqlstore.DB
}

//go:embed migrations
var migrationFiles embed.FS

// New migrates the dead-letter table in db and returns the store. ctx bounds the migration.
func New(ctx context.Context, db *sqlstore.DB) (*Store, error) {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("reading the dead-letter store's migrations: %w", err)
	}
	if err := db.Migrate(ctx, "eventlog.deadletter", files); err != nil {
		return nil, fmt.Errorf("opening the dead-letter store: %w", err)
	}
	return &Store{db: db}, nil
}

const columns = `tenant, id, event_id, integrator, flow, entity, source_key, stage, code, reason, attempts, dead_at, sealed, state, replays, updated_at`

// Insert stores letters; a letter already stored (a redelivered dead letter) is left as it is,
// so a replayed or edited letter is not reset.
func (s *Store) Insert(ctx context.Context, letters []Letter) error {
	if len(letters) == 0 {
		return nil
	}
	now := now()
	return s.write(ctx, func(w writer) error {
		for i, l := range letters {
			if l.Tenant == "" || l.ID == "" {
				return fmt.Errorf("dead letter %d of the batch has no tenant or id", i)
			}
			if l.State == "" {
				l.State = StateOpen
			}
			_, err := w.exec(`INSERT INTO dead_letters (`+columns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
				ON CONFLICT (tenant, id) DO NOTHING`,
				l.Tenant, l.ID, l.EventID, l.Integrator, l.Flow, l.Entity, l.SourceKey, l.Stage, l.Code, l.Reason,
				l.Attempts, s.t(l.DeadAt), l.Sealed, string(l.State), l.Replays, s.t(now))
			if err != nil {
				return fmt.Errorf("storing dead letter %s of tenant %s: %w", l.ID, l.Tenant, err)
			}
		}
		return nil
	})
}

// List returns one page of a tenant's letters, newest first, without their sealed events
// unless the filter asks for them.
func (s *Store) List(ctx context.Context, f Filter) (Page, error) {
	if f.Tenant == "" {
		return Page{}, errors.New("listing dead letters: the tenant is required")
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	where := []string{"tenant = ?"}
	args := []any{f.Tenant}
	for _, c := range []struct{ col, v string }{{"flow", f.Flow}, {"stage", f.Stage}, {"code", f.Code}, {"source_key", f.SourceKey}, {"entity", f.Entity}, {"state", string(f.State)}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if !f.From.IsZero() {
		where, args = append(where, "dead_at >= ?"), append(args, s.t(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "dead_at < ?"), append(args, s.t(f.To))
	}
	if f.Cursor != "" {
		at, id, err := parseCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		where = append(where, "(dead_at < ? OR (dead_at = ? AND id < ?))")
		args = append(args, s.t(at), s.t(at), id)
	}
	cols := columns
	if !f.WithSealed {
		cols = strings.Replace(columns, "sealed", "''", 1)
	}
	q := `SELECT ` + cols + ` FROM dead_letters WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY dead_at DESC, id DESC LIMIT ` + strconv.Itoa(limit+1)
	letters, err := s.query(ctx, q, args...)
	if err != nil {
		return Page{}, fmt.Errorf("listing the dead letters of tenant %s: %w", f.Tenant, err)
	}
	page := Page{Letters: letters}
	if len(letters) > limit {
		page.Letters = letters[:limit]
		last := page.Letters[limit-1]
		page.NextCursor = strconv.FormatInt(last.DeadAt.UnixMicro(), 10) + ":" + last.ID
	}
	return page, nil
}

func parseCursor(c string) (time.Time, string, error) {
	at, id, ok := strings.Cut(c, ":")
	micros, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", fmt.Errorf("page token %q: %w; start again without it", c, ErrBadCursor)
	}
	return time.UnixMicro(micros).UTC(), id, nil
}

// Get returns one letter with its sealed event.
func (s *Store) Get(ctx context.Context, tenant, id string) (Letter, error) {
	letters, err := s.query(ctx, `SELECT `+columns+` FROM dead_letters WHERE tenant = ? AND id = ?`, tenant, id)
	if err != nil {
		return Letter{}, fmt.Errorf("reading dead letter %s of tenant %s: %w", id, tenant, err)
	}
	if len(letters) == 0 {
		return Letter{}, fmt.Errorf("dead letter %s of tenant %s: %w", id, tenant, ErrNotFound)
	}
	return letters[0], nil
}

// SetSealed replaces a letter's sealed event (an edited payload); the letter is open again.
func (s *Store) SetSealed(ctx context.Context, tenant, id, sealed string) error {
	return s.update(ctx, tenant, []string{id}, `sealed = ?, state = 'open'`, sealed)
}

// MarkReplayed records that letters were sent again.
func (s *Store) MarkReplayed(ctx context.Context, tenant string, ids ...string) error {
	return s.update(ctx, tenant, ids, `state = 'replayed', replays = replays + 1`)
}

// Discard gives letters up: their sealed events are dropped.
func (s *Store) Discard(ctx context.Context, tenant string, ids ...string) error {
	return s.update(ctx, tenant, ids, `state = 'discarded', sealed = ''`)
}

// update changes every letter of ids in one statement, or none: when one of them does not
// exist, the error wraps ErrNotFound and nothing changes.
func (s *Store) update(ctx context.Context, tenant string, ids []string, set string, args ...any) error {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 0 {
		return nil
	}
	args = append(args, s.t(now()), tenant)
	for _, id := range ids {
		args = append(args, id)
	}
	in := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
	err := s.write(ctx, func(w writer) error {
		n, err := w.exec(`UPDATE dead_letters SET `+set+`, updated_at = ? WHERE tenant = ? AND id IN (`+in+`)`, args...)
		if err == nil && n != int64(len(ids)) {
			err = fmt.Errorf("%d of the %d dead letters named: %w", int64(len(ids))-n, len(ids), ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("updating dead letters of tenant %s: %w", tenant, err)
	}
	return nil
}

// DeleteBefore removes a tenant's letters that died before the given time (retention).
func (s *Store) DeleteBefore(ctx context.Context, tenant string, before time.Time) (int64, error) {
	return s.delete(ctx, `DELETE FROM dead_letters WHERE tenant = ? AND dead_at < ?`, tenant, s.t(before))
}

// DeleteTenant removes every letter of a tenant.
func (s *Store) DeleteTenant(ctx context.Context, tenant string) (int64, error) {
	return s.delete(ctx, `DELETE FROM dead_letters WHERE tenant = ?`, tenant)
}

func (s *Store) delete(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := s.write(ctx, func(w writer) error {
		var err error
		n, err = w.exec(q, args...)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("deleting dead letters: %w", err)
	}
	return n, nil
}

// The dialects.

// writer runs statements inside one transaction.
type writer struct {
	exec func(q string, args ...any) (int64, error)
}

func (s *Store) write(ctx context.Context, fn func(writer) error) error {
	if s.db.Dialect == sqlstore.Postgres {
		return pgx.BeginFunc(ctx, s.db.PG, func(tx pgx.Tx) error {
			return fn(writer{exec: func(q string, args ...any) (int64, error) {
				tag, err := tx.Exec(ctx, rebind(q), args...)
				return tag.RowsAffected(), err
			}})
		})
	}
	return s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		return fn(writer{exec: func(q string, args ...any) (int64, error) {
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}})
	})
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]Letter, error) {
	var out []Letter
	scan := func(sc interface{ Scan(...any) error }) error {
		var l Letter
		var state string
		var deadAt, updatedAt any = &l.DeadAt, &l.UpdatedAt
		var deadMicros, updatedMicros int64
		if s.db.Dialect == sqlstore.SQLite {
			deadAt, updatedAt = &deadMicros, &updatedMicros
		}
		if err := sc.Scan(&l.Tenant, &l.ID, &l.EventID, &l.Integrator, &l.Flow, &l.Entity, &l.SourceKey, &l.Stage, &l.Code,
			&l.Reason, &l.Attempts, deadAt, &l.Sealed, &state, &l.Replays, updatedAt); err != nil {
			return err
		}
		if s.db.Dialect == sqlstore.SQLite {
			l.DeadAt, l.UpdatedAt = time.UnixMicro(deadMicros), time.UnixMicro(updatedMicros)
		}
		l.DeadAt, l.UpdatedAt, l.State = l.DeadAt.UTC(), l.UpdatedAt.UTC(), State(state)
		out = append(out, l)
		return nil
	}
	var rows interface {
		Next() bool
		Scan(...any) error
		Err() error
	}
	if s.db.Dialect == sqlstore.Postgres {
		pgRows, err := s.db.PG.Query(ctx, rebind(q), args...)
		if err != nil {
			return nil, err
		}
		defer pgRows.Close()
		rows = pgRows
	} else {
		sqlRows, err := s.db.SQLRead.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer sqlRows.Close()
		rows = sqlRows
	}
	for rows.Next() {
		if err := scan(rows); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// t is a time as the backend stores it.
func (s *Store) t(v time.Time) any {
	v = v.UTC().Truncate(time.Microsecond)
	if s.db.Dialect == sqlstore.SQLite {
		return v.UnixMicro()
	}
	return v
}

// rebind turns ? placeholders into PostgreSQL's $n. The statements here hold no ? in literals.
func rebind(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
