package allinone_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	ingestv1 "github.com/syncline/syncline/pkg/api/syncline/ingest/v1"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/stage"
)

// twoTenants starts an instance with the orders flow for tenants acme and
// globex, publishes n orders for each, waits until both logs hold them, and
// returns each tenant's integrator token.
func twoTenants(t *testing.T, n int) (*env, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	tokens := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		e.applyOrders(tenant, tenant+"_orders")
		rot, err := e.resource.RotateToken(context.Background(), &controlplanev1.RotateTokenRequest{Tenant: tenant, Integrator: "shop-to-erp"})
		if err != nil {
			t.Fatal(err)
		}
		tokens[tenant] = rot.Token
		changes := make([]ingest.Change, n)
		for i := range changes {
			changes[i] = ingest.Change{Tenant: tenant, Endpoint: "shop", Entity: "order", Key: fmt.Sprint(i), Version: 1, Payload: order(i, "paid")}
		}
		e.publish(changes...)
	}
	for _, tenant := range []string{"acme", "globex"} {
		eventually(t, 30*time.Second, func() string {
			if got := len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: tenant})); got != n {
				return fmt.Sprintf("tenant %s has %d log records, want %d", tenant, got, n)
			}
			return ""
		})
	}
	return e, tokens
}

func (e *env) logsAs(token string) eventlogv1connect.LogServiceClient {
	return eventlogv1connect.NewLogServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(token)))
}

// TestLogQueriesStayInTheirTenant: an integrator token reads its own
// tenant's API log and nothing of another's, and a revoked token reads
// nothing.
func TestLogQueriesStayInTheirTenant(t *testing.T) {
	e, tokens := twoTenants(t, 5)
	ctx := context.Background()
	acme := e.logsAs(tokens["acme"])
	resp, err := acme.QueryLogs(ctx, &eventlogv1.QueryLogsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Records) != 5 {
		t.Errorf("acme's token reads %d records of its own tenant, want 5", len(resp.Records))
	}
	for _, r := range resp.Records {
		if r.Tenant != "acme" {
			t.Errorf("acme's token reads a record of tenant %s", r.Tenant)
		}
	}
	_, err = acme.QueryLogs(ctx, &eventlogv1.QueryLogsRequest{Tenant: "globex"})
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("acme's token querying globex's log: %v, want PermissionDenied", err)
	}
	if _, err := e.resource.RevokeToken(ctx, &controlplanev1.RevokeTokenRequest{Tenant: "acme", Integrator: "shop-to-erp"}); err != nil {
		t.Fatal(err)
	}
	_, err = acme.QueryLogs(ctx, &eventlogv1.QueryLogsRequest{})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("a revoked token querying the log: %v, want Unauthenticated", err)
	}
}

