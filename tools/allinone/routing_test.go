package allinone_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/stage"
)

// publishRaw publishes an order envelope naming tenant, endpoint and
// entity on subject.
func publishRaw(t *testing.T, e *env, subject, tenant, endpoint, entity, key string) {
	t.Helper()
	publishNamed(t, e.js, subject, tenant, endpoint, entity, key, order(42, "paid"))
}

// TestEnvelopeMustAgreeWithItsSubject: an envelope for tenant globex
// published on acme's subject (or naming another endpoint or entity than its
// subject) reaches no flow: it is dead-lettered in acme's log, the publisher's,
// and globex's target and log never see it.
func TestEnvelopeMustAgreeWithItsSubject(t *testing.T) {
	e, tokens := twoTenants(t, 1)
	publishRaw(t, e, "ingest.acme.shop.order", "globex", "shop", "order", "spoofed-tenant")
	publishRaw(t, e, "ingest.acme.shop.order", "acme", "erp", "order", "spoofed-endpoint")
	publishRaw(t, e, "ingest.acme.shop.customer", "acme", "shop", "order", "spoofed-entity")
	// Subjects that are no route at all, too few tokens or too many: each is
	// read and dead-lettered, none left unread in the stream. A last token
	// that is no bucket number is a bucket all the same: the stream maps it
	// to a partition, and the event goes on.
	publishRaw(t, e, "ingest.acme.shop", "acme", "shop", "order", "short-subject")
	publishRaw(t, e, "ingest.acme.shop.order.7.extra", "acme", "shop", "order", "long-subject")
	publishRaw(t, e, "ingest.acme.shop.order.notabucket", "acme", "shop", "order", "word-bucket")
	e.publish(ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "marker", Version: 1, Payload: order(8, "paid")})

	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "failure"})
		if len(recs) != 5 {
			return fmt.Sprintf("acme has %d failure records, want the 5 mismatched events: %s", len(recs), codes(recs))
		}
		if ok := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "word-bucket", Status: "success"}); len(ok) != 1 {
			return fmt.Sprintf("the event on a word for a bucket has %d successes in acme's log, want 1", len(ok))
		}
		for _, r := range recs {
			if r.Code != stage.CodeRouteMismatch || r.Reason == "" {
				return fmt.Sprintf("record %s: code %q reason %q, want %s with a reason", r.RemoteId, r.Code, r.Reason, stage.CodeRouteMismatch)
			}
		}
		return ""
	})
	eventually(t, 30*time.Second, func() string {
		if len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex", RemoteId: "marker"})) != 1 {
			return "globex's marker is not logged yet"
		}
		return ""
	})
	if recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex", RemoteId: "spoofed-tenant"}); len(recs) != 0 {
		t.Errorf("globex's log shows the event acme published in its name: %v", recs)
	}
	if _, ok := e.rows("globex_orders")["spoofed-tenant"]; ok {
		t.Error("the event acme published in globex's name was written to globex's target")
	}
	if _, ok := e.rows("acme_orders")["spoofed-tenant"]; ok {
		t.Error("the mismatched event was written to acme's target")
	}
	// The publisher sees its own dead letters; the tenant it named does not.
	letters, err := e.deadLettersAs(tokens["acme"]).ListDeadLetters(context.Background(), &eventlogv1.ListDeadLettersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters.Letters) != 5 {
		t.Errorf("acme lists %d dead letters, want 5", len(letters.Letters))
	}
	letters, err = e.deadLettersAs(tokens["globex"]).ListDeadLetters(context.Background(), &eventlogv1.ListDeadLettersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters.Letters) != 0 {
		t.Errorf("globex lists %d dead letters of events it never published", len(letters.Letters))
	}
	if got := metric(t, e, "syncline_stage_unrouted_total", "code", stage.CodeRouteMismatch); got != 5 {
		t.Errorf("syncline_stage_unrouted_total{code=%q} = %v, want 5", stage.CodeRouteMismatch, got)
	}
}

