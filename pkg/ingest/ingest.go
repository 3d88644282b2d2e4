// Package ingest is how other services publish change events into Syncline:
// build a Change, call Publish, and the event is on the ingest stream when it
// returns. Any language can do the same by publishing a
// syncline.event.v1.Envelope (protobuf) to ingest.<tenant>.<endpoint>.<entity>
// with MsgID(tenant, event id) in the Nats-Msg-Id header; see the README.
package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
)

// Change is one change of one record in a source system.
type Change struct {
	// EventID identifies this change within its tenant; empty means a new
	// UUIDv7. Publishing the same EventID in the same tenant again within
	// the ingest stream's duplicate window (two minutes by default) stores
	// it once, and Publish reports it in a DuplicateError.
	EventID    string
	Tenant     string
	Integrator string
	// Endpoint is the source endpoint's name, Entity the entity type
	// (order, customer, product...).
	Endpoint string
	Entity   string
	// Key is the record's key in the source system.
	Key string
	// Version orders changes of one key: an updated-at in unix milliseconds
	// or a sequence. Zero means the time of publishing.
	Version int64
	// Delete marks a deletion; Payload may then be empty.
	Delete bool
	// Payload is the record as a JSON object.
	Payload []byte
	// OccurredAt is when the change happened; zero means now.
	OccurredAt time.Time
	Attributes map[string]string
}

// Publisher publishes changes to the ingest stream.
type Publisher struct {
	pub    *bus.Publisher
	tracer trace.Tracer
	route  func(tenant, endpoint, entity string) error
}

// Option configures a Publisher.
type Option func(*Publisher)

// WithRoutes makes Publish refuse a change that route says has nowhere to
// go (a tenant, endpoint or entity no flow reads), with an
// UnroutedChangeError, before anything of its batch is sent. The ingest API
// passes the flow-config index's Route; a publisher without one leaves the
// question to the mapper, which dead-letters such events with the reason.
func WithRoutes(route func(tenant, endpoint, entity string) error) Option {
	return func(p *Publisher) { p.route = route }
}

// UnroutedChangeError is a valid change that no flow reads: nothing of its
// batch was published.
type UnroutedChangeError struct {
	Index int
	Key   string
	Err   error
}

func (e *UnroutedChangeError) Error() string {
	return fmt.Sprintf("change %d (key %q): %v", e.Index, e.Key, e.Err)
}

func (e *UnroutedChangeError) Unwrap() error { return e.Err }

// InvalidChangeError is a change that fails validation: nothing of its
// batch was published.
type InvalidChangeError struct {
	Index int
	Key   string
	Err   error
}

func (e *InvalidChangeError) Error() string {
	return fmt.Sprintf("change %d (key %q): %v", e.Index, e.Key, e.Err)
}

func (e *InvalidChangeError) Unwrap() error { return e.Err }

// MsgID is the Nats-Msg-Id of a change event on the ingest stream. JetStream
// de-duplicates by message id across the whole stream, so the id carries the
// tenant: two tenants that happen to use the same event id do not drop each
// other's events. It starts with the event id, as every message id of the
// event's journey does, so that one search by event id finds them all.
func MsgID(tenant, eventID string) string { return eventID + ":" + tenant }

// Duplicate is a change of a batch that the stream did not store because
// its tenant had already published an event with the same id within the
// duplicate window.
type Duplicate struct {
	Index           int
	Tenant, EventID string
	Key             string
}

// DuplicateError reports the changes of a batch that were not stored because
// their event ids were taken; every other change of the batch was stored. A
// retry of a batch that was stored before gets it for every change, and has
// nothing more to do; otherwise an id was reused, and the change needs a new
// one.
type DuplicateError struct {
	Duplicates []Duplicate
}

func (e *DuplicateError) Error() string {
	msgs := make([]string, len(e.Duplicates))
	for i, d := range e.Duplicates {
		msgs[i] = d.Message()
	}
	return strings.Join(msgs, "; ")
}

// Message says what happened to d and what to do.
func (d Duplicate) Message() string {
	return fmt.Sprintf("change %d (key %q) was not stored: tenant %q already published event id %s within the ingest stream's duplicate window (two minutes by default); "+
		"if this retries that change, it is stored and there is nothing to do, otherwise give the change a new event id (or none, for a new UUIDv7)",
		d.Index, d.Key, d.Tenant, d.EventID)
}

