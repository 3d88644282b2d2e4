package controlplane_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

func sqlEndpoint(t *testing.T, tenant, driver, dsn string) *controlplanev1.Resource {
	return res(t, "Endpoint", tenant, "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
		"driver": driver, "dsn": dsn, "table": "orders"}})
}

// TestApplyRefusesEndpointsOutsideTheEgressPolicy: an endpoint that points at Syncline's own
// store, database or NATS server, however spelt, at another tenant's folder, at a host the
// policy does not allow or at the metadata service is refused when it is applied, and
// nothing is stored.
func TestApplyRefusesEndpointsOutsideTheEgressPolicy(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	tenants := []*controlplanev1.Resource{
		res(t, "Tenant", "", "acme", map[string]any{}),
		res(t, "Tenant", "", "globex", map[string]any{}),
	}
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: tenants}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(f.data, "cp.db")
	const own = "is Syncline's own database; endpoints may never point at it"
	const policy = "is not in the egress policy; the platform operator allows it with SYNCLINE_EGRESS_ALLOW or the tenant's spec.egress.allow"
	for _, tt := range []struct {
		name, driver, dsn, want string
	}{
		{"its own store up and out", "sqlite", "../../cp.db", "file ../../cp.db is Syncline's own store; endpoints may never point at it"},
		{"its own store by path", "sqlite", store, "is Syncline's own store"},
		{"its own store spelt otherwise", "sqlite", filepath.Join(f.data, "tenants", "..") + "//cp.db", "is Syncline's own store"},
		{"its own store as a file: URI", "sqlite", "file:" + store + "?_pragma=journal_mode(WAL)", "is Syncline's own store"},
		{"another tenant's folder", "sqlite", filepath.Join(f.data, "tenants", "globex", "erp.db"), "is outside the tenant's folder"},
		{"another tenant's folder, relative", "sqlite", "../globex/erp.db", `has a ".."`},
		{"a file elsewhere", "sqlite", "/etc/passwd", "is outside the tenant's folder"},
		{"its own database", "postgres", "postgres://syncline@127.0.0.1:5432/syncline", "spec.settings.dsn: host 127.0.0.1:5432 " + own},
		{"its own database on localhost", "postgres", "postgres://erp@localhost/syncline", own},
		{"its own database on ::1", "postgres", "postgres://erp@[::1]:5432/syncline", own},
		{"its own database on 0.0.0.0", "postgres", "postgres://erp@0.0.0.0/syncline", own},
		{"its own database by the user's name", "postgres", "postgres://syncline@127.0.0.1", own},
		{"its own database percent-encoded", "postgres", "postgres://erp@127.0.0.1/%73yncline", own},
		{"its own database as a host parameter", "postgres", "postgres://erp@93.184.215.14/syncline?host=127.0.0.1", own},
		{"its own database among several hosts", "postgres", "postgres://erp@93.184.215.14:5432,127.0.0.1:5432/syncline", own},
		{"its own NATS server", "postgres", "postgres://erp@localhost:4222/erp", "host localhost:4222 (127.0.0.1) is Syncline's own NATS server"},
		{"a unix socket", "postgres", "postgres://erp@%2Fvar%2Frun%2Fpostgresql/erp", "unix socket /var/run/postgresql"},
		{"a host the policy does not allow", "postgres", "postgres://erp@10.0.0.5:5432/erp", "spec.settings.dsn: host 10.0.0.5:5432 (a private address) " + policy},
		{"another port on an allowed host", "postgres", "postgres://erp@127.0.0.1:6432/erp", "(a loopback address) " + policy},
		{"the metadata service", "postgres", "postgres://erp@169.254.169.254:80/erp", "(a cloud metadata address) " + policy},
		{"the IPv6 metadata service", "postgres", "postgres://erp@[fd00:ec2::254]:80/erp", "(a cloud metadata address)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{sqlEndpoint(t, "acme", tt.driver, tt.dsn)}})
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodePermissionDenied {
				t.Fatalf("Apply = %v, want PermissionDenied", err)
			}
			if !strings.HasPrefix(ce.Message(), "Endpoint acme/erp: spec.settings.dsn: ") || !strings.Contains(ce.Message(), tt.want) {
				t.Fatalf("Apply error = %q, want one on Endpoint acme/erp, spec.settings.dsn, with %q", ce.Message(), tt.want)
			}
			if _, err := f.client.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Endpoint", Tenant: "acme", Name: "erp"}); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("the refused endpoint was stored: %v", err)
			}
		})
	}
	for _, tt := range []struct{ name, driver, dsn string }{
		{"a file in its folder", "sqlite", "erp.db"},
		{"a file in its folder by path", "sqlite", filepath.Join(f.data, "tenants", "acme", "erp.db?_pragma=journal_mode(WAL)")},
		{"another database on the allowed server", "postgres", "postgres://erp@127.0.0.1:5432/acme_erp"},
		{"a public host", "postgres", "postgres://erp@93.184.215.14:5432/erp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{sqlEndpoint(t, "acme", tt.driver, tt.dsn)}}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		})
	}
}

