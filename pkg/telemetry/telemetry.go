// Package telemetry builds the logger and tracer provider a service's main
// hands to its constructor. Nothing here is global: services receive what
// they use, so two instances run side by side in one process.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns a JSON logger at level ("debug", "info", "warn", "error").
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// TraceConfig says where traces go. The endpoints follow the OpenTelemetry
// environment conventions, so a collector's address is given the way every
// other OpenTelemetry SDK takes it; the exporter's other OTEL_EXPORTER_OTLP_*
// variables (headers, compression, timeout, certificates) apply as they are.
type TraceConfig struct {
	ServiceName string
	// OTLPEndpoint is the base URL of an OTLP/HTTP collector, such as
	// "http://otel-collector:4318" (the form of --otlp-endpoint and
	// OTEL_EXPORTER_OTLP_ENDPOINT): traces are posted to its path
	// /v1/traces.
	OTLPEndpoint string
	// OTLPTracesEndpoint is the full URL traces are posted to, used as is
	// (the form of OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). It wins over
	// OTLPEndpoint. Both empty means traces are not exported: see IDsOnly.
	OTLPTracesEndpoint string
	// SampleRatio of new traces to record, 0 < r <= 1; 0 means 1.
	SampleRatio float64
}

// tracesPath is where an OTLP/HTTP collector takes traces, relative to its
// base URL.
const tracesPath = "v1/traces"

// tracesURL returns the URL traces are posted to, or "" when cfg exports
// none.
func (cfg TraceConfig) tracesURL() (string, error) {
	raw, base := cfg.OTLPTracesEndpoint, false
	if raw == "" {
		raw, base = cfg.OTLPEndpoint, true
	}
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("OTLP endpoint %q is not an http:// or https:// URL: give the collector's base URL, such as http://otel-collector:4318", raw)
	}
	if base {
		u = u.JoinPath(tracesPath)
	}
	return u.String(), nil
}

// NewTracerProvider returns a tracer provider and the function that flushes
// and stops it.
func NewTracerProvider(ctx context.Context, cfg TraceConfig) (trace.TracerProvider, func(context.Context) error, error) {
	endpoint, err := cfg.tracesURL()
	if err != nil {
		return nil, nil, err
	}
	if endpoint == "" {
		return IDsOnly(), func(context.Context) error { return nil }, nil
	}
	// WithEndpointURL takes the path as given (it appends no /v1/traces),
	// which is why tracesURL resolves a base URL first.
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("creating OTLP exporter for %s: %w", endpoint, err)
	}
	ratio := cfg.SampleRatio
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))),
	)
	return tp, tp.Shutdown, nil
}
