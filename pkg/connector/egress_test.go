package connector_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
)

// fakeDNS answers from a table that a test may change between two lookups.
type fakeDNS struct {
	mu    sync.Mutex
	hosts map[string][]netip.Addr
}

func (f *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	addrs, ok := f.hosts[strings.TrimSuffix(strings.ToLower(host), ".")]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func (f *fakeDNS) set(host string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts[host] = nil
	for _, a := range addrs {
		f.hosts[host] = append(f.hosts[host], netip.MustParseAddr(a))
	}
}

func newDNS() *fakeDNS {
	d := &fakeDNS{hosts: map[string][]netip.Addr{}}
	d.set("localhost", "127.0.0.1", "::1")
	return d
}

func mustEgress(t *testing.T, cfg connector.EgressConfig) *connector.Egress {
	t.Helper()
	e, err := connector.NewEgress(cfg)
	if err != nil {
		t.Fatalf("NewEgress: %v", err)
	}
	return e
}

func TestEgressRefusesSynclinesOwnServers(t *testing.T) {
	dns := newDNS()
	dns.set("store.internal", "10.1.2.3")
	dns.set("alias.example.com", "10.1.2.3")
	e := mustEgress(t, connector.EgressConfig{
		// Everything is allowed, which must not matter.
		Allow: []string{"public", "127.0.0.0/8", "::1", "0.0.0.0", "::", "10.0.0.0/8"},
		Protected: []connector.Protected{
			{What: "Syncline's own database", Host: "127.0.0.1", Port: 5432, Database: "syncline"},
			{What: "Syncline's own NATS server", Host: "localhost", Port: 4222},
			{What: "Syncline's own database", Host: "store.internal", Port: 6432, Database: "syncline"},
		},
		Resolver: dns,
	})
	ctx := context.Background()
	for _, tt := range []struct {
		host     string
		port     int
		database string
		want     string
	}{
		{"127.0.0.1", 5432, "syncline", "host 127.0.0.1:5432 is Syncline's own database; endpoints may never point at it"},
		{"localhost", 5432, "syncline", "is Syncline's own database"},
		{"::1", 5432, "syncline", "is Syncline's own database"},
		{"[::1]", 5432, "syncline", "is Syncline's own database"},
		{"0.0.0.0", 5432, "syncline", "is Syncline's own database"},
		{"127.0.0.2", 5432, "syncline", "is Syncline's own database"},
		{"::ffff:127.0.0.1", 5432, "syncline", "is Syncline's own database"},
		{"LOCALHOST.", 4222, "", "is Syncline's own NATS server"},
		{"127.0.0.1", 4222, "", "is Syncline's own NATS server"},
		// A connector that names no database may not talk to the database server at all.
		{"127.0.0.1", 5432, "", "is Syncline's own database"},
		{"alias.example.com", 6432, "syncline", "host alias.example.com:6432 (10.1.2.3) is Syncline's own database"},
		{"10.1.2.3", 6432, "syncline", "is Syncline's own database"},
	} {
		t.Run(tt.host+"/"+strconv.Itoa(tt.port)+"/"+tt.database, func(t *testing.T) {
			err := e.CheckDatabase(ctx, "acme", tt.host, tt.port, tt.database)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckDatabase = %v, want %q", err, tt.want)
			}
		})
	}
	// Another database on the same server, another port on the same host: the tenant's.
	if err := e.CheckDatabase(ctx, "acme", "localhost", 5432, "acme_erp"); err != nil {
		t.Errorf("another database on Syncline's server: %v", err)
	}
	if err := e.CheckAddr(ctx, "acme", "127.0.0.1", 5433); err != nil {
		t.Errorf("another port: %v", err)
	}
}

