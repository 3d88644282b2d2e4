// Package sqlstore opens the database a service keeps its state in and applies that service's
// embedded migrations. It knows two backends: PostgreSQL (production) and embedded SQLite (the
// zero-setup default of the all-in-one mode). Stores built on it pick their queries by Dialect.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver (pure Go, no cgo)
)

// Dialect names the SQL backend behind a DB, so that a store can choose its queries.
type Dialect int

// The supported backends.
const (
	Postgres Dialect = iota + 1
	SQLite
)

// String returns the name used in URLs and in migration folder names.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	default:
		return fmt.Sprintf("Dialect(%d)", int(d))
	}
}

// acceptedForms is repeated in every URL error so that the reader learns the fix right there.
const acceptedForms = `"postgres://USER@HOST:PORT/DB", "postgresql://…", "sqlite:PATH", "sqlite://PATH" or a file path ending in ".db"`

// SQLite connection settings.
//
// WAL lets readers run while a batch is written; synchronous=NORMAL in WAL mode fsyncs at
// checkpoints rather than at every commit, and a power cut can lose only the last commits,
// never corrupt the file. temp_store=MEMORY keeps the statement journal of multi-row upserts
// off disk. busy_timeout only matters when another process writes the same file (a CLI next to
// the all-in-one process): writers inside this process queue on the single write connection in
// Go and never meet SQLite's lock. Immediate transactions take the write lock at BEGIN, so a
// transaction that reads before it writes cannot fail with SQLITE_BUSY halfway through: it
// waits (up to busy_timeout) before it starts instead.
const (
	sqliteCommonParams = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)"
	sqliteWriteParams  = sqliteCommonParams + "&_pragma=journal_mode(WAL)&_txlock=immediate"
	sqliteReadParams   = sqliteCommonParams + "&_pragma=query_only(1)"
)

// DB is an open database of one of the two dialects. Exactly one of PG or SQL is set, chosen
// by Dialect.
type DB struct {
	Dialect Dialect
	// PG is the connection pool when Dialect is Postgres.
	PG *pgxpool.Pool
	// SQL is the SQLite read-write handle when Dialect is SQLite. It holds one connection on
	// purpose: SQLite lets one writer in at a time, so a bigger pool only moves the queue into
	// SQLite's busy handler, which polls with sleeps of up to 100 ms, is unfair, and surfaces
	// SQLITE_BUSY once busy_timeout runs out. With one connection, concurrent batch writers
	// queue in database/sql instead (cheap, honours each caller's context) and every write
	// transaction is BEGIN IMMEDIATE. Never call SQL while holding a transaction from it: the
	// second call would wait for the connection the transaction holds.
	SQL *sql.DB
	// SQLRead is a pool of read-only SQLite connections for queries that should not wait
	// behind the writer: in WAL mode readers see the last committed state while a write runs.
	SQLRead *sql.DB
}

// Open opens the database at rawURL and checks that it answers. It accepts
// "postgres://…" and "postgresql://…" (a pgx pool; pool settings such as pool_max_conns go in
// the query string), and "sqlite:PATH", "sqlite://PATH" or a plain file path ending in ".db"
// (embedded SQLite; the parent folder is created). ctx bounds only the opening, not the
// lifetime of the returned DB.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	switch {
	case rawURL == "":
		return nil, fmt.Errorf("opening database: the URL is empty; use %s", acceptedForms)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL)
	case strings.HasPrefix(rawURL, "sqlite://"):
		return openSQLite(ctx, rawURL, strings.TrimPrefix(rawURL, "sqlite://"))
	case strings.HasPrefix(rawURL, "sqlite:"):
		return openSQLite(ctx, rawURL, strings.TrimPrefix(rawURL, "sqlite:"))
	case strings.HasSuffix(rawURL, ".db") && !strings.Contains(rawURL, "://"):
		return openSQLite(ctx, rawURL, rawURL)
	}
	scheme := "none"
	if u, err := url.Parse(rawURL); err == nil && u.Scheme != "" {
		scheme = u.Scheme
	}
	return nil, fmt.Errorf("opening database %s: unsupported scheme %q; use %s", Redact(rawURL), scheme, acceptedForms)
}

// DefaultPoolSize is the PostgreSQL pool size unless the URL sets
// pool_max_conns.
const DefaultPoolSize = 16

