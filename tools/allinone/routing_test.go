package allinone_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/stage"
)

// publishRaw publishes an envelope naming tenant, endpoint and entity on
// subject, whatever the subject says, as a hostile publisher might.
func publishRaw(t *testing.T, e *env, subject, tenant, endpoint, entity, key string) {
	t.Helper()
	env := &eventv1.Envelope{
		SchemaVersion: envelope.SchemaVersion, EventId: envelope.NewEventID(), Tenant: tenant,
		SourceEndpoint: endpoint, Entity: entity, Operation: eventv1.Operation_OPERATION_UPSERT,
		SourceKey: key, SourceVersion: 1, Payload: order(42, "paid"),
	}
	data, err := envelope.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	m.Header.Set(bus.HeaderMsgID, env.EventId)
	m.Data = data
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
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
	e.publish(ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "marker", Version: 1, Payload: order(8, "paid")})

	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "failure"})
		if len(recs) != 3 {
			return fmt.Sprintf("acme has %d failure records, want the 3 mismatched events: %s", len(recs), codes(recs))
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
	if len(letters.Letters) != 3 {
		t.Errorf("acme lists %d dead letters, want 3", len(letters.Letters))
	}
	letters, err = e.deadLettersAs(tokens["globex"]).ListDeadLetters(context.Background(), &eventlogv1.ListDeadLettersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters.Letters) != 0 {
		t.Errorf("globex lists %d dead letters of events it never published", len(letters.Letters))
	}
	if got := metric(t, e, "syncline_stage_unrouted_total", "code", stage.CodeRouteMismatch); got != 3 {
		t.Errorf("syncline_stage_unrouted_total{code=%q} = %v, want 3", stage.CodeRouteMismatch, got)
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
