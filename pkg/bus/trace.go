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
	// Of several spellings, the first in byte order, so that the same
	// headers always give the same answer.
	spelling := ""
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) && (spelling == "" || k < spelling) {
			spelling = k
		}
	}
	if spelling == "" {
		return ""
	}
	return c[spelling][0]
}

func (c headerCarrier) Set(key, value string) { c[strings.ToLower(key)] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectTrace writes ctx's span context into h. The usual context (no trace
// state) is written straight into h, in the very form the propagator writes;
// anything else goes through the propagator.
func InjectTrace(ctx context.Context, h nats.Header) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	if sc.TraceState().Len() > 0 {
		traceContext.Inject(ctx, headerCarrier(h))
		return
	}
	h[traceparentKey] = []string{formatTraceparent(sc)}
}

// Traceparent is what InjectTrace writes for ctx when that is one
// traceparent alone (the usual context, no trace state): its value, and
// true. It reports false when InjectTrace writes nothing or more.
func Traceparent(ctx context.Context) (string, bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || sc.TraceState().Len() > 0 {
		return "", false
	}
	return formatTraceparent(sc), true
}

// RemoteSpanContext is the span context found in h; it is not valid when h
// carries none.
func RemoteSpanContext(h nats.Header) trace.SpanContext {
	if sc, ok := plainTraceparent(h); ok {
		return sc
	}
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), headerCarrier(h)))
}

const (
	traceparentKey = "traceparent"
	tracestateKey  = "tracestate"
	// traceparentLen is the length of a version 00 traceparent:
	// 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>.
	traceparentLen = 55
	hexDigits      = "0123456789abcdef"
)

// formatTraceparent is sc's version 00 traceparent, with the flags the
// propagator keeps (sampled and random).
func formatTraceparent(sc trace.SpanContext) string {
	var b [traceparentLen]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	i := 3
	for _, c := range tid {
		b[i], b[i+1] = hexDigits[c>>4], hexDigits[c&0xf]
		i += 2
	}
	b[i] = '-'
	i++
	for _, c := range sid {
		b[i], b[i+1] = hexDigits[c>>4], hexDigits[c&0xf]
		i += 2
	}
	flags := byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))
	b[i], b[i+1], b[i+2] = '-', hexDigits[flags>>4], hexDigits[flags&0xf]
	return string(b[:])
}

// plainTraceparent reads the usual trace context of h: one lower-case
// traceparent of version 00 and no trace state. It reports false for
// anything else (none, another spelling or version, a trace state, an
// invalid one), which the propagator then reads as the W3C specification
// says.
func plainTraceparent(h nats.Header) (trace.SpanContext, bool) {
	vs := h[traceparentKey]
	if len(vs) == 0 {
		return trace.SpanContext{}, false
	}
	for k := range h {
		if len(k) == len(tracestateKey) && strings.EqualFold(k, tracestateKey) {
			return trace.SpanContext{}, false
		}
	}
	return parseTraceparent(vs[0])
}

// parseTraceparent reads a lower-case traceparent of version 00.
func parseTraceparent(v string) (trace.SpanContext, bool) {
	if len(v) != traceparentLen || v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return trace.SpanContext{}, false
	}
	var cfg trace.SpanContextConfig
	var flags [1]byte
	if !unhex(cfg.TraceID[:], v[3:35]) || !unhex(cfg.SpanID[:], v[36:52]) || !unhex(flags[:], v[53:55]) || flags[0] > 3 {
		return trace.SpanContext{}, false
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0])
	cfg.Remote = true
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}

// SpanContextOf is RemoteSpanContext(m.Headers()), the span context m
// carries, read without making the header map of an event of a frame
// (unless its trace context is not the usual one).
func SpanContextOf(m jetstream.Msg) trace.SpanContext {
	f, ok := m.(*frameItem)
	if !ok {
		return RemoteSpanContext(m.Headers())
	}
	plain, found, spelt, state := "", false, false, false
	for i := 0; i+1 < len(f.pairs); i += 2 {
		switch k := f.pairs[i]; {
		case k == traceparentKey:
			if !found {
				plain, found = f.pairs[i+1], true
			}
			spelt = true
		case len(k) == len(traceparentKey) && strings.EqualFold(k, traceparentKey):
			spelt = true
		case len(k) == len(tracestateKey) && strings.EqualFold(k, tracestateKey):
			state = true
		}
	}
	if !spelt {
		// The propagator finds nothing either.
		return trace.SpanContext{}
	}
	if found && !state {
		if sc, ok := parseTraceparent(plain); ok {
			return sc
		}
	}
	return RemoteSpanContext(f.Headers())
}

// TraceIDOf is TraceID(m.Headers()), read as SpanContextOf reads.
func TraceIDOf(m jetstream.Msg) string { return traceIDOf(SpanContextOf(m)) }

// unhex decodes lower-case hex s into dst, which is half its length.
func unhex(dst []byte, s string) bool {
	for i := range dst {
		hi, lo := hexValues[s[2*i]], hexValues[s[2*i+1]]
		if hi|lo > 0xf {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// hexValues holds the value of each lower-case hex digit, 0xff for every
// other byte: every event's trace context is read through it at every stage.
var hexValues = func() (t [256]byte) {
	for c := range t {
		t[c] = hexValue(byte(c))
	}
	return t
}()

// hexValue is the value of a lower-case hex digit, or 0xff.
func hexValue(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 0xff
}

// TraceID returns the trace id carried in h, or "" when there is none.
func TraceID(h nats.Header) string { return traceIDOf(RemoteSpanContext(h)) }

// traceIDOf is sc's trace id in hex, or "" when it has none.
func traceIDOf(sc trace.SpanContext) string {
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
		semconv.MessagingMessageID(HeaderValue(m, HeaderMsgID)),
	}
	if md, err := m.Metadata(); err == nil && md.Consumer != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(md.Consumer))
	}
	return attrs
}
