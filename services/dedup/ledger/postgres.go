package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// Postgres is the ledger on PostgreSQL. Each batch travels as one array per column and is
// unnested by the server, so a batch of any size is one round trip.
type Postgres struct {
	pool *pgxpool.Pool
}

var _ Store = (*Postgres)(nil)

// NewPostgres migrates the ledger's tables in db, which must be a PostgreSQL database. ctx
// bounds the migration only.
func NewPostgres(ctx context.Context, db *sqlstore.DB) (*Postgres, error) {
	if db.Dialect != sqlstore.Postgres {
		return nil, fmt.Errorf("opening the PostgreSQL ledger: the database is %s", db.Dialect)
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	return &Postgres{pool: db.PG}, nil
}

// pgLookup probes the primary key once per requested key (see migration 0002); a repeated key
// only yields the same row twice, which the map absorbs.
const pgLookup = `
SELECT tenant, flow, source_key, target_id, content_hash, source_version,
       state, last_event_id, last_action, updated_at
FROM ledger_lookup($1::text[], $2::text[], $3::text[])`

// Lookup implements Store.
func (p *Postgres) Lookup(ctx context.Context, keys []Key) (map[Key]Entry, error) {
	found := make(map[Key]Entry, len(keys))
	if len(keys) == 0 {
		return found, nil
	}
	tenants := make(sqlstore.Texts, len(keys))
	flows := make(sqlstore.Texts, len(keys))
	sourceKeys := make(sqlstore.Texts, len(keys))
	for i, k := range keys {
		tenants[i], flows[i], sourceKeys[i] = k.Tenant, k.Flow, k.SourceKey
	}
	rows, err := p.pool.Query(ctx, pgLookup, tenants, flows, sourceKeys)
	if err != nil {
		return nil, fmt.Errorf("looking up %d ledger entries: %w", len(keys), err)
	}
	defer rows.Close()
	var e Entry
	var state string
	for rows.Next() {
		if err := rows.Scan(&e.Tenant, &e.Flow, &e.SourceKey, &e.TargetID, &e.ContentHash, &e.SourceVersion,
			&state, &e.LastEventID, &e.LastAction, &e.UpdatedAt); err != nil {
			return nil, fmt.Errorf("looking up ledger entries: reading a row: %w", err)
		}
		e.State = State(state)
		e.UpdatedAt = e.UpdatedAt.UTC()
		found[e.Key] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up %d ledger entries: %w", len(keys), err)
	}
	return found, nil
}

// DISTINCT ON keeps the last row of each key (highest ordinality), because one INSERT … ON
// CONFLICT may not touch a row twice.
const pgPut = `
INSERT INTO ledger_entries (tenant, flow, source_key, target_id, content_hash, source_version,
                            state, last_event_id, last_action, updated_at)
SELECT DISTINCT ON (tenant, flow, source_key)
       tenant, flow, source_key, target_id, content_hash, source_version,
       state, last_event_id, last_action, updated_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
            $7::text[], $8::text[], $9::text[], $10::timestamptz[])
     WITH ORDINALITY AS e(tenant, flow, source_key, target_id, content_hash, source_version,
                          state, last_event_id, last_action, updated_at, ord)
ORDER BY tenant, flow, source_key, ord DESC
ON CONFLICT (tenant, flow, source_key) DO UPDATE SET
	target_id      = EXCLUDED.target_id,
	content_hash   = EXCLUDED.content_hash,
	source_version = EXCLUDED.source_version,
	state          = EXCLUDED.state,
	last_event_id  = EXCLUDED.last_event_id,
	last_action    = EXCLUDED.last_action,
	updated_at     = EXCLUDED.updated_at`

// Insert implements Store with COPY, PostgreSQL's fastest way in. A batch that
// meets an existing key (or holds one key twice) makes COPY fail as a whole and
// is then written by Put.
func (p *Postgres) Insert(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	stamp := now()
	for i := range entries {
		if err := validateEntry(i, &entries[i]); err != nil {
			return fmt.Errorf("inserting ledger entries: %w", err)
		}
	}
	// The upsert wraps its own errors; CopyIn names the table in its own.
	// One row slice for all (sqlstore.CopyRow); the strings go as
	// sqlstore.Text, without an allocation each.
	row := sqlstore.CopyRow(len(ledgerColumns))
	return sqlstore.CopyIn(ctx, p.pool, "ledger_entries", ledgerColumns, len(entries), func(i int) []any {
		e := &entries[i]
		updated := e.UpdatedAt
		if updated.IsZero() {
			updated = stamp
		}
		row[0], row[1], row[2], row[3], row[4] = sqlstore.Text(&e.Tenant), sqlstore.Text(&e.Flow), sqlstore.Text(&e.SourceKey), sqlstore.Text(&e.TargetID), sqlstore.Text(&e.ContentHash)
		row[5], row[6], row[7], row[8], row[9] = e.SourceVersion, string(e.State), sqlstore.Text(&e.LastEventID), sqlstore.Text(&e.LastAction), updated
		return row
	}, func() error { return p.Put(ctx, entries) })
}

// ledgerColumns are the columns in the order Insert's COPY sends them.
var ledgerColumns = []string{"tenant", "flow", "source_key", "target_id", "content_hash", "source_version",
	"state", "last_event_id", "last_action", "updated_at"}

// Put implements Store.
func (p *Postgres) Put(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	n := len(entries)
	var (
		tenants, flows, sourceKeys = make([]string, n), make([]string, n), make([]string, n)
		targetIDs, hashes          = make([]string, n), make([]string, n)
		versions                   = make([]int64, n)
		states, eventIDs, actions  = make([]string, n), make([]string, n), make([]string, n)
		updated                    = make([]time.Time, n)
	)
	stamp := now()
	for i := range entries {
		e := &entries[i]
		if err := validateEntry(i, e); err != nil {
			return fmt.Errorf("putting ledger entries: %w", err)
		}
		tenants[i], flows[i], sourceKeys[i] = e.Tenant, e.Flow, e.SourceKey
		targetIDs[i], hashes[i], versions[i] = e.TargetID, e.ContentHash, e.SourceVersion
		states[i], eventIDs[i], actions[i] = string(e.State), e.LastEventID, e.LastAction
		updated[i] = stamp
		if !e.UpdatedAt.IsZero() {
			updated[i] = e.UpdatedAt
		}
	}
	if _, err := p.pool.Exec(ctx, pgPut, tenants, flows, sourceKeys, targetIDs, hashes, versions,
		states, eventIDs, actions, updated); err != nil {
		return fmt.Errorf("putting %d ledger entries: %w", n, err)
	}
	return nil
}

// The last confirmation of each key is chosen before the event id is compared, the same rule
// the SQLite store follows; see migration 0002.
const pgConfirm = `SELECT ledger_confirm($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7)`

// Confirm implements Store.
func (p *Postgres) Confirm(ctx context.Context, cs []Confirmation) (int, error) {
	if len(cs) == 0 {
		return 0, nil
	}
	n := len(cs)
	tenants, flows, sourceKeys := make(sqlstore.Texts, n), make(sqlstore.Texts, n), make(sqlstore.Texts, n)
	eventIDs, states, targetIDs := make(sqlstore.Texts, n), make(sqlstore.Texts, n), make(sqlstore.Texts, n)
	for i := range cs {
		c := &cs[i]
		if err := validateConfirmation(i, c); err != nil {
			return 0, fmt.Errorf("confirming ledger entries: %w", err)
		}
		tenants[i], flows[i], sourceKeys[i] = c.Tenant, c.Flow, c.SourceKey
		eventIDs[i], states[i], targetIDs[i] = c.EventID, string(c.State), c.TargetID
	}
	var changed int64
	if err := p.pool.QueryRow(ctx, pgConfirm, tenants, flows, sourceKeys, eventIDs, states, targetIDs, now()).Scan(&changed); err != nil {
		return 0, fmt.Errorf("confirming %d ledger entries: %w", n, err)
	}
	return int(changed), nil
}

// The highest version of each key is kept, because one INSERT … ON CONFLICT may not touch a
// row twice; a new row is a deleted record (see Store.Advance).
const pgAdvance = `
INSERT INTO ledger_entries AS l (tenant, flow, source_key, source_version, state, last_action, updated_at)
SELECT tenant, flow, source_key, max(source_version), 'applied', 'deleted', $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS v(tenant, flow, source_key, source_version)
GROUP BY tenant, flow, source_key
ON CONFLICT (tenant, flow, source_key) DO UPDATE SET
	source_version = EXCLUDED.source_version,
	updated_at     = EXCLUDED.updated_at
WHERE l.source_version < EXCLUDED.source_version`

// Advance implements Store.
func (p *Postgres) Advance(ctx context.Context, vs []Version) error {
	if len(vs) == 0 {
		return nil
	}
	n := len(vs)
	tenants, flows, sourceKeys := make([]string, n), make([]string, n), make([]string, n)
	versions := make([]int64, n)
	for i := range vs {
		v := &vs[i]
		if err := validateVersion(i, v); err != nil {
			return fmt.Errorf("advancing ledger versions: %w", err)
		}
		tenants[i], flows[i], sourceKeys[i], versions[i] = v.Tenant, v.Flow, v.SourceKey, v.SourceVersion
	}
	if _, err := p.pool.Exec(ctx, pgAdvance, tenants, flows, sourceKeys, versions, now()); err != nil {
		return fmt.Errorf("advancing the versions of %d ledger entries: %w", n, err)
	}
	return nil
}

// DeleteTenant implements Store.
func (p *Postgres) DeleteTenant(ctx context.Context, tenant string) (int64, error) {
	if tenant == "" {
		return 0, errors.New("deleting a tenant's ledger entries: the tenant is empty")
	}
	tag, err := p.pool.Exec(ctx, "DELETE FROM ledger_entries WHERE tenant = $1", tenant)
	if err != nil {
		return 0, fmt.Errorf("deleting the ledger entries of tenant %s: %w", tenant, err)
	}
	return tag.RowsAffected(), nil
}
