package allinone_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/encoding/protojson"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestNoPayloadsInLogsOrTraces runs events through every path — applied,
// filtered, failed in the mapping, refused, dead-lettered — and greps every
// API log record, span and service log line (at debug level) for values of
// their records, finding none.
func TestNoPayloadsInLogsOrTraces(t *testing.T) {
	logs := &syncBuffer{}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db"), tracer: tp,
		logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	e.applyOrders("acme", "orders")
	// Values that only the records hold.
	secrets := []string{"Jane-Q-Customer", "jane.q@private.example", "Kerkstraat-41", "draft-note-5521", "not-a-number-8843"}
	record := func(number, status, total string) []byte {
		return fmt.Appendf(nil, `{"number":%q,"status":%q,"total":%s,"customer":{"email":"Jane.Q@Private.Example","name":"Jane-Q-Customer"},"street":"Kerkstraat-41","note":"draft-note-5521"}`,
			number, status, total)
	}
	e.publish(
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "P1", Version: 1, Payload: record("SO-P1", "paid", "12.5")},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "P2", Version: 1, Payload: record("SO-P2", "draft", "1")},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "P3", Version: 1, Payload: record("SO-P3", "paid", `"not-a-number-8843"`)},
	)
	publishEnvelope(t, e.js, bus.IngestSubject("acme", "shop", "order", "P4"), "P4", []byte(`"Kerkstraat-41"`))
	var records []*eventlogv1.LogRecord
	eventually(t, 30*time.Second, func() string {
		records = e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"})
		if len(records) != 4 {
			return fmt.Sprintf("%d log records, want 4 (applied, filtered, mapping failed, not JSON)", len(records))
		}
		return ""
	})
	var texts []string
	for _, r := range records {
		texts = append(texts, protojson.Format(r))
	}
	for _, s := range rec.Ended() {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", s.Name(), s.Status().Description)
		for _, a := range s.Attributes() {
			fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.String())
		}
		for _, ev := range s.Events() {
			for _, a := range ev.Attributes {
				fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.String())
			}
		}
		texts = append(texts, b.String())
	}
	texts = append(texts, strings.Split(logs.String(), "\n")...)
	if len(rec.Ended()) == 0 || logs.String() == "" {
		t.Fatal("nothing to check: no spans or no log lines")
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(strings.ToLower(text), strings.ToLower(s)) {
				t.Errorf("a record's value %q shows in: %s", s, text)
			}
		}
	}
}
