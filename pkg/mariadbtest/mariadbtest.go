// Package mariadbtest gives each test its own empty MariaDB database, so that tests against
// MariaDB run in parallel without seeing each other's rows.
package mariadbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// EnvURL names the environment variable that points the tests at a MariaDB server.
const EnvURL = "SYNCLINE_TEST_MARIADB_URL"

// DefaultURL is the server the tests use when EnvURL is not set: the machine's own, with the
// user that tools/scripts/ensure-mariadb.sh (make mariadb) creates, who may create and drop
// the databases named syncline_test_*.
const DefaultURL = "mariadb://syncline_test:syncline_test@127.0.0.1:3306/"

// namePrefix starts every database a test makes; the test user's grants cover these only.
const namePrefix = "syncline_test_"

// connectTimeout bounds each administrative connection, so that a server that is down fails
// the test in seconds rather than at the test binary's deadline.
const connectTimeout = 10 * time.Second

// Database is one test's database.
type Database struct {
	// Name is the database's name.
	Name string
	// URL is the database as the sql connector takes it, mariadb://user@host:port/name,
	// without the password.
	URL string
	// Password is the user's password, an endpoint's credential.
	Password string
	// DSN is the database as the mysql driver of database/sql takes it, password included,
	// for a test that sets tables up and reads them back.
	DSN string
}

// NewDatabase creates a database with a random name on the server at $SYNCLINE_TEST_MARIADB_URL
// (DefaultURL when unset) and returns it. The database is dropped when the test and its
// subtests finish. When the server does not answer, the test fails with a message that names
// the server and how to fix it: a missing server is an error, never a reason to skip.
func NewDatabase(t testing.TB) Database {
	t.Helper()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		raw = DefaultURL
	}
	admin, shown, err := config(raw)
	if err != nil {
		t.Fatalf("mariadbtest: %s must be a URL such as %s: %v", EnvURL, DefaultURL, err)
	}

	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	name := namePrefix + hex.EncodeToString(b[:])

	exec := func(statement string) error {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		db, err := sql.Open("mysql", admin.FormatDSN())
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, statement)
		return err
	}
	if err := exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("mariadbtest: creating database %s on MariaDB at %s: %v\n"+
			"Start the machine's server and create the test user with `make mariadb`, or set %s to a server where this user may create databases named %s*.",
			name, shown, err, EnvURL, namePrefix)
	}
	t.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("mariadbtest: dropping database %s on %s: %v", name, shown, err)
		}
	})

	db := admin.Clone()
	db.DBName = name
	db.ParseTime = true
	u := url.URL{Scheme: "mariadb", User: url.User(admin.User), Host: admin.Addr, Path: "/" + name}
	return Database{Name: name, URL: u.String(), Password: admin.Passwd, DSN: db.FormatDSN()}
}

// config reads a mariadb://user:password@host:port/ URL; shown is it without the password.
func config(raw string) (cfg *mysql.Config, shown string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", err
	}
	if u.Scheme != "mariadb" && u.Scheme != "mysql" {
		return nil, "", &url.Error{Op: "parse", URL: u.Redacted(), Err: errScheme}
	}
	cfg = mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(u.Hostname(), port)
	cfg.Timeout = connectTimeout
	return cfg, u.Redacted(), nil
}

var errScheme = errors.New("the scheme is not mariadb://")
