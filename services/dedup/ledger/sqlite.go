package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// SQLite is the ledger on embedded SQLite. A write batch is one immediate transaction, so the
// commit (the costly part) is paid once per batch; inside it, multi-row statements keep the
// number of calls into SQLite low.
type SQLite struct {
	db *sqlstore.DB
	// putChunk is the upsert for a full chunk of rows.
	putChunk string
}

var _ Store = (*SQLite)(nil)

// lookupChunkKeys bounds the keys per lookup query: three bound variables each keeps the
// statement far below SQLite's limit of 32766 variables while one query still covers a batch
// of the usual size (500).
const lookupChunkKeys = 1000

// NewSQLite migrates the ledger's tables in db, which must be a SQLite database. ctx bounds the
// migration only.
func NewSQLite(ctx context.Context, db *sqlstore.DB) (*SQLite, error) {
	if db.Dialect != sqlstore.SQLite {
		return nil, fmt.Errorf("opening the SQLite ledger: the database is %s", db.Dialect)
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	return &SQLite{db: db, putChunk: sqlitePutQuery(putChunkRows)}, nil
}

// sqliteLookupQuery returns the lookup for n keys. The row-value IN list lets SQLite probe the
// primary key once per key.
func sqliteLookupQuery(n int) string {
	var b strings.Builder
	b.Grow(200 + n*10)
	b.WriteString(`SELECT tenant, flow, source_key, target_id, content_hash, source_version,
       state, last_event_id, last_action, updated_at
FROM ledger_entries WHERE (tenant, flow, source_key) IN (VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?)")
	}
	b.WriteByte(')')
	return b.String()
}

// Lookup implements Store. Reads go to the read-only pool, so they do not wait for a batch
// being written.
func (s *SQLite) Lookup(ctx context.Context, keys []Key) (map[Key]Entry, error) {
	found := make(map[Key]Entry, len(keys))
	args := make([]any, 0, 3*min(len(keys), lookupChunkKeys))
	for start := 0; start < len(keys); start += lookupChunkKeys {
		chunk := keys[start:min(start+lookupChunkKeys, len(keys))]
		args = args[:0]
		for _, k := range chunk {
			args = append(args, k.Tenant, k.Flow, k.SourceKey)
		}
		if err := s.lookup(ctx, sqliteLookupQuery(len(chunk)), args, found); err != nil {
			return nil, fmt.Errorf("looking up %d ledger entries: %w", len(keys), err)
		}
	}
	return found, nil
}

func (s *SQLite) lookup(ctx context.Context, query string, args []any, found map[Key]Entry) error {
	rows, err := s.db.SQLRead.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var e Entry
	var state string
	var updated int64
	for rows.Next() {
		if err := rows.Scan(&e.Tenant, &e.Flow, &e.SourceKey, &e.TargetID, &e.ContentHash, &e.SourceVersion,
			&state, &e.LastEventID, &e.LastAction, &updated); err != nil {
			return fmt.Errorf("reading a row: %w", err)
		}
		e.State = State(state)
		e.UpdatedAt = time.UnixMicro(updated).UTC()
		found[e.Key] = e
	}
	return rows.Err()
}

// putChunkRows is how many rows one INSERT carries. A multi-row statement enters SQLite once
// for many rows, which is where a per-row statement spends much of its time; ten variables a
// row keeps the statement far below SQLite's variable limit.
const putChunkRows = 50

// sqlitePutQuery returns the upsert for n rows.
func sqlitePutQuery(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO ledger_entries (tenant, flow, source_key, target_id, content_hash, source_version,
                            state, last_event_id, last_action, updated_at)
VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?)")
	}
	b.WriteString(`
ON CONFLICT (tenant, flow, source_key) DO UPDATE SET
	target_id      = excluded.target_id,
	content_hash   = excluded.content_hash,
	source_version = excluded.source_version,
	state          = excluded.state,
	last_event_id  = excluded.last_event_id,
	last_action    = excluded.last_action,
	updated_at     = excluded.updated_at`)
	return b.String()
}

// Put implements Store. Rows are written in batch order, so the last of two rows with the same
// key is the one kept.
// Insert implements Store; on SQLite it is Put, which is as fast.
func (s *SQLite) Insert(ctx context.Context, entries []Entry) error {
	return s.Put(ctx, entries)
}

// Put implements Store.
func (s *SQLite) Put(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		if err := validateEntry(i, &entries[i]); err != nil {
			return fmt.Errorf("putting ledger entries: %w", err)
		}
	}
	stamp := now().UnixMicro()
	args := make([]any, 0, 10*min(len(entries), putChunkRows))
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		var full *sql.Stmt
		if len(entries) >= putChunkRows {
			stmt, err := tx.PrepareContext(ctx, s.putChunk)
			if err != nil {
				return err
			}
			defer stmt.Close()
			full = stmt
		}
		for start := 0; start < len(entries); start += putChunkRows {
			chunk := entries[start:min(start+putChunkRows, len(entries))]
			args = args[:0]
			for i := range chunk {
				e := &chunk[i]
				updated := stamp
				if !e.UpdatedAt.IsZero() {
					updated = e.UpdatedAt.UnixMicro()
				}
				args = append(args, e.Tenant, e.Flow, e.SourceKey, e.TargetID, e.ContentHash,
					e.SourceVersion, string(e.State), e.LastEventID, e.LastAction, updated)
			}
			var err error
			if len(chunk) == putChunkRows {
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, sqlitePutQuery(len(chunk)), args...)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("putting %d ledger entries: %w", len(entries), err)
	}
	return nil
}

const sqliteConfirm = `
UPDATE ledger_entries SET
	state      = ?4,
	target_id  = CASE WHEN ?5 = '' THEN target_id ELSE ?5 END,
	updated_at = ?7
WHERE tenant = ?1 AND flow = ?2 AND source_key = ?3
  AND last_event_id = ?6
  AND (state <> ?4 OR (?5 <> '' AND target_id <> ?5))`

// Confirm implements Store.
func (s *SQLite) Confirm(ctx context.Context, cs []Confirmation) (int, error) {
	if len(cs) == 0 {
		return 0, nil
	}
	for i := range cs {
		if err := validateConfirmation(i, &cs[i]); err != nil {
			return 0, fmt.Errorf("confirming ledger entries: %w", err)
		}
	}
	// Only the last confirmation of a key counts, as on PostgreSQL: applying them in order
	// would let an earlier one that matches the event id change the entry when the last one
	// does not.
	last := make(map[Key]int, len(cs))
	for i := range cs {
		last[cs[i].Key] = i
	}
	stamp := now().UnixMicro()
	changed := 0
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, sqliteConfirm)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range cs {
			c := &cs[i]
			if last[c.Key] != i {
				continue
			}
			res, err := stmt.ExecContext(ctx, c.Tenant, c.Flow, c.SourceKey, string(c.State), c.TargetID, c.EventID, stamp)
			if err != nil {
				return fmt.Errorf("confirming %s: %w", c.Key, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("confirming %s: %w", c.Key, err)
			}
			changed += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("confirming %d ledger entries: %w", len(cs), err)
	}
	return changed, nil
}

// sqliteAdvance raises one key's version; a new row is a deleted record (see Store.Advance).
const sqliteAdvance = `
INSERT INTO ledger_entries (tenant, flow, source_key, source_version, state, last_action, updated_at)
VALUES (?1, ?2, ?3, ?4, 'applied', 'deleted', ?5)
ON CONFLICT (tenant, flow, source_key) DO UPDATE SET
	source_version = excluded.source_version,
	updated_at     = excluded.updated_at
WHERE source_version < excluded.source_version`

// Advance implements Store. Rows go in batch order, and the condition keeps the highest
// version of a key that appears twice.
func (s *SQLite) Advance(ctx context.Context, vs []Version) error {
	if len(vs) == 0 {
		return nil
	}
	for i := range vs {
		if err := validateVersion(i, &vs[i]); err != nil {
			return fmt.Errorf("advancing ledger versions: %w", err)
		}
	}
	stamp := now().UnixMicro()
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, sqliteAdvance)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range vs {
			v := &vs[i]
			if _, err := stmt.ExecContext(ctx, v.Tenant, v.Flow, v.SourceKey, v.SourceVersion, stamp); err != nil {
				return fmt.Errorf("advancing %s: %w", v.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("advancing the versions of %d ledger entries: %w", len(vs), err)
	}
	return nil
}

// DeleteTenant implements Store.
func (s *SQLite) DeleteTenant(ctx context.Context, tenant string) (int64, error) {
	if tenant == "" {
		return 0, errors.New("deleting a tenant's ledger entries: the tenant is empty")
	}
	var n int64
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM ledger_entries WHERE tenant = ?", tenant)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("deleting the ledger entries of tenant %s: %w", tenant, err)
	}
	return n, nil
}
