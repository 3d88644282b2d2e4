package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncline/syncline/pkg/telemetry"
	"github.com/syncline/syncline/pkg/telemetry/telemetrytest"
)

func TestIDsOnlyGivesRealIDsAndRecordsNothing(t *testing.T) {
	tp := telemetry.IDsOnly()
	_, span := tp.Tracer("test").Start(context.Background(), "x")
	defer span.End()
	sc := span.SpanContext()
	if !sc.HasTraceID() || !sc.HasSpanID() {
		t.Error("a span without trace or span id: the API log would get no trace id")
	}
	if span.IsRecording() || sc.IsSampled() {
		t.Error("the span records: without a backend, spans must cost next to nothing")
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "shown" || rec["k"] != "v" {
		t.Errorf("log output %q: want one JSON record, the warning", buf.String())
	}
	if _, err := telemetry.NewLogger(&buf, "loud"); err == nil || !strings.Contains(err.Error(), "use debug, info, warn or error") {
		t.Errorf("NewLogger(loud) = %v, want an error listing the levels", err)
	}
}

// exportOne sends one span through a tracer provider built from cfg and
// returns once it is flushed.
func exportOne(t *testing.T, cfg telemetry.TraceConfig) {
	t.Helper()
	ctx := context.Background()
	tp, shutdown, err := telemetry.NewTracerProvider(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(ctx, "one")
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("flushing the span: %v", err)
	}
}

// TestOTLPEndpointForms checks the OpenTelemetry conventions: a base URL
// (--otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT) gets the signal path
// /v1/traces, a traces URL (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is used as
// is, and the exporter's other variables apply.
func TestOTLPEndpointForms(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      func(base string) telemetry.TraceConfig
		wantPath string
	}{
		{"base URL", func(base string) telemetry.TraceConfig {
			return telemetry.TraceConfig{OTLPEndpoint: base}
		}, "/v1/traces"},
		{"base URL with a slash", func(base string) telemetry.TraceConfig {
			return telemetry.TraceConfig{OTLPEndpoint: base + "/"}
		}, "/v1/traces"},
		{"base URL behind a path", func(base string) telemetry.TraceConfig {
			return telemetry.TraceConfig{OTLPEndpoint: base + "/otel"}
		}, "/otel/v1/traces"},
		{"traces URL as is, over the base URL", func(base string) telemetry.TraceConfig {
			return telemetry.TraceConfig{OTLPEndpoint: base, OTLPTracesEndpoint: base + "/ingest/spans"}
		}, "/ingest/spans"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := telemetrytest.New(t)
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=ops,authorization=Bearer%20abc")
			cfg := tc.cfg(c.URL)
			cfg.ServiceName = "syncline-test"
			exportOne(t, cfg)
			reqs := c.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d exports, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Path != tc.wantPath {
				t.Errorf("exported to %s, want %s", r.Path, tc.wantPath)
			}
			if r.Header.Get("X-Tenant") != "ops" || r.Header.Get("Authorization") != "Bearer abc" {
				t.Errorf("headers %v: want those of OTEL_EXPORTER_OTLP_HEADERS", r.Header)
			}
			if len(r.Spans) != 1 || r.Spans[0].Name != "one" || r.Spans[0].Service != "syncline-test" {
				t.Errorf("spans %+v, want span one of service syncline-test", r.Spans)
			}
		})
	}
}

func TestOTLPEndpointRefused(t *testing.T) {
	for _, bad := range []string{"otel-collector:4318", "grpc://otel-collector:4317", "http://"} {
		_, _, err := telemetry.NewTracerProvider(context.Background(), telemetry.TraceConfig{OTLPEndpoint: bad})
		if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "http://otel-collector:4318") {
			t.Errorf("endpoint %q: error %v, want one naming it and showing the form", bad, err)
		}
	}
}

func TestIDsOnlyContinuesTheParentsTrace(t *testing.T) {
	tr := telemetry.IDsOnly().Tracer("test")
	ctx, root := tr.Start(context.Background(), "root")
	_, child := tr.Start(ctx, "child")
	_, other := tr.Start(context.Background(), "other")
	if child.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Error("a child span started a trace of its own: the API log would name another trace than the event's")
	}
	if child.SpanContext().SpanID() == root.SpanContext().SpanID() {
		t.Error("a child span has its parent's span id")
	}
	if other.SpanContext().TraceID() == root.SpanContext().TraceID() {
		t.Error("two root spans share a trace id")
	}
}

// TestStartRemoteIsStartOnTheRemoteParent checks StartRemote against what it
// stands for, t.Start on a context carrying the remote parent, with the
// IDsOnly tracer and with the SDK's (recording).
func TestStartRemoteIsStartOnTheRemoteParent(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, _ := trace.ParseTraceState("vendor=x")
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceState: ts, Remote: true})
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	for name, tr := range map[string]trace.Tracer{"ids only": telemetry.IDsOnly().Tracer("test"), "sdk": sdk.Tracer("test")} {
		_, span := telemetry.StartRemote(context.Background(), tr, parent, "hop")
		sc := span.SpanContext()
		if sc.TraceID() != tid || sc.SpanID() == sid || !sc.SpanID().IsValid() || sc.TraceState().String() != "vendor=x" {
			t.Errorf("%s: span %v under remote parent %v: want the parent's trace and state, a new span id", name, sc, parent)
		}
		span.End()
		_, root := telemetry.StartRemote(context.Background(), tr, trace.SpanContext{}, "hop")
		if !root.SpanContext().IsValid() || root.SpanContext().TraceID() == tid {
			t.Errorf("%s: span %v without a parent: want a new trace", name, root.SpanContext())
		}
		root.End()
	}
}
