package sqlstore_test

import (
	"context"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
)

// exec runs a statement on either dialect.
func exec(t *testing.T, db *sqlstore.DB, query string) {
	t.Helper()
	var err error
	if db.Dialect == sqlstore.Postgres {
		_, err = db.PG.Exec(t.Context(), query)
	} else {
		_, err = db.SQL.ExecContext(t.Context(), query)
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// count returns the single integer a query selects, on either dialect.
func count(t *testing.T, db *sqlstore.DB, query string) int {
	t.Helper()
	var n int
	var err error
	if db.Dialect == sqlstore.Postgres {
		err = db.PG.QueryRow(t.Context(), query).Scan(&n)
	} else {
		err = db.SQLRead.QueryRowContext(t.Context(), query).Scan(&n)
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// tableExists reports whether a table is in the schema, on either dialect.
func tableExists(t *testing.T, db *sqlstore.DB, table string) bool {
	t.Helper()
	if db.Dialect == sqlstore.Postgres {
		return count(t, db, "SELECT count(*) FROM information_schema.tables WHERE table_name = '"+table+"'") == 1
	}
	return count(t, db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '"+table+"'") == 1
}

// migrations returns the two-step schema of a small "notes" store for both dialects; the
// second file holds two statements and depends on the first.
func migrations() fstest.MapFS {
	return fstest.MapFS{
		"postgres/0001_create_notes.sql": {Data: []byte("CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);")},
		"postgres/0002_add_tags.sql":     {Data: []byte("ALTER TABLE notes ADD COLUMN tag text NOT NULL DEFAULT '';\nCREATE INDEX notes_tag ON notes (tag);")},
		"sqlite/0001_create_notes.sql":   {Data: []byte("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL) STRICT;")},
		"sqlite/0002_add_tags.sql":       {Data: []byte("ALTER TABLE notes ADD COLUMN tag TEXT NOT NULL DEFAULT '';\nCREATE INDEX notes_tag ON notes (tag);")},
	}
}

func TestMigrate(t *testing.T) {
	for _, backend := range sqlstoretest.Backends() {
		t.Run(backend.Name, func(t *testing.T) {
			t.Run("applies in order and once", func(t *testing.T) {
				db := backend.Open(t)
				fsys := migrations()
				for range 2 {
					if err := db.Migrate(t.Context(), "notes", fsys); err != nil {
						t.Fatalf("Migrate: %v", err)
					}
				}
				exec(t, db, "INSERT INTO notes (id, body, tag) VALUES (1, 'hello', 'x')")
				if n := count(t, db, "SELECT count(*) FROM schema_migrations WHERE owner = 'notes'"); n != 2 {
					t.Fatalf("schema_migrations holds %d rows for notes, want 2", n)
				}
				// A file added by a newer release is applied; the old ones are not re-run
				// (re-running 0001 would fail because the table exists).
				fsys[backend.Name+"/0003_add_author.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'nobody';")}
				if err := db.Migrate(t.Context(), "notes", fsys); err != nil {
					t.Fatalf("Migrate with a new file: %v", err)
				}
				if n := count(t, db, "SELECT count(*) FROM notes WHERE author = 'nobody' AND tag = 'x'"); n != 1 {
					t.Fatalf("the existing row is lost or the new column is missing: %d rows match", n)
				}
				// Another owner's versions are its own.
				other := fstest.MapFS{backend.Name + "/0001_create_others.sql": {Data: []byte("CREATE TABLE others (id INTEGER PRIMARY KEY);")}}
				if err := db.Migrate(t.Context(), "others", other); err != nil {
					t.Fatalf("Migrate of a second owner: %v", err)
				}
				if !tableExists(t, db, "others") {
					t.Fatal("the second owner's version 1 was taken for the first owner's")
				}
			})

			t.Run("a failing file changes nothing", func(t *testing.T) {
				db := backend.Open(t)
				fsys := fstest.MapFS{
					backend.Name + "/0001_create_good.sql": {Data: []byte("CREATE TABLE good (id INTEGER PRIMARY KEY);")},
					backend.Name + "/0002_half_bad.sql":    {Data: []byte("CREATE TABLE half (id INTEGER PRIMARY KEY);\nCREATE TABLE broken (;")},
				}
				err := db.Migrate(t.Context(), "bad", fsys)
				if err == nil || !strings.Contains(err.Error(), "0002_half_bad.sql") || !strings.Contains(err.Error(), "bad") {
					t.Fatalf("Migrate = %v, want an error naming the owner and the failing file", err)
				}
				if !tableExists(t, db, "good") {
					t.Fatal("the good file before the failing one was not kept")
				}
				if tableExists(t, db, "half") {
					t.Fatal("the first statement of the failing file was kept: the file did not run in one transaction")
				}
				if n := count(t, db, "SELECT count(*) FROM schema_migrations WHERE owner = 'bad'"); n != 1 {
					t.Fatalf("schema_migrations holds %d rows, want 1 (the failing file must not be recorded)", n)
				}
			})

			t.Run("concurrent migrators apply each file once", func(t *testing.T) {
				first := backend.Open(t)
				// A second handle on the same database plays a second process.
				var second *sqlstore.DB
				if first.Dialect == sqlstore.Postgres {
					second = reopenPostgres(t, first)
				} else {
					second = reopenSQLite(t, first)
				}
				var wg sync.WaitGroup
				errs := make(chan error, 8)
				for i := range 8 {
					db := []*sqlstore.DB{first, second}[i%2]
					wg.Go(func() { errs <- db.Migrate(t.Context(), "notes", migrations()) })
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatalf("a concurrent Migrate failed: %v", err)
					}
				}
				if n := count(t, first, "SELECT count(*) FROM schema_migrations WHERE owner = 'notes'"); n != 2 {
					t.Fatalf("schema_migrations holds %d rows, want 2", n)
				}
			})
		})
	}
}

func reopenPostgres(t *testing.T, db *sqlstore.DB) *sqlstore.DB {
	t.Helper()
	other, err := sqlstore.Open(t.Context(), db.PG.Config().ConnString())
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	t.Cleanup(other.Close)
	return other
}

func reopenSQLite(t *testing.T, db *sqlstore.DB) *sqlstore.DB {
	t.Helper()
	var seq int
	var name, file string
	if err := db.SQLRead.QueryRowContext(t.Context(), "PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		t.Fatalf("finding the database file: %v", err)
	}
	other, err := sqlstore.Open(t.Context(), "sqlite:"+file)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	t.Cleanup(other.Close)
	return other
}

func TestMigrateRefusesBadFiles(t *testing.T) {
	db := sqlstoretest.OpenSQLite(t)
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{name: "no folder for the dialect", fsys: fstest.MapFS{"postgres/0001_x.sql": {}}, want: "sqlite/NNNN_name.sql"},
		{name: "misnamed file", fsys: fstest.MapFS{"sqlite/1_x.sql": {}}, want: "sqlite/1_x.sql is not a migration file"},
		{name: "not sql", fsys: fstest.MapFS{"sqlite/0001_x.txt": {}}, want: "0001_x.txt is not a migration file"},
		{name: "upper case name", fsys: fstest.MapFS{"sqlite/0001_Create.sql": {}}, want: "0001_Create.sql is not a migration file"},
		{name: "same number twice", fsys: fstest.MapFS{"sqlite/0001_a.sql": {}, "sqlite/00001_b.sql": {}}, want: "share version 1"},
		{name: "empty folder", fsys: fstest.MapFS{"sqlite": {Mode: fs.ModeDir | 0o755}}, want: "holds no NNNN_name.sql files"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := db.Migrate(context.Background(), "x", tc.fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Migrate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("empty owner", func(t *testing.T) {
		if err := db.Migrate(t.Context(), "", migrations()); err == nil {
			t.Fatal("Migrate with an empty owner succeeded")
		}
	})
	t.Run("nothing written", func(t *testing.T) {
		var n int
		err := db.SQLRead.QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n)
		if err != nil && !strings.Contains(err.Error(), "no such table") {
			t.Fatalf("reading schema_migrations: %v", err)
		}
		if n != 0 {
			t.Fatalf("refused migrations recorded %d rows", n)
		}
	})
}
