package sql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	sqltarget "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/pgtest"
)

// backend is one database the target writes to, with a way to read it back independently of
// the target.
type backend struct {
	driver string
	newDSN func(t testing.TB) string
	// readDriver is the database/sql driver the tests read back with.
	readDriver string
}

func backends() []backend {
	return []backend{
		{driver: sqltarget.DriverPostgres, newDSN: pgtest.NewDatabase, readDriver: "pgx"},
		{driver: sqltarget.DriverSQLite, newDSN: func(t testing.TB) string {
			return filepath.Join(t.TempDir(), "target.db")
		}, readDriver: "sqlite"},
	}
}

// db opens a second connection to the database for setting up tables and reading back.
func (b backend) db(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	switch b.driver {
	case sqltarget.DriverSQLite:
		dsn += "?_pragma=busy_timeout(10000)"
	case sqltarget.DriverPostgres:
		// Statements are not cached, so SELECT * sees columns added between two reads.
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "default_query_exec_mode=exec"
	}
	db, err := sql.Open(b.readDriver, dsn)
	if err != nil {
		t.Fatalf("opening %s for reading back: %v", b.driver, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func exec(t testing.TB, db *sql.DB, statements ...string) {
	t.Helper()
	for _, s := range statements {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// testEnv is the egress policy a test's target runs under: the test's PostgreSQL server is
// allowed, as an operator allows a database on a private network, and a SQLite file's folder
// is the tenant's folder.
func testEnv(t testing.TB, s sqltarget.Settings) connector.Env {
	t.Helper()
	folder := t.TempDir()
	var allow []string
	switch s.Driver {
	case sqltarget.DriverSQLite:
		if path, _, _ := strings.Cut(s.DSN, "?"); filepath.IsAbs(path) {
			folder = filepath.Dir(path)
		}
	case sqltarget.DriverPostgres, sqltarget.DriverMariaDB:
		if u, err := url.Parse(s.DSN); err == nil && u.Hostname() != "" {
			allow = append(allow, u.Hostname())
		}
	}
	e, err := connector.NewEgress(connector.EgressConfig{Allow: append(allow, "public")})
	if err != nil {
		t.Fatal(err)
	}
	return connector.Env{Tenant: "test", Egress: e.WithTenants(func(string) connector.TenantEgress {
		return connector.TenantEgress{Folder: folder}
	})}
}

func open(t testing.TB, s sqltarget.Settings) *sqltarget.Target {
	t.Helper()
	target, err := sqltarget.Open(context.Background(), s, testEnv(t, s))
	if err != nil {
		t.Fatalf("Open(table %s): %v", s.Table, err)
	}
	t.Cleanup(func() { _ = target.Close() })
	return target
}

// push pushes records and fails the test when the batch as a whole fails.
func push(t testing.TB, target *sqltarget.Target, records ...connector.Write) []connector.Result {
	t.Helper()
	results, err := target.Write(context.Background(), "customer", records)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(results) != len(records) {
		t.Fatalf("Write returned %d results for %d records", len(results), len(records))
	}
	return results
}

func upsert(key string, version int64, payload string) connector.Write {
	return connector.Write{Key: key, Op: connector.WriteUpdate, Version: version, Payload: json.RawMessage(payload)}
}

// sqlReader reads rows back with plain SQL; it implements connectortest.Reader.
type sqlReader struct {
	db    *sql.DB
	table string // as SQL
	key   string // as SQL
}

func (r sqlReader) Keys(ctx context.Context, _ string) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s", r.key, r.table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// Fields renders every non-null column of the row as text.
func (r sqlReader) Fields(ctx context.Context, _ string, key string) (map[string]string, bool, error) {
	rows, err := r.db.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %s WHERE %s = $1", r.table, r.key), key)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, false, rows.Err()
	}
	names, err := rows.Columns()
	if err != nil {
		return nil, false, err
	}
	values := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range values {
		ptrs[i] = &values[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, false, err
	}
	fields := map[string]string{}
	for i, v := range values {
		switch v := v.(type) {
		case nil:
		case []byte:
			fields[names[i]] = string(v)
		case time.Time:
			fields[names[i]] = v.UTC().Format(time.RFC3339)
		default:
			fields[names[i]] = fmt.Sprint(v)
		}
	}
	return fields, true, rows.Err()
}

func (r sqlReader) row(t testing.TB, key string) map[string]string {
	t.Helper()
	fields, ok, err := r.Fields(context.Background(), "customer", key)
	if err != nil {
		t.Fatalf("reading back %s: %v", key, err)
	}
	if !ok {
		t.Fatalf("no row for key %s", key)
	}
	return fields
}

// columnTypes returns the table's columns and their declared types, lower-case.
func columnTypes(t testing.TB, driver string, db *sql.DB, table string) map[string]string {
	t.Helper()
	query := `SELECT name, type FROM pragma_table_info($1)`
	if driver == sqltarget.DriverPostgres {
		query = `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1`
	}
	rows, err := db.QueryContext(context.Background(), query, table)
	if err != nil {
		t.Fatalf("reading the columns of %s: %v", table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatalf("reading the columns of %s: %v", table, err)
		}
		types[name] = strings.ToLower(typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the columns of %s: %v", table, err)
	}
	return types
}
