// Package stage holds what the pipeline's stages share about events in
// flight: building the audit and output messages they publish, and the stable
// codes that say why an event was skipped or failed. Codes are API: SREs
// alert and filter on them, so they never change meaning.
package stage

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/telemetry"
)

// Stage names.
const (
	Mapper    = "mapper"
	Dedup     = "dedup"
	Connector = "connector"
	Eventlog  = "eventlog"
)

// Codes for skipped and failed events.
const (
	CodeMalformed      = "malformed_event"
	CodeMissingKey     = "missing_key"
	CodePayloadNotJSON = "payload_not_json"
	CodeUnknownTenant  = "unknown_tenant"
	// CodeRouteMismatch refuses an event whose envelope names another
	// tenant, endpoint or entity than the subject it was published on: the
	// subject is what publishers are allowed to use, so it is what counts.
	CodeRouteMismatch  = "route_mismatch"
	CodeNoFlow         = "no_flow"
	CodeMappingFailed  = "mapping_failed"
	CodeFiltered       = "filtered_out"
	CodeUnchanged      = "unchanged"
	CodeStaleVersion   = "stale_version"
	CodeDuplicate      = "duplicate"
	CodeNotInTarget    = "not_in_target"
	CodeFlowGone       = "flow_gone"
	CodeTargetRejected = "target_rejected"
	// CodeIntegratorDeleted refuses an event of a flow whose integrator is
	// deleted (final); the refusal is logged, the event not kept.
	CodeIntegratorDeleted = "integrator_deleted"
	// CodeNoKey skips a record that lacks its flow's key field.
	CodeNoKey = "no_key"
	// CodeInvalidRecord refuses a mapped record that is not a canonical
	// record of its entity (pkg/entity) for a flow whose target serves the
	// entity canonically: a required field missing, a wrong type or format.
	// The reason names every such field; the record reaches no target.
	CodeInvalidRecord = "invalid_record"
)

// HeaderOutcome on an audit message says "<stage> <action>" (for example
// "connector ACTION_CREATED"), so a consumer that needs only some outcomes
// picks them without decoding every message.
const HeaderOutcome = "Syncline-Outcome"

// HeaderSupersedes on a push says which event's ledger entry the push's own
// decision replaces (absent when the key had no entry or an entry no event
// wrote). The connector copies it onto the push's audit event and dead letter,
// so that the ledger tells a target's answer that arrives before the entry is
// written (retry) from one for a decision already superseded (drop).
const HeaderSupersedes = "Syncline-Supersedes"

// Outcome is the HeaderOutcome value for a stage's action.
func Outcome(stageName string, a eventv1.Action) string { return stageName + " " + a.String() }

// MsgID is the Nats-Msg-Id of an event's copy for one flow: the same on every
// redelivery, so the next stream stores it once. Event ids are unique per
// tenant only, and flow names too, so the id carries the tenant.
func MsgID(e *eventv1.Envelope) string {
	return e.GetEventId() + ":" + e.GetTenant() + ":" + e.GetFlow()
}

// Audit builds the audit message for e's outcome, on the audit stream's
// partition (bus.Partition of e's source key). The payload is never
// included: the API log does not keep payloads. e is left as it was.
func Audit(ctx context.Context, e *eventv1.Envelope, r *eventv1.Result, partition int) (*nats.Msg, error) {
	payload, result := e.Payload, e.Result
	e.Payload, e.Result = nil, r
	data, err := envelope.Encode(e)
	e.Payload, e.Result = payload, result
	if err != nil {
		return nil, err
	}
	h := header(ctx, MsgID(e), HeaderOutcome, Outcome(r.GetStage(), r.GetAction()))
	return &nats.Msg{Subject: bus.AuditSubject(e.GetTenant(), e.GetFlow(), partition), Header: h, Data: data}, nil
}

// header is the header of a stage's output: its message id, ctx's trace
// context (bus.InjectTrace) and, when key is not empty, key's value. The
// values share one slice: every event is an output of three stages.
func header(ctx context.Context, msgID, key, value string) nats.Header {
	h := make(nats.Header, 3)
	values := make([]string, 3)
	values[0] = msgID
	h[bus.HeaderMsgID] = values[0:1:1]
	n := 1
	if key != "" {
		values[n] = value
		h[key] = values[n : n+1 : n+1]
		n++
	}
	if tp, ok := bus.Traceparent(ctx); ok {
		values[n] = tp
		h["traceparent"] = values[n : n+1 : n+1]
	} else {
		bus.InjectTrace(ctx, h)
	}
	return h
}

// Output builds the message that carries e to the next stage on subject.
// ctx's span becomes the parent of the next stage's span.
func Output(ctx context.Context, subject string, e *eventv1.Envelope) (*nats.Msg, error) {
	data, err := envelope.Encode(e)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: subject, Header: header(ctx, MsgID(e), "", ""), Data: data}, nil
}

// consumerSpan is the kind of a stage's span, made once: an option is an
// allocation.
var consumerSpan = trace.WithSpanKind(trace.SpanKindConsumer)

// Start starts a stage's span for processing m: a child of the span whose
// context m's headers carry (the root of the event's trace when they carry
// none), with OpenTelemetry's messaging attributes. The messages built with
// the returned context (Audit, Output) carry the span on, so that every hop
// of an event is one trace.
func Start(ctx context.Context, t trace.Tracer, name string, m jetstream.Msg) (context.Context, trace.Span) {
	ctx, span := telemetry.StartRemote(ctx, t, bus.SpanContextOf(m), name, consumerSpan)
	if span.IsRecording() {
		span.SetAttributes(bus.ProcessAttributes(m)...)
	}
	return ctx, span
}

// Describe puts the event's routing — never its payload — on a stage's span.
// An event before the mapper has no flow yet, and its span names none.
// It does nothing for spans that are not recorded, so that tracing without a
// backend costs no attribute allocations per event.
func Describe(span trace.Span, e *eventv1.Envelope) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		attribute.String("syncline.tenant", e.GetTenant()),
		attribute.String("syncline.endpoint", e.GetSourceEndpoint()),
		attribute.String("syncline.entity", e.GetEntity()),
		attribute.String("syncline.event_id", e.GetEventId()),
	)
	if f := e.GetFlow(); f != "" {
		span.SetAttributes(attribute.String("syncline.flow", f))
	}
}
