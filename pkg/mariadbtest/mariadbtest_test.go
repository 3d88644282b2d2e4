package mariadbtest_test

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/syncline/syncline/pkg/mariadbtest"
)

// recorder stands in for a test, so that NewDatabase's failures and cleanups can be observed.
type recorder struct {
	testing.TB
	failure  string
	cleanups []func()
}

func (r *recorder) Helper()                   {}
func (r *recorder) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(f string, a ...any) { r.failure += fmt.Sprintf(f, a...) }
func (r *recorder) Fatalf(f string, a ...any) {
	r.failure += fmt.Sprintf(f, a...)
	runtime.Goexit()
}

// run calls NewDatabase on a recorder in its own goroutine, as Fatalf ends the goroutine.
func run(t *testing.T) (*recorder, mariadbtest.Database) {
	rec := &recorder{TB: t}
	var db mariadbtest.Database
	done := make(chan struct{})
	go func() {
		defer close(done)
		db = mariadbtest.NewDatabase(rec)
	}()
	<-done
	return rec, db
}

func exists(t *testing.T, dsn, name string) bool {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n); err != nil {
		t.Fatalf("looking for database %s: %v", name, err)
	}
	return n == 1
}

// TestNewDatabase: the database is there, empty and writable, its URL names it without the
// password, and it is gone after the cleanup.
func TestNewDatabase(t *testing.T) {
	rec, db := run(t)
	if rec.failure != "" {
		t.Fatalf("NewDatabase failed: %s", rec.failure)
	}
	if !strings.HasPrefix(db.URL, "mariadb://") || !strings.HasSuffix(db.URL, "/"+db.Name) || strings.Contains(db.URL, ":"+db.Password+"@") {
		t.Errorf("URL %q: want mariadb://user@host:port/%s without the password", db.URL, db.Name)
	}
	conn, err := sql.Open("mysql", db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
		t.Fatalf("creating a table in the test database: %v", err)
	}
	if !exists(t, db.DSN, db.Name) {
		t.Fatalf("database %s is not there", db.Name)
	}
	for _, f := range rec.cleanups {
		f()
	}
	if rec.failure != "" {
		t.Fatalf("cleanup failed: %s", rec.failure)
	}
	if exists(t, db.DSN[:strings.LastIndex(db.DSN, "/")+1]+"?parseTime=true", db.Name) {
		t.Errorf("database %s is still there after the cleanup", db.Name)
	}
}

// TestNewDatabaseFailsWithTheFix: a server that does not answer fails the test, saying how
// to start one; it never skips.
func TestNewDatabaseFailsWithTheFix(t *testing.T) {
	t.Setenv(mariadbtest.EnvURL, "mariadb://syncline_test:secret@127.0.0.1:1/")
	rec, _ := run(t)
	for _, want := range []string{"make mariadb", mariadbtest.EnvURL, "127.0.0.1:1"} {
		if !strings.Contains(rec.failure, want) {
			t.Errorf("failure %q lacks %q", rec.failure, want)
		}
	}
	if strings.Contains(rec.failure, "secret") {
		t.Errorf("failure %q shows the password", rec.failure)
	}
}