// TestUnknownTenantIsTheAdmins: an event for a tenant that does not exist is
// dead-lettered with its own code, shown to the admin token when it names no
// tenant (in the log and the dead letters), never to a tenant's token, and
// counted.
func TestUnknownTenantIsTheAdmins(t *testing.T) {
	e, tokens := twoTenants(t, 1)
	publishRaw(t, e, "ingest.nobody.shop.order", "nobody", "shop", "order", "lost")

	var recs []*eventlogv1.LogRecord
	eventually(t, 30*time.Second, func() string {
		recs = e.logRecords(&eventlogv1.QueryLogsRequest{})
		if len(recs) != 1 {
			return fmt.Sprintf("the admin's log of events for no tenant has %d records, want 1", len(recs))
		}
		return ""
	})
	if r := recs[0]; r.Code != stage.CodeUnknownTenant || r.Status != "failure" || r.RemoteId != "lost" {
		t.Errorf("record %+v, want a failure %s of remote id lost", r, stage.CodeUnknownTenant)
	}
	letters, err := e.deadLettersAs(e.in.AdminToken()).ListDeadLetters(context.Background(), &eventlogv1.ListDeadLettersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters.Letters) != 1 || letters.Letters[0].Code != stage.CodeUnknownTenant {
		t.Errorf("the admin's dead letters of events for no tenant: %v, want the one unknown_tenant letter", letters.Letters)
	}
	for tenant, token := range tokens {
		resp, err := e.logsAs(token).QueryLogs(context.Background(), &eventlogv1.QueryLogsRequest{RemoteId: "lost"})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Records) != 0 {
			t.Errorf("tenant %s sees the event published for a tenant that does not exist", tenant)
		}
	}
	if got := metric(t, e, "syncline_stage_unrouted_total", "code", stage.CodeUnknownTenant); got != 1 {
		t.Errorf("syncline_stage_unrouted_total{code=%q} = %v, want 1", stage.CodeUnknownTenant, got)
	}
}

func (e *env) deadLettersAs(token string) eventlogv1connect.DeadLetterServiceClient {
	return eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(token)))
}

// TestEventsStraightToNATSAreChecked: an envelope a program publishes to
// NATS itself, past pkg/ingest's checks, gets the same checks at the
// mapper: a key or record Syncline cannot carry is dead-lettered alone,
// with the reason, and a key the flow takes from the record is checked as
// a published one is. The good events published with them go through.
func TestEventsStraightToNATSAreChecked(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	e.applyOrders("acme", "orders", resourceOf(t, "Flow", "acme", "products", map[string]any{
		"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "product", "duplicates": "update", "keyField": "sku",
		"mapping": map[string]any{"fields": map[string]any{"sku": "source.sku"}, "exclude": []any{"*"}}}))
	bad := map[string][]byte{
		"nan":        []byte(`{"number":"SO-1","status":"paid","total":NaN}`),
		"not-utf8":   append([]byte(`{"number":"SO-2","status":"`), 0xff, '"', '}'),
		"long-digit": []byte(`{"number":"SO-3","status":"paid","total":123456789012345678901234567890}`),
		"deep":       []byte(strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100)),
	}
	for key, payload := range bad {
		publishEnvelope(t, e.js, "ingest.acme.shop.order", key, payload)
	}
	publishEnvelope(t, e.js, "ingest.acme.shop.order", "nul\x00key", order(4, "paid"))
	publishEnvelope(t, e.js, "ingest.acme.shop.order", strings.Repeat("k", 300), order(5, "paid"))
	publishNamed(t, e.js, "ingest.acme.shop.product", "acme", "shop", "product", "p1", []byte(`{"sku":"42\u0000"}`))
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "good", Version: 1, Payload: order(9, "paid")})

	eventually(t, 30*time.Second, func() string {
		if _, ok := e.rows("orders")["good"]; !ok {
			return "the good order published after the bad ones is not in the target"
		}
		fails := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "failure"})
		if len(fails) != len(bad)+3 {
			return fmt.Sprintf("acme has %d failure records, want %d: %s", len(fails), len(bad)+3, codes(fails))
		}
		for _, r := range fails {
			if r.Code != stage.CodeMalformed && r.Code != stage.CodePayloadNotJSON || r.Reason == "" {
				return fmt.Sprintf("record of key %q: %s %q, want refused as malformed with the reason", r.RemoteId, r.Code, r.Reason)
			}
		}
		return ""
	})
	if rows := e.rows("orders"); len(rows) != 1 {
		t.Errorf("the target holds %v, want the good order only", keys(rows))
	}
}
