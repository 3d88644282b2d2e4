// Package telemetry builds the logger and tracer provider a service's main
// hands to its constructor. Nothing here is global: services receive what
// they use, so two instances run side by side in one process.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

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

// TraceConfig says where traces go.
type TraceConfig struct {
	ServiceName string
	// OTLPEndpoint is an OTLP/HTTP endpoint such as "http://127.0.0.1:4318".
	// Empty means traces are not exported: see IDsOnly.
	OTLPEndpoint string
	// SampleRatio of new traces to record, 0 < r <= 1; 0 means 1.
	SampleRatio float64
}

// IDsOnly returns a tracer provider that records nothing but still gives
// every span real trace and span ids, so that the trace id reaches every API
// log record even where no tracing backend is set up, and a backend added
// later sees the same ids.
func IDsOnly() *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
}

// NewTracerProvider returns a tracer provider and the function that flushes
// and stops it.
func NewTracerProvider(ctx context.Context, cfg TraceConfig) (trace.TracerProvider, func(context.Context) error, error) {
	if cfg.OTLPEndpoint == "" {
		tp := IDsOnly()
		return tp, tp.Shutdown, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint)}
	if strings.HasPrefix(cfg.OTLPEndpoint, "http://") {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("creating OTLP exporter for %s: %w", cfg.OTLPEndpoint, err)
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
