package allinone_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	logv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/telemetry"
	"github.com/syncline/syncline/pkg/telemetry/telemetrytest"
)

// hop is one span an event's trace must have.
type hop struct {
	name string
	kind tracev1.Span_SpanKind
	// operation is messaging.operation.type, subject the start of
	// messaging.destination.name.
	operation, subject string
	// consumer says whether the span processes a message of a durable
	// consumer, which is the consumer group.
	consumer bool
	// flow says whether the span names the flow.
	flow bool
}

var (
	ingestHop = hop{"ingest publish", tracev1.Span_SPAN_KIND_PRODUCER, "send", "ingest.acme.shop.order", false, false}
	stageHops = []hop{
		{"mapper map", tracev1.Span_SPAN_KIND_CONSUMER, "process", "ingest.acme.shop.order", true, true},
		{"dedup decide", tracev1.Span_SPAN_KIND_CONSUMER, "process", "flow.acme.orders.", true, true},
		{"connector push", tracev1.Span_SPAN_KIND_CONSUMER, "process", "push.acme.orders.", true, true},
		{"eventlog record", tracev1.Span_SPAN_KIND_CONSUMER, "process", "audit.acme.orders", true, true},
	}
)

// TestTracesReachACollector runs the all-in-one mode with traces sent to an
// OTLP/HTTP collector given as a user gives it (its base URL, and the
// exporter's OTEL_ variables), and checks that each change event is one
// trace in which every hop is a child of the one before, with OpenTelemetry's
// messaging attributes and no value of the record, and that the event's API
// log record has that trace's id. One event comes from a publisher with a
// tracer provider, whose span starts the trace; the other as `syncline
// publish` sends it, without one, and the mapper starts its trace.
func TestTracesReachACollector(t *testing.T) {
	c, tp := collector(t)
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db"), tracer: tp})
	e.applyOrders("acme", "orders")
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "T1", Version: 1, Payload: order(1, "paid")})
	publishUntraced(t, e, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "T2", Version: 1, Payload: order(2, "paid")})

	logged := map[string]*logv1.LogRecord{}
	for _, key := range []string{"T1", "T2"} {
		logged[key] = loggedOnce(t, e, key)
	}
	if logged["T1"].TraceId == logged["T2"].TraceId {
		t.Errorf("two events share trace %s", logged["T1"].TraceId)
	}
	checkTrace(t, c, "T1", logged["T1"], append([]hop{ingestHop}, stageHops...))
	checkTrace(t, c, "T2", logged["T2"], stageHops)
	for _, r := range c.Requests() {
		if r.Path != "/v1/traces" || r.Header.Get("X-Scope-OrgID") != "syncline-test" {
			t.Errorf("an export went to %s with headers %v: want /v1/traces and OTEL_EXPORTER_OTLP_HEADERS", r.Path, r.Header)
		}
	}
	checkNoRecordValues(t, c.Spans(), "SO-1", "SO-2", "buyer1@example.com", "buyer2@example.com", "paid")
}

// TestHeldEventKeepsItsTrace checks that an event held while its
// integrator is inactive is still one trace once released: the release's
// span is a child of the span that held it.
func TestHeldEventKeepsItsTrace(t *testing.T) {
	c, tp := collector(t)
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db"), tracer: tp})
	e.applyOrders("acme", "orders")
	e.setStage("acme", "inactive")
	publishUntraced(t, e, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "H1", Version: 1, Payload: order(3, "paid")})
	eventually(t, 10*time.Second, func() string {
		if n := subjectCount(t, e.js, bus.StreamHold, "acme"); n != 1 {
			return fmt.Sprintf("the hold stream keeps %d events of acme, want 1", n)
		}
		return ""
	})
	e.setStageNoWait("acme", "active")
	rec := loggedOnce(t, e, "H1")
	// The release reads the hold stream directly, with no consumer.
	release := stageHops[0]
	release.consumer = false
	spans := checkTrace(t, c, "H1", rec, append([]hop{stageHops[0], release}, stageHops[1:]...))
	if len(spans) > 1 && (len(spans[1].Events) != 1 || spans[1].Events[0].Name != "released from the hold stream") {
		t.Errorf("the release's span has events %+v, want one saying it was released", spans[1].Events)
	}
}

