// Package telemetrytest is an OTLP/HTTP trace collector for tests: a real
// HTTP server on 127.0.0.1 that decodes what exporters post, so that a test
// configures tracing the way a user does and sees the spans that arrive.
package telemetrytest

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Collector takes OTLP/HTTP protobuf trace exports at any path and keeps
// each request's path and headers with its spans, so that a test sees where
// an exporter sent them, not only what.
type Collector struct {
	// URL is the collector's base URL, http://127.0.0.1:PORT: the form a
	// user gives --otlp-endpoint.
	URL string

	mu       sync.Mutex
	requests []Request
}

// Request is one export as it arrived.
type Request struct {
	Path   string
	Header http.Header
	Spans  []Span
}

// Span is one received span, with its ids in hex and every attribute value
// in its string form.
type Span struct {
	Service      string
	Name         string
	Kind         tracev1.Span_SpanKind
	TraceID      string
	SpanID       string
	ParentSpanID string
	Attributes   map[string]string
	Events       []Event
	StatusCode   tracev1.Status_StatusCode
	StatusText   string
}

// Event is a span's event.
type Event struct {
	Name       string
	Attributes map[string]string
}

// New starts a collector, stopped at the end of the test.
func New(t testing.TB) *Collector {
	t.Helper()
	c := &Collector{}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "OTLP/HTTP takes POST", http.StatusMethodNotAllowed)
		return
	}
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortracev1.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		http.Error(w, "not an ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	got := Request{Path: r.URL.Path, Header: r.Header.Clone()}
	for _, rs := range req.GetResourceSpans() {
		service := attributes(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got.Spans = append(got.Spans, spanOf(service, s))
			}
		}
	}
	c.mu.Lock()
	c.requests = append(c.requests, got)
	c.mu.Unlock()
	resp, err := proto.Marshal(&collectortracev1.ExportTraceServiceResponse{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// Requests returns the exports received so far.
func (c *Collector) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.requests...)
}

// Spans returns every span received so far, in the order they arrived.
func (c *Collector) Spans() []Span {
	var spans []Span
	for _, r := range c.Requests() {
		spans = append(spans, r.Spans...)
	}
	return spans
}

func spanOf(service string, s *tracev1.Span) Span {
	sp := Span{
		Service:      service,
		Name:         s.GetName(),
		Kind:         s.GetKind(),
		TraceID:      hex.EncodeToString(s.GetTraceId()),
		SpanID:       hex.EncodeToString(s.GetSpanId()),
		ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
		Attributes:   attributes(s.GetAttributes()),
		StatusCode:   s.GetStatus().GetCode(),
		StatusText:   s.GetStatus().GetMessage(),
	}
	for _, e := range s.GetEvents() {
		sp.Events = append(sp.Events, Event{Name: e.GetName(), Attributes: attributes(e.GetAttributes())})
	}
	return sp
}

func attributes(kvs []*commonv1.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = valueString(kv.GetValue())
	}
	return m
}

func valueString(v *commonv1.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return x.StringValue
	case *commonv1.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonv1.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonv1.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonv1.AnyValue_BytesValue:
		return string(x.BytesValue)
	case *commonv1.AnyValue_ArrayValue:
		parts := make([]string, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, valueString(e))
		}
		return strings.Join(parts, ",")
	case *commonv1.AnyValue_KvlistValue:
		parts := make([]string, 0, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			parts = append(parts, kv.GetKey()+"="+valueString(kv.GetValue()))
		}
		return strings.Join(parts, ",")
	}
	return ""
}
