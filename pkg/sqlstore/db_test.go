package sqlstore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
)

func TestOpenSQLiteForms(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		url  string
		file string
	}{
		{name: "sqlite colon", url: "sqlite:" + filepath.Join(dir, "a", "one.db"), file: filepath.Join(dir, "a", "one.db")},
		{name: "sqlite slashes", url: "sqlite://" + filepath.Join(dir, "b", "two.db"), file: filepath.Join(dir, "b", "two.db")},
		{name: "plain path", url: filepath.Join(dir, "c", "d", "three.db"), file: filepath.Join(dir, "c", "d", "three.db")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqlstore.Open(t.Context(), tc.url)
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			defer db.Close()
			if db.Dialect != sqlstore.SQLite || db.SQL == nil || db.SQLRead == nil || db.PG != nil {
				t.Fatalf("Open(%q) = dialect %s, SQL set %t, PG set %t; want a SQLite DB", tc.url, db.Dialect, db.SQL != nil, db.PG != nil)
			}
			if err := db.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if _, err := os.Stat(tc.file); err != nil {
				t.Fatalf("the database file was not created where the URL points: %v", err)
			}
		})
	}
}

func TestOpenPostgres(t *testing.T) {
	db := sqlstoretest.OpenPostgres(t)
	if db.Dialect != sqlstore.Postgres || db.PG == nil || db.SQL != nil {
		t.Fatalf("got dialect %s, PG set %t; want a PostgreSQL DB", db.Dialect, db.PG != nil)
	}
	if err := db.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if got := sqlstore.Postgres.String() + "," + sqlstore.SQLite.String(); got != "postgres,sqlite" {
		t.Fatalf("dialect names = %q, want postgres,sqlite", got)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		want    []string // substrings the error must hold
		secrets []string // substrings it must not hold
	}{
		{name: "empty", url: "", want: []string{"empty", "postgres://", "sqlite:PATH"}},
		{
			name:    "unknown scheme with password",
			url:     "mysql://admin:s3cret@db.example:3306/app",
			want:    []string{`"mysql"`, "postgres://", "sqlite:PATH", ".db", "admin:xxxxx@db.example"},
			secrets: []string{"s3cret"},
		},
		{name: "no scheme and no .db", url: "data/state.sqlite", want: []string{`"none"`, "sqlite:PATH"}},
		{name: "sqlite without path", url: "sqlite:", want: []string{"path is empty"}},
		{name: "sqlite with options", url: "sqlite:x.db?_pragma=foo", want: []string{"no query string"}},
		{name: "sqlite in memory", url: "sqlite::memory:", want: []string{"in-memory"}},
		{
			name:    "postgres down, password in user part",
			url:     "postgres://app:hunter2@127.0.0.1:1/app?sslmode=disable&connect_timeout=2",
			want:    []string{"connecting to PostgreSQL", "app:xxxxx@127.0.0.1:1"},
			secrets: []string{"hunter2"},
		},
		{
			name:    "postgres bad option, password in query",
			url:     "postgres://127.0.0.1/app?password=hunter2&sslmode=sometimes",
			want:    []string{"not valid", "password=xxxxx"},
			secrets: []string{"hunter2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqlstore.Open(t.Context(), tc.url)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tc.url)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q leaks the password %q", err, s)
				}
			}
		})
	}
}

func TestSQLiteSettings(t *testing.T) {
	db := sqlstoretest.OpenSQLite(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{pragma: "journal_mode", want: "wal"},
		{pragma: "synchronous", want: "1"}, // NORMAL
		{pragma: "foreign_keys", want: "1"},
		{pragma: "busy_timeout", want: "10000"},
		{pragma: "temp_store", want: "2"}, // MEMORY
	}
	for _, tc := range tests {
		t.Run(tc.pragma, func(t *testing.T) {
			for _, h := range []struct {
				name string
				db   *sql.DB
			}{{"writer", db.SQL}, {"reader", db.SQLRead}} {
				var got string
				if err := h.db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
					t.Fatalf("%s: reading PRAGMA %s: %v", h.name, tc.pragma, err)
				}
				if got != tc.want {
					t.Errorf("%s: PRAGMA %s = %q, want %q", h.name, tc.pragma, got, tc.want)
				}
			}
		})
	}
	t.Run("readers cannot write", func(t *testing.T) {
		if _, err := db.SQLRead.ExecContext(t.Context(), "CREATE TABLE nope (x INTEGER)"); err == nil {
			t.Fatal("a write through SQLRead succeeded, want a read-only error")
		}
	})
}

// TestSQLiteConcurrentWriters plays two processes on one file, each with several goroutines
// that read, then write, in one transaction. Immediate transactions and busy_timeout must keep
// SQLITE_BUSY from surfacing, and no increment may be lost.
func TestSQLiteConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	var dbs []*sqlstore.DB
	for range 2 {
		db, err := sqlstore.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(db.Close)
		dbs = append(dbs, db)
	}
	if err := dbs[0].SQLiteWrite(t.Context(), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(t.Context(), "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0)")
		return err
	}); err != nil {
		t.Fatalf("creating the counter: %v", err)
	}

	const goroutines, increments = 6, 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines*increments)
	for _, db := range dbs {
		for range goroutines {
			wg.Go(func() {
				for range increments {
					errs <- db.SQLiteWrite(t.Context(), func(tx *sql.Tx) error {
						var n int
						if err := tx.QueryRowContext(t.Context(), "SELECT n FROM counter").Scan(&n); err != nil {
							return err
						}
						_, err := tx.ExecContext(t.Context(), "UPDATE counter SET n = ?", n+1)
						return err
					})
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent writer failed: %v", err)
		}
	}
	var n int
	if err := dbs[1].SQLRead.QueryRowContext(t.Context(), "SELECT n FROM counter").Scan(&n); err != nil {
		t.Fatalf("reading the counter: %v", err)
	}
	if want := 2 * goroutines * increments; n != want {
		t.Fatalf("counter = %d after %d increments: writes were lost", n, want)
	}
}

func TestSQLiteWriteOnPostgres(t *testing.T) {
	db := sqlstoretest.OpenPostgres(t)
	err := db.SQLiteWrite(context.Background(), func(*sql.Tx) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Fatalf("SQLiteWrite on PostgreSQL = %v, want an error naming the dialect", err)
	}
}