// TestEventOfTwoFlowsIsOneTrace checks that an event read by two flows is
// one trace: one mapper span naming both flows, each flow's hops below it.
func TestEventOfTwoFlowsIsOneTrace(t *testing.T) {
	c, tp := collector(t)
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db"), tracer: tp})
	e.applyOrders("acme", "orders",
		resourceOf(t, "Endpoint", "acme", "archive", map[string]any{"type": "sql", "description": "order archive", "settings": map[string]any{
			"driver": e.driver, "dsn": e.dsn, "table": "archive", "create_table": true,
		}}),
		resourceOf(t, "Flow", "acme", "archive", map[string]any{
			"integrator": "shop-to-erp", "source": "shop", "target": "archive", "entity": "order",
			"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number"}},
		}),
	)
	publishUntraced(t, e, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "F1", Version: 1, Payload: order(4, "paid")})
	var recs []*logv1.LogRecord
	eventually(t, 30*time.Second, func() string {
		recs = e.logRecords(&logv1.QueryLogsRequest{Tenant: "acme", RemoteId: "F1"})
		if len(recs) != 2 {
			return fmt.Sprintf("%d log records for F1, want one per flow", len(recs))
		}
		return ""
	})
	if recs[0].TraceId != recs[1].TraceId {
		t.Fatalf("the flows' records of one event have traces %s and %s, want one", recs[0].TraceId, recs[1].TraceId)
	}
	var spans []telemetrytest.Span
	eventually(t, 30*time.Second, func() string {
		spans = spans[:0]
		for _, s := range c.Spans() {
			if s.TraceID == recs[0].TraceId {
				spans = append(spans, s)
			}
		}
		if len(spans) < 7 {
			return fmt.Sprintf("%d spans in the event's trace, want 7: the mapper's and three per flow", len(spans))
		}
		return ""
	})
	var mapper telemetrytest.Span
	perFlow := map[string][]string{}
	for _, s := range spans {
		if s.Name == "mapper map" {
			mapper = s
			continue
		}
		perFlow[s.Attributes["syncline.flow"]] = append(perFlow[s.Attributes["syncline.flow"]], s.Name)
	}
	if got := mapper.Attributes["syncline.flow"]; got != "archive,orders" && got != "orders,archive" {
		t.Errorf("the mapper's span names flows %q, want both", got)
	}
	for _, flow := range []string{"orders", "archive"} {
		if len(perFlow[flow]) != 3 {
			t.Errorf("flow %s has spans %v in the trace, want dedup, connector and eventlog", flow, perFlow[flow])
		}
	}
	if len(spans) != 7 {
		t.Errorf("the event's trace has %d spans, want 7: %v", len(spans), names(spans))
	}
}

// collector returns an OTLP/HTTP collector and a tracer provider that
// exports to it, configured as a user configures `syncline dev`: the
// collector's base URL, and the exporter's OTEL_ variables.
func collector(t *testing.T) (*telemetrytest.Collector, trace.TracerProvider) {
	c := telemetrytest.New(t)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-scope-orgid=syncline-test")
	// Export every 100ms rather than every 5s, so the test waits less.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	tp, shutdown, err := telemetry.NewTracerProvider(context.Background(), telemetry.TraceConfig{ServiceName: "syncline-dev", OTLPEndpoint: c.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	return c, tp
}

// publishUntraced publishes changes as `syncline publish` does: without a
// tracer provider.
func publishUntraced(t *testing.T, e *env, changes ...ingest.Change) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ingest.NewPublisher(e.js, nil).Publish(ctx, changes...); err != nil {
		t.Fatal(err)
	}
}

// loggedOnce waits for the one API log record of key.
func loggedOnce(t *testing.T, e *env, key string) *logv1.LogRecord {
	t.Helper()
	var rec *logv1.LogRecord
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&logv1.QueryLogsRequest{Tenant: "acme", RemoteId: key})
		if len(recs) != 1 {
			return fmt.Sprintf("%d log records for %s", len(recs), key)
		}
		rec = recs[0]
		return ""
	})
	return rec
}