// TestTenantEgressAllowsOneTenantMore: a host the platform does not allow is allowed for the
// tenant whose spec.egress names it, in the same apply, and for no other tenant.
func TestTenantEgressAllowsOneTenantMore(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const dsn = "postgres://erp@10.0.0.5:5432/erp"
	_, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		res(t, "Tenant", "", "acme", map[string]any{"egress": map[string]any{"allow": []any{"10.0.0.5:5432"}}}),
		sqlEndpoint(t, "acme", "postgres", dsn),
		res(t, "Tenant", "", "globex", map[string]any{}),
	}})
	if err != nil {
		t.Fatalf("Apply of a tenant that allows its host: %v", err)
	}
	_, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{sqlEndpoint(t, "globex", "postgres", dsn)}})
	if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "host 10.0.0.5:5432 (a private address) is not in the egress policy") {
		t.Fatalf("Apply of another tenant's endpoint to the host = %v, want a refusal", err)
	}
	// The data plane learns the tenant's rules, for the connector's check.
	for deadline := time.Now().Add(10 * time.Second); len(f.flows.Egress("acme").Allow) != 1; waitTick() {
		if time.Now().After(deadline) {
			t.Fatalf("the data plane sees acme's egress as %+v", f.flows.Egress("acme"))
		}
	}

	_, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		res(t, "Tenant", "", "acme", map[string]any{"egress": map[string]any{"allow": []any{"10.0.0.5:http"}}}),
	}})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "spec.egress.allow[0]") {
		t.Fatalf("Apply of a bad rule = %v, want it refused naming spec.egress.allow[0]", err)
	}
	_, err = f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		res(t, "Tenant", "", "acme", map[string]any{"egress": map[string]any{"folder": "srv/acme"}}),
	}})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "spec.egress.folder") {
		t.Fatalf("Apply of a relative folder = %v, want it refused naming spec.egress.folder", err)
	}
}

// TestApplyRefusesAnotherTenantsDatabase: a tenant cannot point an endpoint at
// the database another tenant's endpoint writes, however it spells the
// server, and the refusal does not name the other tenant.
func TestApplyRefusesAnotherTenantsDatabase(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	_, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		res(t, "Tenant", "", "acme", map[string]any{}),
		res(t, "Tenant", "", "globex", map[string]any{}),
		sqlEndpoint(t, "acme", "postgres", "postgres://acme@127.0.0.1:5432/acme_erp"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, dsn := range []string{
		"postgres://globex@127.0.0.1:5432/acme_erp",
		"postgres://globex@localhost/acme_erp",
		"postgres://globex@127.0.0.1/acme_erp?sslmode=disable",
	} {
		_, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{sqlEndpoint(t, "globex", "postgres", dsn)}})
		if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "spec.settings.dsn: database acme_erp on host") ||
			!strings.Contains(err.Error(), "is another tenant's; endpoints may never point at it") || strings.Contains(err.Error(), "acme/") {
			t.Errorf("globex's endpoint to %s: %v, want a refusal that does not name acme", dsn, err)
		}
	}
	// Its own database on the same server, and acme's endpoint applied again.
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		sqlEndpoint(t, "globex", "postgres", "postgres://globex@127.0.0.1:5432/globex_erp"),
		sqlEndpoint(t, "acme", "postgres", "postgres://acme@127.0.0.1:5432/acme_erp"),
	}}); err != nil {
		t.Fatalf("Apply of each tenant's own database: %v", err)
	}
}