// NewPublisher returns a publisher on js. Each change gets a span from tp
// that starts its trace (or joins the one in ctx), and the span's context
// goes with the event, so the stages' spans join it.
//
// With a nil tp no span is made and only ctx's own trace context, if it has
// one, goes with the event; without one, the first stage starts the event's
// trace. A span that no backend records would send a traceparent flagged
// not sampled, and every stage honours that flag by recording nothing of
// the event; a traceparent flagged sampled would leave each trace without
// its root span, since no backend ever receives it.
func NewPublisher(js jetstream.JetStream, tp trace.TracerProvider, opts ...Option) *Publisher {
	p := &Publisher{pub: bus.NewPublisher(js)}
	if tp != nil {
		p.tracer = tp.Tracer("github.com/syncline/syncline/pkg/ingest")
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Publish validates and publishes changes as one batch and returns their
// event ids once the stream has stored all of them. ctx bounds the call. A
// change that fails validation fails the call before anything is sent, with
// an error naming the change's index and key. Changes whose event id their
// tenant had already used are not stored again: Publish then returns the ids
// with a *DuplicateError naming them.
func (p *Publisher) Publish(ctx context.Context, changes ...Change) ([]string, error) {
	now := time.Now()
	msgs := make([]*nats.Msg, len(changes))
	ids := make([]string, len(changes))
	spans := make([]trace.Span, len(changes))
	defer func() {
		for _, s := range spans {
			if s != nil {
				s.End()
			}
		}
	}()
	for i, c := range changes {
		e, err := p.check(i, c, now)
		if err != nil {
			return nil, err
		}
		data, err := envelope.Encode(e)
		if err != nil {
			return nil, err
		}
		m := nats.NewMsg(bus.IngestSubject(e.Tenant, e.SourceEndpoint, e.Entity, e.SourceKey))
		m.Header.Set(bus.HeaderMsgID, MsgID(e.Tenant, e.EventId))
		m.Data = data
		sctx := ctx
		if p.tracer != nil {
			var span trace.Span
			sctx, span = p.tracer.Start(ctx, "ingest publish", trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(bus.SendAttributes(m)...),
				trace.WithAttributes(
					attribute.String("syncline.tenant", e.Tenant),
					attribute.String("syncline.endpoint", e.SourceEndpoint),
					attribute.String("syncline.entity", e.Entity),
					attribute.String("syncline.event_id", e.EventId),
				))
			spans[i] = span
		}
		bus.InjectTrace(sctx, m.Header)
		msgs[i], ids[i] = m, e.EventId
	}
	acks, err := p.pub.PublishAcked(ctx, msgs...)
	if err != nil {
		for _, s := range spans {
			if s != nil {
				s.SetStatus(codes.Error, "publish failed")
			}
		}
		return nil, err
	}
	var dups []Duplicate
	for i, a := range acks {
		if a.Duplicate {
			dups = append(dups, Duplicate{Index: i, Tenant: changes[i].Tenant, EventID: ids[i], Key: changes[i].Key})
		}
	}
	if dups != nil {
		return ids, &DuplicateError{Duplicates: dups}
	}
	return ids, nil
}

// Check checks changes as Publish does, validity and (WithRoutes) flows,
// and publishes nothing: a caller can tell before publishing whether a
// publish would be refused.
func (p *Publisher) Check(changes ...Change) error {
	now := time.Now()
	for i, c := range changes {
		if _, err := p.check(i, c, now); err != nil {
			return err
		}
	}
	return nil
}

// check returns the envelope of change i, or why it may not be published.
func (p *Publisher) check(i int, c Change, now time.Time) (*eventv1.Envelope, error) {
	e, err := c.envelope(now)
	if err != nil {
		return nil, &InvalidChangeError{Index: i, Key: c.Key, Err: err}
	}
	if p.route != nil {
		if err := p.route(e.Tenant, e.SourceEndpoint, e.Entity); err != nil {
			return nil, &UnroutedChangeError{Index: i, Key: c.Key, Err: err}
		}
	}
	return e, nil
}

func (c Change) envelope(now time.Time) (*eventv1.Envelope, error) {
	for _, t := range []struct{ what, v string }{{"tenant", c.Tenant}, {"endpoint", c.Endpoint}, {"entity", c.Entity}} {
		if err := bus.ValidateToken(t.what, t.v); err != nil {
			return nil, err
		}
	}
	if c.Integrator != "" {
		if err := bus.ValidateToken("integrator", c.Integrator); err != nil {
			return nil, err
		}
	}
	e := &eventv1.Envelope{
		SchemaVersion:  envelope.SchemaVersion,
		EventId:        c.EventID,
		Tenant:         c.Tenant,
		Integrator:     c.Integrator,
		SourceEndpoint: c.Endpoint,
		Entity:         c.Entity,
		Operation:      eventv1.Operation_OPERATION_UPSERT,
		SourceKey:      c.Key,
		SourceVersion:  c.Version,
		Payload:        c.Payload,
		Attributes:     c.Attributes,
		PublishedAt:    envelope.Timestamp(now),
	}
	if c.Delete {
		e.Operation = eventv1.Operation_OPERATION_DELETE
	}
	if e.EventId == "" {
		e.EventId = envelope.NewEventID()
	}
	if e.SourceVersion == 0 {
		e.SourceVersion = now.UnixMilli()
	}
	occurred := c.OccurredAt
	if occurred.IsZero() {
		occurred = now
	}
	e.OccurredAt = envelope.Timestamp(occurred)
	if err := envelope.Validate(e); err != nil {
		return nil, err
	}
	return e, nil
}
