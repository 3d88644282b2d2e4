package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// migrationLockKey is the PostgreSQL advisory lock every Migrate call holds while it changes
// the schema, so that replicas starting together apply each file once. One key for all owners
// keeps it simple; migrations are short and rare.
const migrationLockKey int64 = 0x73796e636c696e65 // "syncline"

// migration is one embedded schema change.
type migration struct {
	version int64
	name    string // the file name, recorded for people reading schema_migrations
	sql     string
}

// Migrate brings the schema of owner (a store's name, for example "dedup.ledger") up to date
// with the files "<dialect>/NNNN_name.sql" in fsys, where dialect is "postgres" or "sqlite".
// Files run in version order, each in its own transaction together with its record in the
// shared table schema_migrations, so a file is applied completely and once, or not at all.
// Calling Migrate again is a no-op. On PostgreSQL an advisory lock makes concurrent calls from
// several processes safe; on SQLite the immediate transaction does the same. ctx bounds the
// call.
func (db *DB) Migrate(ctx context.Context, owner string, fsys fs.FS) error {
	if owner == "" {
		return errors.New("migrating: the owner is empty; name the store whose schema this is")
	}
	ms, err := readMigrations(fsys, db.Dialect.String())
	if err != nil {
		return fmt.Errorf("migrating %s: %w", owner, err)
	}
	switch db.Dialect {
	case Postgres:
		err = db.migratePostgres(ctx, owner, ms)
	case SQLite:
		err = db.migrateSQLite(ctx, owner, ms)
	default:
		err = fmt.Errorf("unknown dialect %s", db.Dialect)
	}
	if err != nil {
		return fmt.Errorf("migrating %s: %w", owner, err)
	}
	return nil
}

// readMigrations reads and orders the files of one dialect. Anything in the folder that is not
// a migration file is refused, so that a misnamed file fails loudly instead of being skipped.
func readMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading the %s migrations (expected files %s/NNNN_name.sql): %w", dir, dir, err)
	}
	ms := make([]migration, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		version, ok := parseMigrationName(name)
		if e.IsDir() || !ok {
			return nil, fmt.Errorf("reading the %s migrations: %s/%s is not a migration file; name it NNNN_name.sql (digits, underscore, lower-case name)", dir, dir, name)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading migration %s/%s: %w", dir, name, err)
		}
		ms = append(ms, migration{version: version, name: name, sql: string(body)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("reading the %s migrations: the folder %s holds no NNNN_name.sql files", dir, dir)
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("reading the %s migrations: %s and %s share version %d; give each file its own number",
				dir, ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// parseMigrationName returns the version of a file named NNNN_name.sql.
func parseMigrationName(name string) (int64, bool) {
	base, ok := strings.CutSuffix(name, ".sql")
	if !ok {
		return 0, false
	}
	digits, label, ok := strings.Cut(base, "_")
	if !ok || len(digits) < 4 || label == "" {
		return 0, false
	}
	for _, r := range label {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

const pgCreateMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	owner      text        NOT NULL,
	version    bigint      NOT NULL,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (owner, version)
)`

func (db *DB) migratePostgres(ctx context.Context, owner string, ms []migration) error {
	// CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin, hence the lock.
	err := pgx.BeginFunc(ctx, db.PG, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
			return fmt.Errorf("taking the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, pgCreateMigrationsTable); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := pgx.BeginFunc(ctx, db.PG, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
				return fmt.Errorf("taking the migration lock: %w", err)
			}
			var applied bool
			if err := tx.QueryRow(ctx,
				"SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE owner = $1 AND version = $2)",
				owner, m.version).Scan(&applied); err != nil {
				return fmt.Errorf("reading schema_migrations: %w", err)
			}
			if applied {
				return nil
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("applying postgres/%s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx,
				"INSERT INTO schema_migrations (owner, version, name) VALUES ($1, $2, $3)",
				owner, m.version, m.name); err != nil {
				return fmt.Errorf("recording postgres/%s: %w", m.name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

const sqliteCreateMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	owner      TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL, -- unix microseconds
	PRIMARY KEY (owner, version)
) STRICT`

func (db *DB) migrateSQLite(ctx context.Context, owner string, ms []migration) error {
	// Every step runs in an immediate transaction: it holds the file's write lock from BEGIN,
	// so a second process migrating the same file waits and then sees the work as done.
	if err := db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sqliteCreateMigrationsTable); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, m := range ms {
		err := db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
			var applied bool
			if err := tx.QueryRowContext(ctx,
				"SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE owner = ? AND version = ?)",
				owner, m.version).Scan(&applied); err != nil {
				return fmt.Errorf("reading schema_migrations: %w", err)
			}
			if applied {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("applying sqlite/%s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx,
				"INSERT INTO schema_migrations (owner, version, name, applied_at) VALUES (?, ?, ?, ?)",
				owner, m.version, m.name, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("recording sqlite/%s: %w", m.name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SQLiteWrite runs fn in one immediate transaction on the SQLite write connection and commits
// it, or rolls it back when fn fails. It is how SQLite stores write a batch: one transaction,
// one fsync. fn must use tx only: any other use of db.SQL inside fn would wait for the
// connection that tx holds. ctx bounds the whole transaction.
func (db *DB) SQLiteWrite(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.Dialect != SQLite {
		return fmt.Errorf("writing to SQLite: the database is %s", db.Dialect)
	}
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}
