package bus

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceContextTravelsInHeaders(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	h := nats.Header{}
	InjectTrace(trace.ContextWithSpanContext(context.Background(), sc), h)
	if got := h["traceparent"]; len(got) != 1 || got[0] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent header = %v", h)
	}
	if got := TraceID(h); got != tid.String() {
		t.Errorf("TraceID = %q, want %q", got, tid)
	}
	// Publishers in other languages may capitalise the header.
	other := nats.Header{"Traceparent": h["traceparent"]}
	if got := TraceID(other); got != tid.String() {
		t.Errorf("TraceID with Traceparent = %q, want %q", got, tid)
	}
	if got := TraceID(nats.Header{}); got != "" {
		t.Errorf("TraceID without header = %q, want empty", got)
	}
}
