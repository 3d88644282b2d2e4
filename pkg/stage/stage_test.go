package stage_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/stage"
)

// Output and Audit build their headers in one go; they must be the headers
// that injecting the trace context and setting each header one by one give,
// whatever the context carries: no span, the usual one, one with a trace
// state (which goes through the propagator).
func TestOutputHeadersAreTheUsualOnes(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	state, err := trace.ParseTraceState("vendor=x")
	if err != nil {
		t.Fatal(err)
	}
	contexts := map[string]context.Context{
		"no span": context.Background(),
		"a span": trace.ContextWithSpanContext(context.Background(),
			trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})),
		"a span with a trace state": trace.ContextWithSpanContext(context.Background(),
			trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceState: state})),
	}
	e := &eventv1.Envelope{SchemaVersion: envelope.SchemaVersion, EventId: envelope.NewEventID(), Tenant: "acme", Integrator: "sync",
		SourceEndpoint: "shop", Flow: "orders", Entity: "order", Operation: eventv1.Operation_OPERATION_UPSERT, SourceKey: "k1",
		Payload: []byte(`{"n":1}`)}
	r := &eventv1.Result{Stage: stage.Connector, Action: eventv1.Action_ACTION_CREATED}
	for name, ctx := range contexts {
		t.Run(name, func(t *testing.T) {
			want := nats.Header{}
			bus.InjectTrace(ctx, want)
			want.Set(bus.HeaderMsgID, stage.MsgID(e))
			out, err := stage.Output(ctx, "push.acme.orders.0", e)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out.Header, want) {
				t.Errorf("Output's header %v, want %v", out.Header, want)
			}
			want.Set(stage.HeaderOutcome, stage.Outcome(r.GetStage(), r.GetAction()))
			audit, err := stage.Audit(ctx, e, r, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(audit.Header, want) {
				t.Errorf("Audit's header %v, want %v", audit.Header, want)
			}
			if name != "no span" && want.Get("traceparent") == "" {
				t.Fatalf("no traceparent written for %s", name)
			}
		})
	}
}
