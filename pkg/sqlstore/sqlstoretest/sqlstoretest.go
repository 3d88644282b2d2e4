// Package sqlstoretest opens fresh, empty databases of every dialect for store tests, so that a
// conformance suite runs the same cases against SQLite and PostgreSQL.
package sqlstoretest

import (
	"path/filepath"
	"testing"

	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/pkg/sqlstore"
)

// Backend is one dialect as the tests see it.
type Backend struct {
	Name string
	// Open returns a new empty database, closed when the test finishes.
	Open func(t testing.TB) *sqlstore.DB
}

// Backends lists every dialect a store must support. PostgreSQL comes from pgtest, so a
// missing server fails the test instead of skipping it.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Open: OpenSQLite},
		{Name: "postgres", Open: OpenPostgres},
	}
}

// OpenSQLite opens a SQLite database in a file under t.TempDir().
func OpenSQLite(t testing.TB) *sqlstore.DB {
	t.Helper()
	return open(t, "sqlite:"+filepath.Join(t.TempDir(), "store.db"))
}

// OpenPostgres opens a throwaway PostgreSQL database created by pgtest.NewDatabase.
func OpenPostgres(t testing.TB) *sqlstore.DB {
	t.Helper()
	return open(t, pgtest.NewDatabase(t))
}

func open(t testing.TB, url string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("opening the test database: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}
