package ingest_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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
		{"payload not JSON", func(c ingest.Change) ingest.Change { c.Payload = []byte(`{"n":`); return c }, "not valid JSON at line 1, column 6", envelope.ErrInvalidPayload},
		{"key with NUL", func(c ingest.Change) ingest.Change { c.Key = "1\x00"; return c }, "control character U+0000", envelope.ErrInvalidKey},
		{"payload not UTF-8", func(c ingest.Change) ingest.Change { c.Payload = []byte("{\"n\":\"\xff\"}"); return c }, "not valid UTF-8", envelope.ErrInvalidPayload},
		{"event id with a newline", func(c ingest.Change) ingest.Change { c.EventID = "a\nb"; return c }, "has '\\n' at byte 2", nil},
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

	// A good call stores its events, once each even when published twice;
	// the second time says so.
	good.EventID = envelope.NewEventID()
	ids, err := pub.Publish(ctx, good)
	if err != nil || len(ids) != 1 || ids[0] != good.EventID {
		t.Fatalf("Publish = %v, %v", ids, err)
	}
	ids, err = pub.Publish(ctx, good)
	var dup *ingest.DuplicateError
	if !errors.As(err, &dup) || len(ids) != 1 || ids[0] != good.EventID {
		t.Fatalf("Publish again = %v, %v, want the id and a DuplicateError", ids, err)
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
	// Stored with the partition the stream mapped the key's bucket to.
	if !strings.HasPrefix(m.Subject, "ingest.acme.shop.order.") || e.SourceVersion == 0 || e.OccurredAt == nil {
		t.Errorf("stored %s %+v: want the ingest subject, a default version and time", m.Subject, e)
	}
}

// TestTraceContext checks what trace context an event carries: the
// publisher's span, sampled, with a tracer provider; the caller's own
// context without one; and none at all without either, so that the first
// stage starts the trace instead of inheriting a "not sampled" flag that
// would keep every stage from recording it.
func TestTraceContext(t *testing.T) {
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	change := ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Payload: []byte(`{"n":1}`)}
	for i, tc := range []struct {
		name string
		tp   trace.TracerProvider
		ctx  context.Context
		// want is the traceparent: "" for none, "span" for the
		// publisher's span.
		want string
	}{
		{"no tracer provider", nil, ctx, ""},
		{"no tracer provider, the caller's trace", nil, trace.ContextWithRemoteSpanContext(ctx, caller), "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"},
		{"a tracer provider", tp, ctx, "span"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := change
			c.Key = strconv.Itoa(i)
			if _, err := ingest.NewPublisher(js, tc.tp).Publish(tc.ctx, c); err != nil {
				t.Fatal(err)
			}
			m, err := st.GetLastMsgForSubject(ctx, "ingest.acme.shop.order.*")
			if err != nil {
				t.Fatal(err)
			}
			got := m.Header.Get("traceparent")
			if tc.want != "span" {
				if got != tc.want {
					t.Errorf("traceparent %q, want %q", got, tc.want)
				}
				return
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans recorded, want 1", len(spans))
			}
			sc := spans[0].SpanContext()
			if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; got != want {
				t.Errorf("traceparent %q, want the publisher's sampled span %q", got, want)
			}
			attrs := map[attribute.Key]string{}
			for _, a := range spans[0].Attributes() {
				attrs[a.Key] = a.Value.String()
			}
			for k, v := range map[attribute.Key]string{
				"messaging.system": "nats", "messaging.operation.type": "send", "messaging.operation.name": "publish",
				"messaging.destination.name": bus.IngestSubject("acme", "shop", "order", c.Key), "messaging.message.id": m.Header.Get(bus.HeaderMsgID),
			} {
				if attrs[k] != v {
					t.Errorf("span attribute %s = %q, want %q", k, attrs[k], v)
				}
			}
		})
	}
}

// TestEventIDsArePerTenant: two tenants may use the same event id, and each
// event is stored; a tenant that uses an id again within the duplicate
// window is told which change was not stored.
func TestEventIDsArePerTenant(t *testing.T) {
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	pub := ingest.NewPublisher(js, nil)
	id := envelope.NewEventID()
	for _, tenant := range []string{"acme", "globex"} {
		c := ingest.Change{EventID: id, Tenant: tenant, Endpoint: "shop", Entity: "order", Key: "1001", Payload: []byte(`{"n":1}`)}
		if _, err := pub.Publish(ctx, c); err != nil {
			t.Fatalf("publishing event %s of tenant %s: %v", id, tenant, err)
		}
	}
	st, err := js.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("the ingest stream holds %d messages, want one per tenant", info.State.Msgs)
	}
	m, err := st.GetLastMsgForSubject(ctx, "ingest.globex.shop.order.*")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(bus.HeaderMsgID); got != id+":globex" {
		t.Errorf("Nats-Msg-Id = %q, want %s:globex", got, id)
	}

	// acme again: a new change and one with the taken id, in one batch.
	fresh := ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1002", Payload: []byte(`{"n":2}`)}
	again := ingest.Change{EventID: id, Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1003", Payload: []byte(`{"n":3}`)}
	ids, err := pub.Publish(ctx, fresh, again)
	var dup *ingest.DuplicateError
	if !errors.As(err, &dup) || len(ids) != 2 {
		t.Fatalf("Publish = %v, %v, want both ids and a DuplicateError", ids, err)
	}
	want := ingest.Duplicate{Index: 1, Tenant: "acme", EventID: id, Key: "1003"}
	if len(dup.Duplicates) != 1 || dup.Duplicates[0] != want {
		t.Fatalf("duplicates = %+v, want %+v", dup.Duplicates, want)
	}
	for _, s := range []string{"change 1", `key "1003"`, `tenant "acme"`, id, "new event id"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if info, err = st.Info(ctx); err != nil || info.State.Msgs != 3 {
		t.Errorf("the ingest stream holds %d messages (%v), want 3: the fresh change stored, the duplicate not", info.State.Msgs, err)
	}
}