// TestDeleteTenantErasesEverything: deleting a tenant removes its
// resources, tokens, ledger, API log, dead letters and stream messages, says
// how many of each, and leaves the other tenant whole.
func TestDeleteTenantErasesEverything(t *testing.T) {
	e, tokens := twoTenants(t, 20)
	ctx := context.Background()
	// A dead letter for acme: a payload that is not JSON.
	publishEnvelope(t, e.js, bus.IngestSubject("acme", "shop", "order", "bad"), "bad", []byte(`"just a string"`))
	eventually(t, 30*time.Second, func() string {
		if n := len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "failure"})); n != 1 {
			return fmt.Sprintf("%d failure records, want the dead letter's 1", n)
		}
		return ""
	})

	resp, err := e.resource.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Tenant", Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	removed := map[string]int64{}
	for _, r := range resp.Removed {
		removed[r.What] = r.Count
	}
	for what, want := range map[string]int64{"Tenant": 1, "Integrator": 1, "Endpoint": 2, "Flow": 1, "token": 1, "ledger entries": 20, "log records": 21, "dead letters": 1} {
		if removed[what] != want {
			t.Errorf("removed %d %s, want %d (all: %v)", removed[what], what, want, removed)
		}
	}
	if removed["messages"] < 21 {
		t.Errorf("removed %d stream messages, want at least the 21 published", removed["messages"])
	}

	// Nothing of acme is left anywhere; globex is whole.
	if recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"}); len(recs) != 0 {
		t.Errorf("acme's API log still holds %d records", len(recs))
	}
	if recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex"}); len(recs) != 20 {
		t.Errorf("globex's API log holds %d records, want 20", len(recs))
	}
	ledger := rowsByTenant(t, filepath.Join(e.dir, "ledger.db"), "SELECT tenant, count(*) FROM ledger_entries GROUP BY tenant")
	if ledger["acme"] != 0 || ledger["globex"] != 20 {
		t.Errorf("ledger entries by tenant: %v, want none of acme and 20 of globex", ledger)
	}
	for _, name := range []string{bus.StreamIngest, bus.StreamFlow, bus.StreamPush, bus.StreamAudit, bus.StreamDeadLetter} {
		if n := subjectCount(t, e.js, name, "acme"); n != 0 {
			t.Errorf("stream %s still holds %d messages of acme", name, n)
		}
	}
	if n := subjectCount(t, e.js, bus.StreamIngest, "globex"); n != 20 {
		t.Errorf("stream %s holds %d messages of globex, want 20", bus.StreamIngest, n)
	}
	list, err := e.resource.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Tenant"})
	if err != nil || len(list.Resources) != 1 || list.Resources[0].Metadata.Name != "globex" {
		t.Errorf("tenants after the delete: %v, %v; want globex only", list, err)
	}
	if _, err := e.logsAs(tokens["acme"]).QueryLogs(ctx, &eventlogv1.QueryLogsRequest{}); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("the deleted tenant's token: %v, want Unauthenticated", err)
	}
	// An event for the deleted tenant is dead-lettered as for any unknown
	// tenant: in the admin's log, not in a log of the tenant that is gone.
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "late", Version: 1, Payload: order(1, "paid")})
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{RemoteId: "late"})
		if len(recs) != 1 || recs[0].Code != stage.CodeUnknownTenant {
			return fmt.Sprintf("the admin's log of events for no tenant after a late event: %v, want one unknown-tenant failure", recs)
		}
		return ""
	})
	if recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"}); len(recs) != 0 {
		t.Errorf("the deleted tenant acme has log records again: %v", recs)
	}
}

// TestDeletedIntegratorRefusesEvents: an event for a flow of a deleted
// integrator is refused, logged with the reason, and not pushed.
func TestDeletedIntegratorRefusesEvents(t *testing.T) {
	e, _ := twoTenants(t, 3)
	ctx := context.Background()
	if _, err := e.resource.DeleteResource(ctx, &controlplanev1.DeleteResourceRequest{Kind: "Integrator", Tenant: "acme", Name: "shop-to-erp"}); err != nil {
		t.Fatal(err)
	}
	// The stage reaches the data plane within a second.
	time.Sleep(time.Second)
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "after", Version: 1, Payload: order(99, "paid")})
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "after"})
		if len(recs) != 1 || recs[0].Status != "failure" || recs[0].Code != stage.CodeIntegratorDeleted {
			return fmt.Sprintf("log of the event after the delete: %v, want one integrator_deleted failure", recs)
		}
		return ""
	})
	e.driver, e.dsn = "sqlite", tenantFile(t, e.dir, "acme", "erp.db")
	if _, ok := e.rows("acme_orders")["after"]; ok {
		t.Error("an event of a deleted integrator reached the target")
	}
}

func rowsByTenant(t *testing.T, path, query string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	return out
}

