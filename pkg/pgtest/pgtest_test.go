package pgtest_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/syncline/syncline/pkg/pgtest"
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
func run(t *testing.T) (*recorder, string) {
	rec := &recorder{TB: t}
	var dbURL string
	done := make(chan struct{})
	go func() {
		defer close(done)
		dbURL = pgtest.NewDatabase(rec)
	}()
	<-done
	return rec, dbURL
}

func TestNewDatabase(t *testing.T) {
	rec, dbURL := run(t)
	if rec.failure != "" {
		t.Fatalf("NewDatabase failed: %s", rec.failure)
	}
	u, err := url.Parse(dbURL)
	if err != nil || !strings.HasPrefix(u.Path, "/syncline_test_") {
		t.Fatalf("NewDatabase = %q, want a URL of a syncline_test_ database", dbURL)
	}
	name := strings.TrimPrefix(u.Path, "/")

	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connecting to the new database: %v", err)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE t (id int)"); err != nil {
		t.Fatalf("using the new database: %v", err)
	}
	// The connection stays open on purpose: the drop must not wait for it.
	defer conn.Close(context.Background())

	second, other := run(t)
	if second.failure != "" || other == dbURL {
		t.Fatalf("a second NewDatabase = %q (%s), want another database", other, second.failure)
	}
	for _, r := range []*recorder{rec, second} {
		for i := len(r.cleanups) - 1; i >= 0; i-- {
			r.cleanups[i]()
		}
		if r.failure != "" {
			t.Fatalf("cleanup failed: %s", r.failure)
		}
	}

	adminURL := os.Getenv(pgtest.EnvURL)
	if adminURL == "" {
		adminURL = pgtest.DefaultURL
	}
	admin, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatalf("connecting to the test server: %v", err)
	}
	defer admin.Close(context.Background())
	var exists bool
	if err := admin.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatalf("checking for %s: %v", name, err)
	}
	if exists {
		t.Fatalf("database %s still exists after cleanup", name)
	}
}

func TestNewDatabaseFailsClearly(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		want    []string
		secrets []string
	}{
		{
			name:    "server down",
			url:     "postgres://postgres:s3cret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2",
			want:    []string{"127.0.0.1:1", "does not answer", "make postgres", pgtest.EnvURL},
			secrets: []string{"s3cret"},
		},
		{
			name: "not a URL",
			url:  "host=127.0.0.1 user=postgres",
			want: []string{pgtest.EnvURL, "postgres:// URL"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(pgtest.EnvURL, tc.url)
			rec, _ := run(t)
			if rec.failure == "" {
				t.Fatal("NewDatabase succeeded, want the test to fail")
			}
			for _, w := range tc.want {
				if !strings.Contains(rec.failure, w) {
					t.Errorf("failure %q does not mention %q", rec.failure, w)
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(rec.failure, s) {
					t.Errorf("failure %q leaks the password", rec.failure)
				}
			}
		})
	}
}