func openPostgres(ctx context.Context, rawURL string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("opening database %s: the URL is not valid (%s); use %s",
			Redact(rawURL), redactedCause(err, rawURL), acceptedForms)
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		// pgx's default (the larger of 4 and the CPU count) is smaller than
		// the number of stage consumers that share a pool (one per partition
		// plus a few), which would make them queue for connections.
		cfg.MaxConns = DefaultPoolSize
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", Redact(rawURL), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w; check that the server runs and the URL's user, password and database are right",
			Redact(rawURL), err)
	}
	return &DB{Dialect: Postgres, PG: pool}, nil
}

func openSQLite(ctx context.Context, rawURL, path string) (*DB, error) {
	switch {
	case path == "":
		return nil, fmt.Errorf("opening database %s: the SQLite file path is empty; use %s", Redact(rawURL), acceptedForms)
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("opening database %s: a SQLite path takes no query string or fragment, Syncline sets the connection options itself", Redact(rawURL))
	case path == ":memory:":
		return nil, fmt.Errorf("opening database %s: in-memory SQLite is not supported because every connection would see its own empty database; use a file path", rawURL)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating the folder for SQLite database %s: %w", path, err)
	}
	write, err := sql.Open("sqlite", path+"?"+sqliteWriteParams)
	if err != nil {
		return nil, fmt.Errorf("opening SQLite database %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	// Connections live as long as the DB: each new one would repeat the pragmas and re-read
	// the schema.
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	// The writer connects first so that the file exists and is in WAL mode before any reader.
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("opening SQLite database %s: %w; check that the folder is writable", path, err)
	}
	read, err := sql.Open("sqlite", path+"?"+sqliteReadParams)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("opening SQLite database %s for reading: %w", path, err)
	}
	readers := min(max(runtime.GOMAXPROCS(0), 2), 8)
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	read.SetConnMaxLifetime(0)
	read.SetConnMaxIdleTime(0)
	if err := read.PingContext(ctx); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("opening SQLite database %s for reading: %w", path, err)
	}
	return &DB{Dialect: SQLite, SQL: write, SQLRead: read}, nil
}

// Close releases every connection. The DB must not be used afterwards.
func (db *DB) Close() {
	if db.PG != nil {
		db.PG.Close()
	}
	if db.SQL != nil {
		db.SQL.Close()
	}
	if db.SQLRead != nil {
		db.SQLRead.Close()
	}
}

// Ping reports whether the database answers, for readiness checks. ctx bounds the call.
func (db *DB) Ping(ctx context.Context) error {
	switch db.Dialect {
	case Postgres:
		if err := db.PG.Ping(ctx); err != nil {
			return fmt.Errorf("pinging PostgreSQL: %w", err)
		}
	case SQLite:
		if err := db.SQL.PingContext(ctx); err != nil {
			return fmt.Errorf("pinging SQLite: %w", err)
		}
		if err := db.SQLRead.PingContext(ctx); err != nil {
			return fmt.Errorf("pinging SQLite readers: %w", err)
		}
	default:
		return fmt.Errorf("pinging database: unknown dialect %s", db.Dialect)
	}
	return nil
}

// Redact returns rawURL fit for an error message or a log line: the password, in the user
// part or in a password query parameter, is replaced by "xxxxx". A URL that does not parse is
// not printed at all, because where its password sits is unknown.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(an unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// redactedCause returns the reason a URL was refused without its password. When the URL does
// not parse, where the password sits is unknown, so the reason is not quoted at all.
func redactedCause(err error, rawURL string) string {
	u, perr := url.Parse(rawURL)
	if perr != nil {
		return "it does not parse as a URL"
	}
	msg := err.Error()
	if pw, ok := u.User.Password(); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	if pw := u.Query().Get("password"); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}

// CopyIn writes n rows into table with COPY, PostgreSQL's fastest way in.
// COPY fails as a whole when a row meets an existing key (a redelivered batch)
// or a key repeats in the batch; CopyIn then writes the batch with upsert
// instead, so the caller gets upsert's result either way. row(i) returns the
// i-th row's values in the order of columns.
func CopyIn(ctx context.Context, pool *pgxpool.Pool, table string, columns []string, n int, row func(i int) []any, upsert func() error) error {
	_, err := pool.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return row(i), nil }))
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return upsert()
	default:
		return fmt.Errorf("copying %d rows into %s: %w", n, table, err)
	}
}
