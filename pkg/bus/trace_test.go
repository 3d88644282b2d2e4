package bus

import (
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

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

// TestTraceFastPathAgreesWithPropagator checks the direct reading and writing
// of the usual traceparent against OpenTelemetry's W3C propagator: random
// span contexts are written by both and must be the same header, and random
// headers — valid ones and their mutations — must be read to the same span
// context, valid or not.
func TestTraceFastPathAgreesWithPropagator(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	random := func() trace.SpanContext {
		var cfg trace.SpanContextConfig
		for i := range cfg.TraceID {
			cfg.TraceID[i] = byte(rng.IntN(256) * rng.IntN(2))
		}
		for i := range cfg.SpanID {
			cfg.SpanID[i] = byte(rng.IntN(256) * rng.IntN(2))
		}
		cfg.TraceFlags = trace.TraceFlags(rng.IntN(256))
		if rng.IntN(8) == 0 {
			cfg.TraceState, _ = trace.ParseTraceState("vendor=x" + strconv.Itoa(rng.IntN(10)))
		}
		return trace.NewSpanContext(cfg)
	}
	mutate := func(s string) string {
		b := []byte(s)
		switch rng.IntN(6) {
		case 0:
			b[rng.IntN(len(b))] = "0123456789abcdefABCDEF-xg "[rng.IntN(26)]
		case 1:
			b = b[:rng.IntN(len(b))]
		case 2:
			b = append(b, "-00"[rng.IntN(3):]...)
		case 3:
			copy(b, []byte{"0f"[rng.IntN(2)], "0f"[rng.IntN(2)]})
		}
		return string(b)
	}
	for range 20000 {
		sc := random()
		ctx := trace.ContextWithSpanContext(context.Background(), sc)
		fast, slow := nats.Header{}, nats.Header{}
		InjectTrace(ctx, fast)
		traceContext.Inject(ctx, headerCarrier(slow))
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("span context %v: written %v, the propagator writes %v", sc, fast, slow)
		}
		h := nats.Header{}
		for k, v := range slow {
			h[k] = slices.Clone(v)
		}
		if v := h["traceparent"]; len(v) > 0 && rng.IntN(2) == 0 {
			h["traceparent"] = []string{mutate(v[0])}
		}
		if rng.IntN(10) == 0 {
			h["Tracestate"] = []string{"vendor=y"}
		}
		got := RemoteSpanContext(h)
		want := trace.SpanContextFromContext(traceContext.Extract(context.Background(), headerCarrier(h)))
		if !got.Equal(want) || got.IsRemote() != want.IsRemote() {
			t.Fatalf("headers %v: read %v, the propagator reads %v", h, got, want)
		}
		// The usual header, as Syncline writes it, is read without the
		// propagator: that is the point of the direct reading.
		if len(h) == 1 && reflect.DeepEqual(h, slow) && sc.TraceState().Len() == 0 {
			if _, ok := plainTraceparent(h); !ok {
				t.Fatalf("headers %v: the usual traceparent went to the propagator", h)
			}
		}
	}
}