func TestEgressAllowRules(t *testing.T) {
	dns := newDNS()
	dns.set("erp.acme.internal", "10.0.0.5")
	dns.set("shop.example.com", "93.184.215.14")
	dns.set("sneaky.example.com", "169.254.169.254")
	dns.set("mixed.example.com", "93.184.215.14", "10.0.0.9")
	tenants := map[string]connector.TenantEgress{
		"acme": {Allow: []string{"10.0.0.5:5432", "*.acme.internal"}},
	}
	e := mustEgress(t, connector.EgressConfig{Resolver: dns, Allow: []string{"public", "sneaky.example.com"}}).
		WithTenants(func(t string) connector.TenantEgress { return tenants[t] })
	ctx := context.Background()
	const policy = "is not in the egress policy; the platform operator allows it with SYNCLINE_EGRESS_ALLOW or the tenant's spec.egress.allow"
	for _, tt := range []struct {
		tenant, host string
		port         int
		want         string // "" allowed
	}{
		{"acme", "93.184.215.14", 443, ""},
		{"acme", "shop.example.com", 443, ""},
		{"acme", "mixed.example.com", 443, ""},
		{"globex", "10.0.0.5", 5432, "host 10.0.0.5:5432 (a private address) " + policy},
		{"acme", "10.0.0.5", 5432, ""},
		{"acme", "10.0.0.5", 22, "host 10.0.0.5:22 (a private address) " + policy},
		{"acme", "erp.acme.internal", 5432, ""},
		{"globex", "erp.acme.internal", 5432, "host erp.acme.internal:5432 (10.0.0.5) (a private address) " + policy},
		{"acme", "127.0.0.1", 5432, "(a loopback address) " + policy},
		{"acme", "localhost", 5432, "(a loopback address) " + policy},
		{"acme", "169.254.169.254", 80, "host 169.254.169.254:80 (a cloud metadata address) " + policy},
		{"acme", "fd00:ec2::254", 80, "(a cloud metadata address)"},
		{"acme", "169.254.1.1", 80, "(a link-local address)"},
		{"acme", "fe80::1", 80, "(a link-local address)"},
		{"acme", "100.100.100.200", 80, "(a reserved address)"},
		{"acme", "64:ff9b::a00:5", 80, "(a reserved address)"},
		// A name rule does not open the metadata service, whatever the name resolves to.
		{"acme", "sneaky.example.com", 80, "(a cloud metadata address)"},
		{"acme", "/var/run/postgresql", 5432, "unix socket /var/run/postgresql: endpoints reach network hosts only"},
		{"acme", "nowhere.example.com", 5432, "looking up host nowhere.example.com"},
	} {
		t.Run(tt.tenant+"/"+tt.host+":"+strconv.Itoa(tt.port), func(t *testing.T) {
			err := e.CheckAddr(ctx, tt.tenant, tt.host, tt.port)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckAddr = %v, want allowed", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("CheckAddr = %v, want %q", err, tt.want)
			}
		})
	}
	// An operator may open the metadata service on purpose, with an address rule.
	open := mustEgress(t, connector.EgressConfig{Resolver: dns, Allow: []string{"169.254.169.254:80"}})
	if err := open.CheckAddr(ctx, "acme", "169.254.169.254", 80); err != nil {
		t.Errorf("an address rule for the metadata service: %v", err)
	}
	none := mustEgress(t, connector.EgressConfig{Resolver: dns, Allow: []string{"none"}})
	if err := none.CheckAddr(ctx, "acme", "93.184.215.14", 443); err == nil {
		t.Errorf("allow none let a public address through")
	}
}

