// Package pgtest gives each test its own empty PostgreSQL database, so that tests of
// PostgreSQL stores run in parallel without seeing each other's rows.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// EnvURL names the environment variable that points the tests at a PostgreSQL server.
const EnvURL = "SYNCLINE_TEST_POSTGRES_URL"

// DefaultURL is the server the tests use when EnvURL is not set: the machine's own, with trust
// authentication.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// connectTimeout bounds each administrative connection, so that a server that is down fails
// the test in seconds rather than at the test binary's deadline.
const connectTimeout = 10 * time.Second

// NewDatabase creates a database with a random name on the server at $SYNCLINE_TEST_POSTGRES_URL
// (DefaultURL when unset) and returns its URL. The database is dropped, even with connections
// still open, when the test and its subtests finish. When the server does not answer, the test
// fails with a message that names the URL and how to fix it: a missing server is an error,
// never a reason to skip.
func NewDatabase(t testing.TB) string {
	t.Helper()
	adminURL, u := server(t)
	shown := sqlstore.Redact(adminURL)

	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	name := "syncline_test_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("pgtest: PostgreSQL at %s does not answer: %v\n"+
			"Start the machine's server with `make postgres`, or set %s to a server where this user may create databases.",
			shown, err, EnvURL)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database %s on %s: %v\nThe user in %s needs the CREATEDB privilege.", name, shown, err, EnvURL)
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("pgtest: dropping database %s: connecting to %s: %v", name, shown, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database %s on %s: %v", name, shown, err)
		}
	})

	dbURL := *u
	dbURL.Path = "/" + name
	dbURL.RawPath = ""
	return dbURL.String()
}

// Host is the test server's host:port, which a test's egress policy
// allows as an operator allows a database on the private network.
func Host(t testing.TB) string {
	t.Helper()
	_, u := server(t)
	return u.Host
}

// server is the test server's URL ($SYNCLINE_TEST_POSTGRES_URL, else
// DefaultURL), whole and parsed.
func server(t testing.TB) (string, *url.URL) {
	t.Helper()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL such as %s", EnvURL, DefaultURL)
	}
	return raw, u
}
