package bus

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// traceContext is W3C trace context; the only propagator Syncline uses, so it
// is fixed here rather than taken from a process-global.
var traceContext = propagation.TraceContext{}

// headerCarrier adapts nats.Header to OpenTelemetry propagation. It writes
// lower-case keys (traceparent, tracestate) and reads them case-insensitively,
// because publishers in other languages spell them as they like.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[strings.ToLower(key)] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectTrace writes ctx's span context into h.
func InjectTrace(ctx context.Context, h nats.Header) {
	traceContext.Inject(ctx, headerCarrier(h))
}

// ExtractTrace returns ctx carrying the remote span context found in h.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	return traceContext.Extract(ctx, headerCarrier(h))
}

// TraceID returns the trace id carried in h, or "" when there is none.
func TraceID(h nats.Header) string {
	sc := trace.SpanContextFromContext(ExtractTrace(context.Background(), h))
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// messagingNATS is OpenTelemetry's messaging.system of every span about a
// message on the bus.
var messagingNATS = semconv.MessagingSystemKey.String("nats")

// SendAttributes are OpenTelemetry's messaging attributes of a span that
// publishes m: its subject and message id. The semantic conventions call the
// operation type "send" (it was "publish" before v1.28); the operation name
// is NATS's own, "publish".
func SendAttributes(m *nats.Msg) []attribute.KeyValue {
	return []attribute.KeyValue{
		messagingNATS,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
		semconv.MessagingDestinationName(m.Subject),
		semconv.MessagingMessageID(m.Header.Get(HeaderMsgID)),
	}
}

// ProcessAttributes are OpenTelemetry's messaging attributes of a span that
// processes m: its subject, message id and, for a message from a consumer,
// the durable consumer that the replicas of a stage share (the consumer
// group).
func ProcessAttributes(m jetstream.Msg) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		messagingNATS,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(m.Subject()),
		semconv.MessagingMessageID(m.Headers().Get(HeaderMsgID)),
	}
	if md, err := m.Metadata(); err == nil && md.Consumer != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(md.Consumer))
	}
	return attrs
}