func TestEgressRules(t *testing.T) {
	for _, good := range []string{"public", "10.0.0.5", "10.0.0.5:5432", "10.0.0.0/8", "10.0.0.0/8:5432", "[fd00::/8]:5432", "::1", "[::1]:5432", "erp.example.com", "erp.example.com:5432", "*.example.com"} {
		if err := connector.CheckEgressRule(good); err != nil {
			t.Errorf("CheckEgressRule(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"", "10.0.0.5:0", "10.0.0.5:99999", "erp.example.com:http", "http://erp.example.com", "a b"} {
		if err := connector.CheckEgressRule(bad); err == nil {
			t.Errorf("CheckEgressRule(%q) = nil, want an error", bad)
		}
	}
	if _, err := connector.NewEgress(connector.EgressConfig{Allow: []string{"10.0.0.5:x"}}); err == nil || !strings.Contains(err.Error(), "SYNCLINE_EGRESS_ALLOW") {
		t.Errorf("NewEgress with a bad rule = %v, want an error naming the setting", err)
	}
}

func TestEgressPaths(t *testing.T) {
	data := t.TempDir()
	files := filepath.Join(data, "tenants")
	for _, dir := range []string{filepath.Join(files, "acme"), filepath.Join(files, "globex"), filepath.Join(data, "elsewhere")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	store := filepath.Join(data, "controlplane.db")
	if err := os.WriteFile(store, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(data, "elsewhere"), filepath.Join(files, "acme", "out")))
	must(os.Symlink(store, filepath.Join(files, "acme", "store.db")))
	must(os.Link(store, filepath.Join(files, "acme", "hard.db")))
	own := filepath.Join(data, "own")
	must(os.MkdirAll(own, 0o700))
	e := mustEgress(t, connector.EgressConfig{
		Files: files,
		Protected: []connector.Protected{
			{What: "Syncline's own store", Path: store},
			{What: "Syncline's own NATS files", Path: filepath.Join(data, "nats")},
		},
	}).WithTenants(func(t string) connector.TenantEgress {
		if t == "initech" {
			return connector.TenantEgress{Folder: own}
		}
		return connector.TenantEgress{}
	})
	for _, tt := range []struct {
		tenant, path string
		want         string // an error, or the resolved path with "ok:"
	}{
		{"acme", "erp.db", "ok:" + filepath.Join(files, "acme", "erp.db")},
		{"acme", "sub/erp.db", "ok:" + filepath.Join(files, "acme", "sub", "erp.db")},
		{"acme", filepath.Join(files, "acme", "erp.db"), "ok:" + filepath.Join(files, "acme", "erp.db")},
		{"initech", "erp.db", "ok:" + filepath.Join(own, "erp.db")},
		{"acme", "../globex/erp.db", `has a ".."`},
		{"acme", "sub/../erp.db", `has a ".."`},
		{"acme", filepath.Join(files, "globex", "erp.db"), "is outside the tenant's folder"},
		{"acme", "/etc/passwd", "is outside the tenant's folder"},
		{"acme", "out/erp.db", "leads out of the tenant's folder through a symbolic link"},
		{"acme", "../../controlplane.db", "is Syncline's own store; endpoints may never point at it"},
		{"acme", store, "is Syncline's own store"},
		{"acme", data + "//./controlplane.db", "is Syncline's own store"},
		{"acme", "store.db", "is Syncline's own store"},
		{"acme", "hard.db", "is Syncline's own store"},
		{"acme", filepath.Join(data, "nats", "jetstream", "x"), "is Syncline's own NATS files"},
		{"acme", "", "no file given"},
	} {
		t.Run(tt.tenant+"/"+tt.path, func(t *testing.T) {
			got, err := e.ResolvePath(tt.tenant, tt.path)
			if ok, found := strings.CutPrefix(tt.want, "ok:"); found {
				if err != nil || got != ok {
					t.Fatalf("ResolvePath = %q, %v; want %q", got, err, ok)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ResolvePath = %q, %v; want an error with %q", got, err, tt.want)
			}
		})
	}
	off := mustEgress(t, connector.EgressConfig{})
	if err := off.CheckPath("acme", "erp.db"); err == nil || !strings.Contains(err.Error(), "SYNCLINE_EGRESS_FILES") {
		t.Errorf("CheckPath without a files folder = %v, want one naming SYNCLINE_EGRESS_FILES", err)
	}
}

// TestDialerChecksAtConnectTime proves that the dialer checks the address it connects to, not
// the one a check saw before: a name that resolved to a public address when the endpoint was
// checked and to loopback when the target connects is refused.
func TestDialerChecksAtConnectTime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	dns := newDNS()
	dns.set("erp.example.com", "93.184.215.14")
	ctx := context.Background()
	e := mustEgress(t, connector.EgressConfig{Resolver: dns})
	if err := e.CheckAddr(ctx, "acme", "erp.example.com", port); err != nil {
		t.Fatalf("CheckAddr of a public host: %v", err)
	}
	dns.set("erp.example.com", "127.0.0.1")
	_, err = e.Dialer("acme", "").DialContext(ctx, "tcp", net.JoinHostPort("erp.example.com", strconv.Itoa(port)))
	if err == nil || !strings.Contains(err.Error(), "(a loopback address) is not in the egress policy") {
		t.Fatalf("dialing a host that now resolves to loopback = %v, want a refusal", err)
	}

	allowed := mustEgress(t, connector.EgressConfig{Resolver: dns, Allow: []string{"127.0.0.1:" + strconv.Itoa(port)}})
	for _, addr := range []string{ln.Addr().String(), net.JoinHostPort("erp.example.com", strconv.Itoa(port))} {
		c, err := allowed.Dialer("acme", "").DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("dialing allowed %s: %v", addr, err)
		}
		_ = c.Close()
	}
	if _, err := allowed.Dialer("acme", "").DialContext(ctx, "unix", "/var/run/postgresql/.s.PGSQL.5432"); err == nil {
		t.Errorf("dialing a unix socket succeeded")
	}
	protected := mustEgress(t, connector.EgressConfig{Resolver: dns, Allow: []string{"127.0.0.1"},
		Protected: []connector.Protected{{What: "Syncline's own NATS server", Host: "127.0.0.1", Port: port}}})
	_, err = protected.Dialer("acme", "").DialContext(ctx, "tcp", net.JoinHostPort("localhost", strconv.Itoa(port)))
	if err == nil || !strings.Contains(err.Error(), "is Syncline's own NATS server") {
		t.Fatalf("dialing Syncline's own server = %v, want a refusal", err)
	}
}

// TestEgressRefusesWhatItCannotTellApart: while the host of one of Syncline's
// own servers cannot be looked up, every address on its port is refused, saying
// why, and other ports are not.
func TestEgressRefusesWhatItCannotTellApart(t *testing.T) {
	dns := newDNS()
	e := mustEgress(t, connector.EgressConfig{Resolver: dns, Allow: []string{"public"},
		Protected: []connector.Protected{{What: "Syncline's own database", Host: "store.internal", Port: 5432, Database: "syncline"}}})
	ctx := context.Background()
	err := e.CheckDatabase(ctx, "acme", "93.184.215.14", 5432, "syncline")
	if err == nil || !strings.Contains(err.Error(), "cannot be told apart from Syncline's own database on port 5432 now (looking up store.internal") {
		t.Fatalf("CheckDatabase while the store's host cannot be looked up = %v, want a refusal saying so", err)
	}
	if err := e.CheckAddr(ctx, "acme", "93.184.215.14", 443); err != nil {
		t.Fatalf("another port: %v", err)
	}
	dns.set("store.internal", "10.1.2.3")
	if err := e.CheckDatabase(ctx, "acme", "93.184.215.14", 5432, "syncline"); err != nil {
		t.Fatalf("once the store's host is known: %v", err)
	}
}
