package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// Postgres is the resource store on PostgreSQL.
type Postgres struct {
	pool *pgxpool.Pool
}

var _ Store = (*Postgres)(nil)

// NewPostgres migrates the resource tables in db, which must be a PostgreSQL database. ctx
// bounds the migration only.
func NewPostgres(ctx context.Context, db *sqlstore.DB) (*Postgres, error) {
	if db.Dialect != sqlstore.Postgres {
		return nil, fmt.Errorf("opening the PostgreSQL resource store: the database is %s", db.Dialect)
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	return &Postgres{pool: db.PG}, nil
}

const resourceColumns = "kind, tenant, name, spec, generation, created_at, updated_at"

// The WHERE clause turns an identical spec into no update at all, so neither the generation
// nor updated_at moves, and RETURNING yields no row.
const pgPut = `
INSERT INTO resources AS r (` + resourceColumns + `)
VALUES ($1, $2, $3, $4, 1, $5, $5)
ON CONFLICT (kind, tenant, name) DO UPDATE SET
	spec       = EXCLUDED.spec,
	generation = r.generation + 1,
	updated_at = EXCLUDED.updated_at
WHERE r.spec <> EXCLUDED.spec
RETURNING ` + resourceColumns

const pgGet = "SELECT " + resourceColumns + " FROM resources WHERE kind = $1 AND tenant = $2 AND name = $3"

// Put implements Store. It runs in one transaction: when the spec is unchanged, the conflicting
// row stays locked until the read that returns it.
func (p *Postgres) Put(ctx context.Context, r Resource) (Resource, bool, error) {
	spec, err := prepare(r)
	if err != nil {
		return Resource{}, false, err
	}
	var stored Resource
	changed := true
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		err := scanPG(tx.QueryRow(ctx, pgPut, r.Kind, r.Tenant, r.Name, spec, now()), &stored)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		changed = false
		return scanPG(tx.QueryRow(ctx, pgGet, r.Kind, r.Tenant, r.Name), &stored)
	})
	if err != nil {
		return Resource{}, false, fmt.Errorf("storing %s: %w", describe(r.Kind, r.Tenant, r.Name), err)
	}
	return stored, changed, nil
}

// Get implements Store.
func (p *Postgres) Get(ctx context.Context, kind, tenant, name string) (Resource, error) {
	var r Resource
	err := scanPG(p.pool.QueryRow(ctx, pgGet, kind, tenant, name), &r)
	if errors.Is(err, pgx.ErrNoRows) {
		return Resource{}, notFound(kind, tenant, name)
	}
	if err != nil {
		return Resource{}, fmt.Errorf("reading %s: %w", describe(kind, tenant, name), err)
	}
	return r, nil
}

// List implements Store.
func (p *Postgres) List(ctx context.Context, kind, tenant string) ([]Resource, error) {
	if err := validateList(kind); err != nil {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, "SELECT "+resourceColumns+` FROM resources
		WHERE kind = $1 AND ($2 = '' OR tenant = $2) ORDER BY tenant, name`, kind, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing %s resources: %w", kind, err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Resource, error) {
		var r Resource
		err := scanPG(row, &r)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s resources: %w", kind, err)
	}
	return list, nil
}

// Delete implements Store.
func (p *Postgres) Delete(ctx context.Context, kind, tenant, name string) error {
	tag, err := p.pool.Exec(ctx, "DELETE FROM resources WHERE kind = $1 AND tenant = $2 AND name = $3", kind, tenant, name)
	if err != nil {
		return fmt.Errorf("deleting %s: %w", describe(kind, tenant, name), err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(kind, tenant, name)
	}
	return nil
}

// DeleteTenant implements Store.
func (p *Postgres) DeleteTenant(ctx context.Context, tenant string) (map[string]int64, error) {
	removed := map[string]int64{}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "DELETE FROM resources WHERE tenant = $1 RETURNING kind", tenant)
		if err != nil {
			return err
		}
		kinds, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(kinds) == 0 {
			return notFound(kindTenant, tenant, tenant)
		}
		for _, k := range kinds {
			removed[k]++
		}
		tag, err := tx.Exec(ctx, "DELETE FROM tokens WHERE tenant = $1", tenant)
		if err != nil {
			return err
		}
		removed["token"] = tag.RowsAffected()
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("deleting tenant %q: %w", tenant, err)
	}
	return removed, nil
}

// SetToken implements Store.
func (p *Postgres) SetToken(ctx context.Context, tenant, integrator, hash string) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM tokens WHERE tenant = $1 AND integrator = $2", tenant, integrator); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO tokens (hash, tenant, integrator, created_at) VALUES ($1, $2, $3, $4)", hash, tenant, integrator, now())
		return err
	})
	if err != nil {
		return fmt.Errorf("storing the token of %s: %w", describe("Integrator", tenant, integrator), err)
	}
	return nil
}

// DeleteToken implements Store.
func (p *Postgres) DeleteToken(ctx context.Context, tenant, integrator string) (bool, error) {
	tag, err := p.pool.Exec(ctx, "DELETE FROM tokens WHERE tenant = $1 AND integrator = $2", tenant, integrator)
	if err != nil {
		return false, fmt.Errorf("deleting the token of %s: %w", describe("Integrator", tenant, integrator), err)
	}
	return tag.RowsAffected() > 0, nil
}

// LookupToken implements Store.
func (p *Postgres) LookupToken(ctx context.Context, hash string) (string, string, error) {
	var tenant, integrator string
	err := p.pool.QueryRow(ctx, "SELECT tenant, integrator FROM tokens WHERE hash = $1", hash).Scan(&tenant, &integrator)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", unknownToken()
	}
	if err != nil {
		return "", "", fmt.Errorf("looking up a token: %w", err)
	}
	return tenant, integrator, nil
}

// Tokens implements Store.
func (p *Postgres) Tokens(ctx context.Context, tenant string) (map[string]string, error) {
	rows, err := p.pool.Query(ctx, "SELECT integrator, hash FROM tokens WHERE tenant = $1", tenant)
	if err != nil {
		return nil, fmt.Errorf("listing the tokens of tenant %q: %w", tenant, err)
	}
	out := map[string]string{}
	var integrator, hash string
	_, err = pgx.ForEachRow(rows, []any{&integrator, &hash}, func() error {
		out[integrator] = hash
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the tokens of tenant %q: %w", tenant, err)
	}
	return out, nil
}

func scanPG(row pgx.Row, r *Resource) error {
	var spec string
	if err := row.Scan(&r.Kind, &r.Tenant, &r.Name, &spec, &r.Generation, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return err
	}
	r.Spec = json.RawMessage(spec)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return nil
}
