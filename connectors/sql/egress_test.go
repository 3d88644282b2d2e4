package sql_test

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sqltarget "github.com/syncline/syncline/connectors/sql"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/pgtest"
)

// rebinding answers a name with a public address first and with loopback after that, as a
// DNS server that an attacker controls would.
type rebinding struct {
	mu      sync.Mutex
	lookups int
	then    netip.Addr
}

func (r *rebinding) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if host != "erp.example.com" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	r.lookups++
	if r.lookups == 1 {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	return []netip.Addr{r.then}, nil
}

func egressEnv(t *testing.T, cfg connector.EgressConfig, folder string) connector.Env {
	t.Helper()
	e, err := connector.NewEgress(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return connector.Env{Tenant: "acme", Egress: e.WithTenants(func(string) connector.TenantEgress {
		return connector.TenantEgress{Folder: folder}
	})}
}

// withHost returns a postgres URL with its host replaced.
func withHost(t *testing.T, dsn, host string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort(host, u.Port())
	return u.String()
}

// TestPostgresConnectsThroughTheEgressPolicy proves that the policy is checked when the
// target connects, against the address it connects to: a host that resolved to a public
// address when the settings were checked and resolves to loopback when the pool dials is
// refused; allowed by name, the same host connects.
func TestPostgresConnectsThroughTheEgressPolicy(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, _ := url.Parse(dsn)
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", u.Hostname())
	if err != nil || len(addrs) == 0 {
		t.Fatalf("looking up the test server %s: %v", u.Hostname(), err)
	}
	server := addrs[0].Unmap()
	s := sqltarget.Settings{Driver: sqltarget.DriverPostgres, DSN: withHost(t, dsn, "erp.example.com"), Table: "orders", CreateTable: true}

	env := egressEnv(t, connector.EgressConfig{Resolver: &rebinding{then: server}}, t.TempDir())
	target, err := sqltarget.Open(context.Background(), s, env)
	if err == nil {
		_ = target.Close()
		t.Fatal("Open succeeded, want the connection refused")
	}
	if want := "host erp.example.com:" + u.Port() + " (" + server.String() + ") (a "; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "is not in the egress policy") {
		t.Fatalf("Open error = %v, want %q", err, want)
	}

	env = egressEnv(t, connector.EgressConfig{Resolver: &rebinding{then: server}, Allow: []string{"erp.example.com:" + u.Port()}}, t.TempDir())
	target, err = sqltarget.Open(context.Background(), s, env)
	if err != nil {
		t.Fatalf("Open of a host allowed by name: %v", err)
	}
	t.Cleanup(func() { _ = target.Close() })
	push(t, target, upsert("o1", 1, `{"total": 1}`))
}

func TestOpenRefusesWhatTheEgressPolicyRefuses(t *testing.T) {
	folder := t.TempDir()
	env := egressEnv(t, connector.EgressConfig{}, folder)
	outside := filepath.Join(t.TempDir(), "x.db")
	for _, tt := range []struct {
		name, driver, dsn, want string
	}{
		{"loopback postgres", "postgres", "postgres://erp@127.0.0.1:5432/erp", "settings.dsn: host 127.0.0.1:5432 (a loopback address) is not in the egress policy; the platform operator allows it with SYNCLINE_EGRESS_ALLOW or the tenant's spec.egress.allow"},
		{"a private host", "postgres", "postgres://erp@10.0.0.5:5432/erp", "host 10.0.0.5:5432 (a private address) is not in the egress policy"},
		{"a unix socket", "postgres", "postgres://erp@%2Fvar%2Frun%2Fpostgresql/erp", "unix socket /var/run/postgresql"},
		{"a unix socket as a parameter", "postgres", "postgres://erp@93.184.215.14/erp?host=/tmp", "unix socket /tmp"},
		{"several hosts", "postgres", "postgres://erp@93.184.215.14:5432,127.0.0.1:5432/erp", "host 127.0.0.1:5432 (a loopback address)"},
		{"the metadata service", "postgres", "postgres://erp@169.254.169.254:80/erp", "(a cloud metadata address)"},
		{"a password file", "postgres", "postgres://erp@93.184.215.14/erp?passfile=/home/syncline/.pgpass", "parameter passfile reads a file of the connector's host"},
		{"a service", "postgres", "postgres://93.184.215.14/?service=syncline", "parameter service reads a file"},
		{"a client key", "postgres", "postgres://erp@93.184.215.14/erp?sslkey=/etc/syncline/tls.key&sslcert=/etc/syncline/tls.crt", "reads a file of the connector's host"},
		{"key=value form", "postgres", "host=127.0.0.1 dbname=erp", "is not a postgres URL"},
		{"sqlite up and out", "sqlite", "../x.db", `has a ".."`},
		{"sqlite elsewhere", "sqlite", outside, "is outside the tenant's folder"},
		{"a file: URI with a host", "sqlite", "file://localhost" + outside, "is a file: URI with a host or escapes"},
		{"a file: URI with escapes", "sqlite", "file:%2e%2e/x.db", "is a file: URI with a host or escapes"},
		{"a file: URI up and out", "sqlite", "file:../x.db", `has a ".."`},
		{"another VFS", "sqlite", "x.db?vfs=unix-none", "parameter vfs is not allowed"},
		{"a read-only open mode", "sqlite", "x.db?mode=memory", "parameter mode is not allowed"},
		{"a pragma that is not allowed", "sqlite", "x.db?_pragma=writable_schema(1)", "pragma writable_schema is not allowed"},
		{"two statements in a pragma", "sqlite", "x.db?_pragma=journal_mode(WAL);attach", "settings.dsn: has parameters that are not valid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := sqltarget.Settings{Driver: tt.driver, DSN: tt.dsn, Table: "orders", CreateTable: true}
			target, err := sqltarget.Open(context.Background(), s, env)
			if err == nil {
				_ = target.Close()
				t.Fatal("Open succeeded, want a refusal")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open error = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Errorf("a refused file was made: %v", err)
	}
}

// TestRelativeSQLitePathsAreInTheTenantsFolder: a relative path names a file in the tenant's
// folder, which is made the first time.
func TestRelativeSQLitePathsAreInTheTenantsFolder(t *testing.T) {
	files := t.TempDir()
	e, err := connector.NewEgress(connector.EgressConfig{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	env := connector.Env{Tenant: "acme", Egress: e}
	for _, dsn := range []string{"erp.db?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)", "file:erp.db"} {
		target, err := sqltarget.Open(context.Background(), sqltarget.Settings{Driver: sqltarget.DriverSQLite, DSN: dsn, Table: "orders", CreateTable: true}, env)
		if err != nil {
			t.Fatalf("Open(%s): %v", dsn, err)
		}
		push(t, target, upsert("o1", 1, `{"total": 1}`))
		_ = target.Close()
	}
	r := sqlReader{db: backend{driver: sqltarget.DriverSQLite, readDriver: "sqlite"}.db(t, filepath.Join(files, "acme", "erp.db")), table: "orders", key: "external_ref"}
	if got := r.row(t, "o1")["total"]; got != "1" {
		t.Fatalf("total in the tenant's file = %q, want 1", got)
	}
}
