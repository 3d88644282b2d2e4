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
	if m.Subject != "ingest.acme.shop.order" || e.SourceVersion == 0 || e.OccurredAt == nil {
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
			m, err := st.GetLastMsgForSubject(ctx, "ingest.acme.shop.order")
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
				attrs[a.Key] = a.Value.Emit()
			}
			for k, v := range map[attribute.Key]string{
				"messaging.system": "nats", "messaging.operation.type": "send", "messaging.operation.name": "publish",
				"messaging.destination.name": "ingest.acme.shop.order", "messaging.message.id": m.Header.Get(bus.HeaderMsgID),
			} {
				if attrs[k] != v {
					t.Errorf("span attribute %s = %q, want %q", k, attrs[k], v)
				}
			}
		})
	}
}
