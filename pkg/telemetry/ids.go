package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// IDsOnly returns a tracer provider that records nothing but still gives
// every span real trace and span ids, so that the trace id reaches every API
// log record even where no tracing backend is set up, and a backend added
// later sees the same ids. A span continues its parent's trace (the one a
// message's traceparent names) or starts a new one; it costs a context and
// two random numbers, which is why the pipeline uses it rather than the
// SDK's provider with a sampler that never samples (whose every span goes
// through the SDK's span machinery to be dropped).
func IDsOnly() trace.TracerProvider { return idsOnly{} }

type idsOnly struct{ embedded.TracerProvider }

func (idsOnly) Tracer(string, ...trace.TracerOption) trace.Tracer { return idsTracer{} }

type idsTracer struct{ embedded.Tracer }

// Start returns ctx with a span that is not recorded: a new span id in the
// parent's trace, or in a new trace when ctx has none. It is never sampled,
// so the traceparent it passes on says so, as the SDK's would.
func (idsTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	return childOf(ctx, trace.SpanContextFromContext(ctx))
}

// childOf returns ctx with a span that is not recorded, a child of parent.
func childOf(ctx context.Context, parent trace.SpanContext) (context.Context, trace.Span) {
	cfg := trace.SpanContextConfig{TraceID: parent.TraceID(), TraceState: parent.TraceState()}
	for !cfg.TraceID.IsValid() {
		binary.BigEndian.PutUint64(cfg.TraceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(cfg.TraceID[8:], rand.Uint64())
	}
	for !cfg.SpanID.IsValid() {
		binary.BigEndian.PutUint64(cfg.SpanID[:], rand.Uint64())
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	return ctx, trace.SpanFromContext(ctx)
}

// StartRemote starts a span of t that is a child of parent, a span context
// read off a message (an invalid one: a new trace). It is t.Start on ctx
// carrying parent, but with the IDsOnly tracer it makes one context instead
// of two, which counts where every hop of every event starts a span.
func StartRemote(ctx context.Context, t trace.Tracer, parent trace.SpanContext, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if _, ok := t.(idsTracer); ok {
		return childOf(ctx, parent)
	}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	return t.Start(ctx, name, opts...)
}