// subjectCount counts a tenant's messages in a stream.
func subjectCount(t *testing.T, js jetstream.JetStream, stream, tenant string) int {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("*."+tenant+".>"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// TestPublishStaysInItsTenant: the ingest API takes an integrator's changes
// for its own tenant only.
func TestPublishStaysInItsTenant(t *testing.T) {
	e, tokens := twoTenants(t, 1)
	ctx := context.Background()
	acme := ingestv1connect.NewIngestServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(tokens["acme"])))
	change := func(tenant, key string) *ingestv1.Change {
		return &ingestv1.Change{Tenant: tenant, Endpoint: "shop", Entity: "order", Key: key, Version: 1, Record: string(order(7, "paid"))}
	}
	resp, err := acme.Publish(ctx, &ingestv1.PublishRequest{Changes: []*ingestv1.Change{change("", "via-api")}})
	if err != nil || len(resp.EventIds) != 1 {
		t.Fatalf("publishing to its own tenant: %v, %v", resp, err)
	}
	eventually(t, 30*time.Second, func() string {
		if recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "via-api"}); len(recs) != 1 || recs[0].Action != "created" {
			return fmt.Sprintf("log of the change published over the API: %v, want created", recs)
		}
		return ""
	})
	// Another tenant's: refused, and nothing of the batch is published.
	_, err = acme.Publish(ctx, &ingestv1.PublishRequest{Changes: []*ingestv1.Change{change("acme", "mixed"), change("globex", "intruder")}})
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("publishing to another tenant: %v, want PermissionDenied", err)
	}
	_, err = acme.Publish(ctx, &ingestv1.PublishRequest{Changes: []*ingestv1.Change{{Endpoint: "shop", Entity: "order", Record: `{}`}}})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "change 0") {
		t.Errorf("a change without a key: %v, want InvalidArgument naming change 0", err)
	}
	if _, err := e.resource.RevokeToken(ctx, &controlplanev1.RevokeTokenRequest{Tenant: "acme", Integrator: "shop-to-erp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Publish(ctx, &ingestv1.PublishRequest{Changes: []*ingestv1.Change{change("", "after-revoke")}}); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("publishing with a revoked token: %v, want Unauthenticated", err)
	}
	// A marker published after the refusals, on the same stream: once it is
	// logged, anything the refused calls had let through would be too.
	for _, tenant := range []string{"acme", "globex"} {
		e.publish(ingest.Change{Tenant: tenant, Endpoint: "shop", Entity: "order", Key: "marker", Version: 1, Payload: order(8, "paid")})
		eventually(t, 30*time.Second, func() string {
			if len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: tenant, RemoteId: "marker"})) != 1 {
				return "the marker of tenant " + tenant + " is not logged yet"
			}
			return ""
		})
	}
	for tenant, want := range map[string]int{"acme": 3, "globex": 2} {
		if got := len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: tenant})); got != want {
			t.Errorf("tenant %s has %d log records, want %d: a refused publish got through", tenant, got, want)
		}
	}
}

// TestEventIDsArePerTenant: two tenants whose flows have the same name
// publish an event with the same id, and each is applied in its tenant; the
// ingest API reports an id a tenant uses again instead of dropping the
// change in silence.
func TestEventIDsArePerTenant(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: filepath.Join(dir, "erp.db")})
	ctx := context.Background()
	const id = "0193a5e0-0000-7000-8000-00000000abcd"
	for _, tenant := range []string{"acme", "globex"} {
		e.applyOrders(tenant, "orders")
		e.publish(ingest.Change{EventID: id, Tenant: tenant, Endpoint: "shop", Entity: "order", Key: tenant + "-1", Version: 1, Payload: order(1, "paid")})
	}
	for _, tenant := range []string{"acme", "globex"} {
		eventually(t, 30*time.Second, func() string {
			recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: tenant})
			if len(recs) != 1 || recs[0].EventId != id || recs[0].Action != "created" {
				return fmt.Sprintf("log of tenant %s: %v, want event %s created", tenant, recs, id)
			}
			return ""
		})
	}

	client := ingestv1connect.NewIngestServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))
	resp, err := client.Publish(ctx, &ingestv1.PublishRequest{Changes: []*ingestv1.Change{
		{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "acme-2", Version: 1, Record: string(order(2, "paid"))},
		{EventId: id, Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "acme-3", Version: 1, Record: string(order(3, "paid"))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.EventIds) != 2 || len(resp.Duplicates) != 1 {
		t.Fatalf("answer %v, want two ids and one duplicate", resp)
	}
	if d := resp.Duplicates[0]; d.Index != 1 || d.EventId != id || d.Key != "acme-3" || !strings.Contains(d.Message, "new event id") {
		t.Errorf("duplicate %v, want change 1 (acme-3) with event id %s and what to do", d, id)
	}
}
