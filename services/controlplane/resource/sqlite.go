package resource

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// SQLite is the resource store on embedded SQLite.
type SQLite struct {
	db *sqlstore.DB
}

var _ Store = (*SQLite)(nil)

// NewSQLite migrates the resource tables in db, which must be a SQLite database. ctx bounds the
// migration only.
func NewSQLite(ctx context.Context, db *sqlstore.DB) (*SQLite, error) {
	if db.Dialect != sqlstore.SQLite {
		return nil, fmt.Errorf("opening the SQLite resource store: the database is %s", db.Dialect)
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	return &SQLite{db: db}, nil
}

// The WHERE clause turns an identical spec into no update at all, so neither the generation
// nor updated_at moves, and RETURNING yields no row.
const sqlitePut = `
INSERT INTO resources (` + resourceColumns + `)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
ON CONFLICT (kind, tenant, name) DO UPDATE SET
	spec       = excluded.spec,
	generation = generation + 1,
	updated_at = excluded.updated_at
WHERE spec <> excluded.spec
RETURNING ` + resourceColumns

const sqliteGet = "SELECT " + resourceColumns + " FROM resources WHERE kind = ? AND tenant = ? AND name = ?"

// Put implements Store. The immediate transaction holds the write lock from its start, so the
// read of an unchanged resource sees exactly the row the upsert left alone.
func (s *SQLite) Put(ctx context.Context, r Resource) (Resource, bool, error) {
	spec, err := prepare(r)
	if err != nil {
		return Resource{}, false, err
	}
	var stored Resource
	changed := true
	err = s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		err := scanSQLite(tx.QueryRowContext(ctx, sqlitePut, r.Kind, r.Tenant, r.Name, spec, now().UnixMicro()), &stored)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		changed = false
		return scanSQLite(tx.QueryRowContext(ctx, sqliteGet, r.Kind, r.Tenant, r.Name), &stored)
	})
	if err != nil {
		return Resource{}, false, fmt.Errorf("storing %s: %w", describe(r.Kind, r.Tenant, r.Name), err)
	}
	return stored, changed, nil
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, kind, tenant, name string) (Resource, error) {
	var r Resource
	err := scanSQLite(s.db.SQLRead.QueryRowContext(ctx, sqliteGet, kind, tenant, name), &r)
	if errors.Is(err, sql.ErrNoRows) {
		return Resource{}, notFound(kind, tenant, name)
	}
	if err != nil {
		return Resource{}, fmt.Errorf("reading %s: %w", describe(kind, tenant, name), err)
	}
	return r, nil
}

// List implements Store.
func (s *SQLite) List(ctx context.Context, kind, tenant string) ([]Resource, error) {
	if err := validateList(kind); err != nil {
		return nil, err
	}
	list, err := s.list(ctx, kind, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing %s resources: %w", kind, err)
	}
	return list, nil
}

func (s *SQLite) list(ctx context.Context, kind, tenant string) ([]Resource, error) {
	rows, err := s.db.SQLRead.QueryContext(ctx, "SELECT "+resourceColumns+` FROM resources
		WHERE kind = ?1 AND (?2 = '' OR tenant = ?2) ORDER BY tenant, name`, kind, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []Resource
	for rows.Next() {
		var r Resource
		if err := scanSQLite(rows, &r); err != nil {
			return nil, err
		}
		list = append(list, r)
	}
	return list, rows.Err()
}

// Delete implements Store.
func (s *SQLite) Delete(ctx context.Context, kind, tenant, name string) error {
	var n int64
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM resources WHERE kind = ? AND tenant = ? AND name = ?", kind, tenant, name)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting %s: %w", describe(kind, tenant, name), err)
	}
	if n == 0 {
		return notFound(kind, tenant, name)
	}
	return nil
}

// DeleteTenant implements Store.
func (s *SQLite) DeleteTenant(ctx context.Context, tenant string) (map[string]int64, error) {
	removed := map[string]int64{}
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "DELETE FROM resources WHERE tenant = ? RETURNING kind", tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			removed[k]++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(removed) == 0 {
			return notFound(kindTenant, tenant, tenant)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE tenant = ?", tenant)
		if err != nil {
			return err
		}
		removed["token"], err = res.RowsAffected()
		return err
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
func (s *SQLite) SetToken(ctx context.Context, tenant, integrator, hash string) error {
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE tenant = ? AND integrator = ?", tenant, integrator); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO tokens (hash, tenant, integrator, created_at) VALUES (?, ?, ?, ?)", hash, tenant, integrator, now().UnixMicro())
		return err
	})
	if err != nil {
		return fmt.Errorf("storing the token of %s: %w", describe("Integrator", tenant, integrator), err)
	}
	return nil
}

// DeleteToken implements Store.
func (s *SQLite) DeleteToken(ctx context.Context, tenant, integrator string) (bool, error) {
	var n int64
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE tenant = ? AND integrator = ?", tenant, integrator)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("deleting the token of %s: %w", describe("Integrator", tenant, integrator), err)
	}
	return n > 0, nil
}

// LookupToken implements Store.
func (s *SQLite) LookupToken(ctx context.Context, hash string) (string, string, error) {
	var tenant, integrator string
	err := s.db.SQLRead.QueryRowContext(ctx, "SELECT tenant, integrator FROM tokens WHERE hash = ?", hash).Scan(&tenant, &integrator)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", unknownToken()
	}
	if err != nil {
		return "", "", fmt.Errorf("looking up a token: %w", err)
	}
	return tenant, integrator, nil
}

// Tokens implements Store.
func (s *SQLite) Tokens(ctx context.Context, tenant string) (map[string]string, error) {
	rows, err := s.db.SQLRead.QueryContext(ctx, "SELECT integrator, hash FROM tokens WHERE tenant = ?", tenant)
	if err != nil {
		return nil, fmt.Errorf("listing the tokens of tenant %q: %w", tenant, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var integrator, hash string
		if err := rows.Scan(&integrator, &hash); err != nil {
			return nil, fmt.Errorf("listing the tokens of tenant %q: %w", tenant, err)
		}
		out[integrator] = hash
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the tokens of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

func scanSQLite(row scanner, r *Resource) error {
	var spec string
	var created, updated int64
	if err := row.Scan(&r.Kind, &r.Tenant, &r.Name, &spec, &r.Generation, &created, &updated); err != nil {
		return err
	}
	r.Spec = json.RawMessage(spec)
	r.CreatedAt, r.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return nil
}
