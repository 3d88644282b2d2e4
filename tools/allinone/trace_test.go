package allinone_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	logv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestOneTracePerEvent checks that a change event is one trace from the
// publish to the target push, each stage's span a child of the one before,
// and that the API log record carries that trace's id.
func TestOneTracePerEvent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db"), tracer: tp})
	e.applyOrders("acme", "orders")
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "T1", Version: 1, Payload: order(1, "paid")})

	var logged *logv1.LogRecord
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&logv1.QueryLogsRequest{Tenant: "acme", RemoteId: "T1"})
		if len(recs) != 1 {
			return fmt.Sprintf("%d log records for T1", len(recs))
		}
		logged = recs[0]
		return ""
	})
	chain := []string{"ingest publish", "mapper map", "dedup decide", "connector push"}
	byName := map[string]sdktrace.ReadOnlySpan{}
	eventually(t, 10*time.Second, func() string {
		for _, s := range rec.Ended() {
			byName[s.Name()] = s
		}
		for _, name := range chain {
			if byName[name] == nil {
				return "no span " + name
			}
		}
		return ""
	})
	traceID := byName[chain[0]].SpanContext().TraceID()
	for i, name := range chain {
		s := byName[name]
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("span %q is in trace %s, want %s", name, s.SpanContext().TraceID(), traceID)
		}
		if i > 0 && s.Parent().SpanID() != byName[chain[i-1]].SpanContext().SpanID() {
			t.Errorf("span %q's parent is not %q", name, chain[i-1])
		}
		for _, a := range s.Attributes() {
			if a.Value.AsString() == "SO-1" || a.Value.AsString() == "buyer1@example.com" {
				t.Errorf("span %q carries payload value %s=%s", name, a.Key, a.Value.AsString())
			}
		}
	}
	if logged.TraceId != traceID.String() {
		t.Errorf("log record trace id %s, want %s", logged.TraceId, traceID)
	}
}
