package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/telemetry"
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
