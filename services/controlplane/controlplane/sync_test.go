package controlplane_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/poll"
)

// polledOrders is a valid set of resources whose shop is a rest endpoint polled for orders.
func polledOrders(t *testing.T, schedule map[string]any, source map[string]any) []*controlplanev1.Resource {
	rs := orders(t, map[string]any{"n": "source.n"})
	entity := map[string]any{"path": "/orders"}
	if source != nil {
		entity["source"] = source
	}
	rs[2] = res(t, "Endpoint", "acme", "shop", map[string]any{"type": "rest", "description": "the webshop's API",
		"settings": map[string]any{"base_url": "http://127.0.0.1:1", "entities": map[string]any{"order": entity}}})
	rs[4].Spec.Fields["schedule"] = mustValue(t, schedule)
	return rs
}

func mustValue(t *testing.T, m map[string]any) *structpb.Value {
	t.Helper()
	v, err := structpb.NewValue(m)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPolledFlowSyncAndStatus(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	source := map[string]any{"changed_field": "updatedAt", "since_param": "updatedAt_gte", "sort": map[string]any{"_sort": "updatedAt,id"}}

	// A polling schedule on an entity the endpoint cannot be polled for is refused.
	_, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: polledOrders(t, map[string]any{"mode": "interval", "every": "1m"}, nil)})
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition || !strings.Contains(ce.Message(), `cannot be polled for "order"`) {
		t.Fatalf("a schedule on an entity without source settings: %v, want refused saying it cannot be polled", err)
	}

	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: polledOrders(t, map[string]any{"mode": "cron", "cron": "*/5 * * * *", "timezone": "Europe/Amsterdam"}, source)}); err != nil {
		t.Fatal(err)
	}
	waitFlow(t, f, 1)
	if fl := f.flows.Get("acme", "orders"); !fl.Polled() || fl.Schedule.Cron != "*/5 * * * *" || fl.Schedule.Timezone != "Europe/Amsterdam" {
		t.Fatalf("compiled flow's schedule = %+v, want the cron schedule", fl.Schedule)
	}

	resp, err := f.client.SyncFlow(ctx, &controlplanev1.SyncFlowRequest{Tenant: "acme", Flow: "orders", FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Endpoint != "shop" || resp.Entity != "order" || resp.RequestedAt == nil {
		t.Fatalf("SyncFlow answered %+v", resp)
	}
	store := poll.NewStore(f.js, 1)
	src := poll.Source{Tenant: "acme", Endpoint: "shop", Entity: "order"}
	req, err := store.SyncRequested(ctx, src)
	if err != nil || !req.FromStart || !req.At.Equal(resp.RequestedAt.AsTime()) {
		t.Fatalf("the request stored for the connector: %+v %v", req, err)
	}

	// The status shows what the connector stored of the source's polls.
	started := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := store.Put(ctx, src, poll.State{Cursor: "rest1.abc", Started: started, Finished: started.Add(2 * time.Second),
		Outcome: poll.OutcomeFailed, Error: "shop answered 502", Changes: 3, Total: 40, Next: started.Add(5 * time.Minute)}, 0); err != nil {
		t.Fatal(err)
	}
	list, err := f.client.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Flow", Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	p := list.Resources[0].GetStatus().GetPolls()
	if p.GetCursor() != "rest1.abc" || p.GetOutcome() != "failed" || p.GetError() != "shop answered 502" || p.GetChanges() != 3 ||
		p.GetTotal() != 40 || !p.GetStarted().AsTime().Equal(started) || !p.GetNext().AsTime().Equal(started.Add(5*time.Minute)) {
		t.Fatalf("the flow's polls in its status = %+v", p)
	}
}

// TestEndpointTestChecksAPolledSource: `syncline endpoint test` of a polled endpoint reads
// from it as its source would, besides checking it as a target: an API whose target side
// answers and whose feed does not fails the check, naming the entity.
func TestEndpointTestChecksAPolledSource(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/orders" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("[]"))
			return
		}
		http.NotFound(w, r)
	}))
	defer api.Close()
	source := map[string]any{"path": "/feed", "changed_field": "updatedAt", "since_param": "updatedAt_gte", "sort": map[string]any{"_sort": "updatedAt,id"}}
	rs := polledOrders(t, map[string]any{"mode": "interval", "every": "1m"}, source)
	rs[0] = res(t, "Tenant", "", "acme", map[string]any{"egress": map[string]any{"allow": []any{strings.TrimPrefix(api.URL, "http://")}}})
	rs[2].Spec.Fields["settings"].GetStructValue().Fields["base_url"] = structpb.NewStringValue(api.URL)
	if _, err := f.client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatal(err)
	}
	resp, err := f.client.TestEndpoint(ctx, &controlplanev1.TestEndpointRequest{Tenant: "acme", Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Ok || !strings.Contains(resp.Message, "entity order") || !strings.Contains(resp.Message, "404") {
		t.Fatalf("testing a polled source whose feed is missing: %+v, want a failure naming the entity and the 404", resp)
	}
}
