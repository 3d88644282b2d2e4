package ingest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natstest"
)

func TestPublishValidatesBeforeSending(t *testing.T) {
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	pub := ingest.NewPublisher(js, nil)
	good := ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1", Payload: []byte(`{"n":1}`)}
	tests := []struct {
		name   string
		change func(c ingest.Change) ingest.Change
		want   string
		is     error
	}{
		{"tenant not subject-safe", func(c ingest.Change) ingest.Change { c.Tenant = "ac.me"; return c }, `tenant "ac.me" has '.'`, nil},
		{"no entity", func(c ingest.Change) ingest.Change { c.Entity = ""; return c }, "entity is empty", nil},
		{"no key", func(c ingest.Change) ingest.Change { c.Key = ""; return c }, "source_key is empty", envelope.ErrMissingKey},
		{"payload not an object", func(c ingest.Change) ingest.Change { c.Payload = []byte(`[1,2]`); return c }, "not a JSON object", envelope.ErrPayloadNotJSON},
		{"payload not JSON", func(c ingest.Change) ingest.Change { c.Payload = []byte(`{"n":`); return c }, "not a JSON object", envelope.ErrPayloadNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pub.Publish(ctx, good, tt.change(good))
			if err == nil || !strings.Contains(err.Error(), "change 1") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Publish = %v, want an error about change 1 saying %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Publish = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
	// Nothing of a refused call was sent, not even its good change.
	st, err := js.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("the ingest stream holds %d messages after refused publishes, want 0", info.State.Msgs)
	}

	// A good call stores its events, once each even when published twice.
	good.EventID = envelope.NewEventID()
	for range 2 {
		ids, err := pub.Publish(ctx, good)
		if err != nil || len(ids) != 1 || ids[0] != good.EventID {
			t.Fatalf("Publish = %v, %v", ids, err)
		}
	}
	info, err = st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("the ingest stream holds %d messages, want 1", info.State.Msgs)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := envelope.Decode(m.Data)
	if err != nil {
		t.Fatalf("the stored message is not a valid envelope: %v", err)
	}
	if m.Subject != "ingest.acme.shop.order" || e.SourceVersion == 0 || e.OccurredAt == nil || m.Header.Get("traceparent") == "" {
		t.Errorf("stored %s %+v (traceparent %q): want the ingest subject, a default version and time, and a trace", m.Subject, e, m.Header.Get("traceparent"))
	}
}