// checkTrace waits for the trace whose id the API log record rec of key
// holds, and checks that it is chain: a root span, and each hop's span the
// one child of the hop before. It returns the trace's spans in chain order.
func checkTrace(t *testing.T, c *telemetrytest.Collector, key string, rec *logv1.LogRecord, chain []hop) []telemetrytest.Span {
	t.Helper()
	var spans []telemetrytest.Span
	eventually(t, 30*time.Second, func() string {
		spans = spans[:0]
		for _, s := range c.Spans() {
			if s.TraceID == rec.TraceId {
				spans = append(spans, s)
			}
		}
		if len(spans) < len(chain) {
			return fmt.Sprintf("%d spans in trace %s of %s (the API log record's), want %d", len(spans), rec.TraceId, key, len(chain))
		}
		return ""
	})
	if len(spans) != len(chain) {
		t.Errorf("trace of %s has %d spans, want %d: %v", key, len(spans), len(chain), names(spans))
	}
	var ordered []telemetrytest.Span
	for parent := ""; len(ordered) < len(spans); {
		var children []telemetrytest.Span
		for _, s := range spans {
			if s.ParentSpanID == parent {
				children = append(children, s)
			}
		}
		if len(children) != 1 {
			t.Fatalf("trace of %s: %d spans with parent %q after %v, want one: %v", key, len(children), parent, names(ordered), names(spans))
		}
		ordered = append(ordered, children[0])
		parent = children[0].SpanID
	}
	for i, h := range chain {
		if i >= len(ordered) {
			break
		}
		if ordered[i].Name != h.name {
			t.Errorf("trace of %s is %v, want hop %d to be %q", key, names(ordered), i, h.name)
			continue
		}
		checkHop(t, key, rec, h, ordered[i])
	}
	return ordered
}

// checkHop checks span s of the hop h of the event logged in rec.
func checkHop(t *testing.T, key string, rec *logv1.LogRecord, h hop, s telemetrytest.Span) {
	t.Helper()
	if s.Kind != h.kind {
		t.Errorf("%s: span %q is of kind %v, want %v", key, h.name, s.Kind, h.kind)
	}
	a := s.Attributes
	want := map[string]string{
		"messaging.system":         "nats",
		"messaging.operation.type": h.operation,
		"syncline.tenant":          "acme",
		"syncline.entity":          "order",
		"syncline.event_id":        rec.EventId,
	}
	if h.flow {
		want["syncline.flow"] = "orders"
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("%s: span %q has %s=%q, want %q", key, h.name, k, a[k], v)
		}
	}
	if !strings.HasPrefix(a["messaging.destination.name"], h.subject) {
		t.Errorf("%s: span %q has messaging.destination.name %q, want %s…", key, h.name, a["messaging.destination.name"], h.subject)
	}
	if !strings.HasPrefix(a["messaging.message.id"], rec.EventId) {
		t.Errorf("%s: span %q has messaging.message.id %q, want the event's id %s…", key, h.name, a["messaging.message.id"], rec.EventId)
	}
	if h.consumer && a["messaging.consumer.group.name"] == "" {
		t.Errorf("%s: span %q has no messaging.consumer.group.name", key, h.name)
	}
}

// checkNoRecordValues fails for every span attribute, status message, event
// or event attribute that holds one of values, compared without case.
func checkNoRecordValues(t *testing.T, spans []telemetrytest.Span, values ...string) {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no spans to check")
	}
	check := func(span, where string, attrs map[string]string) {
		for k, v := range attrs {
			for _, value := range values {
				if strings.Contains(strings.ToLower(v), strings.ToLower(value)) {
					t.Errorf("span %q %s %s=%q holds the record's value %q", span, where, k, v, value)
				}
			}
		}
	}
	for _, s := range spans {
		check(s.Name, "attribute", s.Attributes)
		check(s.Name, "status", map[string]string{"message": s.StatusText})
		for _, ev := range s.Events {
			check(s.Name, "event", map[string]string{"name": ev.Name})
			check(s.Name, "event "+ev.Name, ev.Attributes)
		}
	}
}

func names(spans []telemetrytest.Span) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.Name)
	}
	return n
}
