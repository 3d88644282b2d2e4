package stage_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/pkg/telemetry"
)

// headerMsg is a message as a stage receives it, with headers only.
type headerMsg struct {
	jetstream.Msg
	h nats.Header
}

func (m headerMsg) Headers() nats.Header { return m.h }
func (m headerMsg) Subject() string      { return "flow.bench.orders.0" }

// BenchmarkHopTrace is what carrying an event's trace across one hop costs
// with no exporter: the stage's span from the message's traceparent, and the
// traceparent of its output.
func BenchmarkHopTrace(b *testing.B) {
	tracer := telemetry.IDsOnly().Tracer("bench")
	h := nats.Header{}
	ctx, span := tracer.Start(context.Background(), "publish")
	bus.InjectTrace(ctx, h)
	span.End()
	h.Set(bus.HeaderMsgID, "0190f5c2-7a6b-7c3d-8e9f-0a1b2c3d4e5f:bench:orders")
	in := headerMsg{h: h}
	b.ReportAllocs()
	for b.Loop() {
		ctx, span := stage.Start(context.Background(), tracer, "dedup decide", in)
		out := nats.Header{}
		bus.InjectTrace(ctx, out)
		span.End()
	}
}
