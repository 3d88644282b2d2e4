package allinone_test

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/services/eventlog/eventlog"
)

func erpEndpoint(t *testing.T, tenant, driver, dsn string) *controlplanev1.Resource {
	return resourceOf(t, "Endpoint", tenant, "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
		"driver": driver, "dsn": dsn, "table": "orders", "create_table": true}})
}

// TestEndpointsCannotReachSyncline: a tenant cannot point an endpoint at the
// instance's own stores (SQLite files or its PostgreSQL database, however
// spelt), its NATS server, or another tenant's folder; the apply is refused
// and says why.
func TestEndpointsCannotReachSyncline(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			storeURL := b.storeURL(t)
			e := start(t, options{dir: dir, storeURL: storeURL})
			ctx := context.Background()
			if _, err := e.resource.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
				resourceOf(t, "Tenant", "", "acme", map[string]any{}),
				resourceOf(t, "Tenant", "", "globex", map[string]any{}),
			}}); err != nil {
				t.Fatal(err)
			}
			nats, err := url.Parse(e.in.NATSURL())
			if err != nil {
				t.Fatal(err)
			}
			type refusal struct{ driver, dsn, want string }
			refusals := []refusal{
				{"postgres", "postgres://erp@" + nats.Host + "/erp", "is Syncline's own NATS server; endpoints may never point at it"},
				{"postgres", "postgres://erp@localhost:" + nats.Port() + "/erp", "is Syncline's own NATS server"},
				{"sqlite", filepath.Join(dir, "tenants", "globex", "erp.db"), "is outside the tenant's folder"},
				{"sqlite", filepath.Join(dir, "admin-token"), "is Syncline's own data"},
			}
			if storeURL == "" {
				refusals = append(refusals,
					refusal{"sqlite", "../../controlplane.db", "file ../../controlplane.db is Syncline's own store; endpoints may never point at it"},
					refusal{"sqlite", filepath.Join(dir, "ledger.db"), "is Syncline's own store"},
					refusal{"sqlite", "file:" + dir + "/./eventlog.db?_pragma=journal_mode(WAL)", "is Syncline's own store"})
			} else {
				u, err := url.Parse(storeURL)
				if err != nil {
					t.Fatal(err)
				}
				db := strings.TrimPrefix(u.Path, "/")
				refusals = append(refusals,
					refusal{"postgres", storeURL, "is Syncline's own database; endpoints may never point at it"},
					refusal{"postgres", "postgres://erp@localhost:" + u.Port() + "/" + db, "is Syncline's own database"},
					refusal{"postgres", "postgres://erp@[::1]:" + u.Port() + "/" + db + "?sslmode=disable", "is Syncline's own database"},
					refusal{"postgres", "postgres://erp@93.184.215.14:5432," + u.Host + "/" + db, "is Syncline's own database"})
			}
			for _, r := range refusals {
				_, err := e.resource.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{erpEndpoint(t, "acme", r.driver, r.dsn)}})
				if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "Endpoint acme/erp: spec.settings.dsn: ") || !strings.Contains(err.Error(), r.want) {
					t.Errorf("endpoint with DSN %s: %v, want a refusal with %q", r.dsn, err, r.want)
				}
			}
		})
	}
}

// rebinding answers erp.example.com with a public address for the first
// lookup, the control plane's check, and with loopback after that, as a
// name server that the tenant controls could.
type rebinding struct {
	mu      sync.Mutex
	lookups int
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
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// TestConnectorChecksTheEgressPolicyWhenItConnects: an endpoint whose host
// resolved to a public address when it was applied and resolves to loopback
// when the connector pushes is refused by the connector: the flow pauses,
// the tenant is told why, and nothing is written.
func TestConnectorChecksTheEgressPolicyWhenItConnects(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, resolver: &rebinding{}})
	hook := newWebhook(t)
	// The harness allows loopback for the test server's port only.
	const dsn = "postgres://erp@erp.example.com:5433/erp"
	_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		tenantWithAlerts(t, "acme", hook.srv.URL, "1s"),
		resourceOf(t, "Integrator", "acme", "sync", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		erpEndpoint(t, "acme", "postgres", dsn),
		resourceOf(t, "Flow", "acme", "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order",
			"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number"}, "exclude": []any{"*"}}}),
	}})
	if err != nil {
		t.Fatalf("applying an endpoint whose host resolves to a public address: %v", err)
	}
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1", Version: 1, Payload: order(1, "paid")})
	var paused eventlog.FlowChange
	eventually(t, 60*time.Second, func() string {
		for _, a := range hook.got() {
			for _, c := range a.Flows {
				if c.State == eventlog.FlowPaused {
					paused = c
					return ""
				}
			}
		}
		return "no alert that the orders flow is paused"
	})
	if !strings.Contains(paused.Reason, "host erp.example.com:5433 (127.0.0.1) (a loopback address) is not in the egress policy") {
		t.Errorf("the pause's reason %q does not say the egress policy refused the rebound host", paused.Reason)
	}
	if got := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "orders"}); len(got) != 0 {
		t.Errorf("the refused flow's events were logged (%s); they are held", actions(got))
	}
}
