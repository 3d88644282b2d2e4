// Package mapper is the mapper service: it turns each change event on the
// ingest stream into one event per matching flow — filtered, mapped,
// enriched and validated by the flow's mapping, and for a flow whose target
// serves its entity canonically checked against the entity's schema
// (pkg/entity) — on the flow stream, and dead-letters what it cannot map,
// with the reason.
package mapper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/entity"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/pkg/telemetry"
)

// Deps are the mapper's dependencies.
type Deps struct {
	JetStream jetstream.JetStream
	Flows     *flowconfig.Index
	Bus       bus.Config
	Logger    *slog.Logger
	Tracer    trace.TracerProvider
	Metrics   *bus.Metrics
	// Leases share the mapper's consumer among replicas; nil when this is
	// the only process (the all-in-one mode).
	Leases *bus.Leases
}

// Service is the mapper.
type Service struct {
	deps     Deps
	log      *slog.Logger
	tracer   trace.Tracer
	pub      *bus.Publisher
	consumer *bus.Shared
	// specs are the consumers of the ingest partitions.
	specs []bus.ConsumerSpec

	mu       sync.Mutex
	programs map[string]compiled
	// indexVersion is the flow index version the cache was last pruned at.
	indexVersion uint64
}

type compiled struct {
	generation int64
	program    *mapping.Program
	err        error
}

// New returns a mapper; Start runs it.
func New(deps Deps) (*Service, error) {
	if deps.JetStream == nil || deps.Flows == nil {
		return nil, fmt.Errorf("mapper: JetStream and Flows are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Tracer == nil {
		deps.Tracer = telemetry.IDsOnly()
	}
	s := &Service{
		deps:     deps,
		log:      deps.Logger,
		tracer:   deps.Tracer.Tracer("github.com/syncline/syncline/services/mapper"),
		pub:      bus.NewPublisher(deps.JetStream),
		programs: map[string]compiled{},
	}
	// One consumer per ingest partition, each with its own held flows, so
	// that replicas share the mapping as they share every other stage.
	consumers := make([]*bus.Consumer, deps.Bus.Partitions)
	for n := range consumers {
		p := &partition{s: s, n: n, held: map[bus.HeldFlow]bool{}}
		spec := bus.ConsumerSpec{
			Stage:   stage.Mapper,
			Stream:  bus.StreamIngest,
			Durable: "mapper-p" + strconv.Itoa(n),
			Filters: bus.IngestFilters(n, deps.Bus.Partitions),
		}
		s.specs = append(s.specs, spec)
		consumers[n] = bus.NewConsumer(spec, bus.ConsumerDeps{
			JetStream: deps.JetStream,
			Config:    deps.Bus,
			Logger:    s.log,
			Metrics:   deps.Metrics,
			Handler:   p.handle,
			OnOpen:    p.loadHeld,
			// A flow whose integrator becomes active again gets its held
			// events within this, even when nothing new arrives.
			Tick:      p.release,
			TickEvery: 200 * time.Millisecond,
		})
	}
	s.consumer = bus.NewShared(deps.Leases, "mapper-ingest", consumers, s.log)
	return s, nil
}

// partition is the mapper's consumer of one ingest partition. Its held
// flows are its own: everything of it runs in the consumer's goroutine.
type partition struct {
	s *Service
	n int
	// held and holdStream: see hold.go. legacy are the flows with events
	// held by an earlier version, under hold.<tenant>.<flow>: partition 0
	// releases them.
	held       map[bus.HeldFlow]bool
	legacy     map[bus.HeldFlow]bool
	holdStream jetstream.Stream
}

// Start creates the streams if needed and starts consuming.
func (s *Service) Start(ctx context.Context) error {
	if err := bus.EnsureStreams(ctx, s.deps.JetStream, s.deps.Bus); err != nil {
		return err
	}
	// Earlier versions read the ingest stream with one consumer.
	if err := bus.Supersede(ctx, s.deps.JetStream, s.deps.Bus, "mapper", s.specs); err != nil {
		return err
	}
	return s.consumer.Start(ctx)
}

// Stop stops consuming; see bus.Consumer.Stop.
func (s *Service) Stop(ctx context.Context) error {
	return s.consumer.Stop(ctx)
}

// handle maps a batch and publishes every output — flow events, audit
// records of skipped events, dead letters — before any input is acknowledged.
func (p *partition) handle(ctx context.Context, msgs []jetstream.Msg) (int, error) {
	s := p.s
	// Held events released first go before anything newer of their flow.
	// A release that fails is not this batch's failure: the flow stays in
	// the held set, so its new events join the hold, in order, and the
	// next tick tries the release again.
	if len(p.held) > 0 || len(p.legacy) > 0 {
		if err := p.release(ctx); err != nil {
			s.log.Warn("releasing held events failed; retrying at the next tick", "error", err)
		}
	}
	out := make([]*nats.Msg, 0, len(msgs)+len(msgs)/4)
	spans := make([]trace.Span, 0, len(msgs))
	for _, m := range msgs {
		var span trace.Span
		out, span = p.route(ctx, m, out)
		spans = append(spans, span)
	}
	err := s.pub.Publish(ctx, out...)
	for _, sp := range spans {
		if err != nil {
			sp.SetStatus(codes.Error, "publishing outputs failed")
		}
		sp.End()
	}
	if err != nil {
		return 0, err
	}
	return len(msgs), nil
}

// route appends m's outputs to out and returns the stage's span for m, still
// open, so it ends when the outputs are durable.
func (p *partition) route(ctx context.Context, m jetstream.Msg, out []*nats.Msg) ([]*nats.Msg, trace.Span) {
	s := p.s
	ctx, span := stage.Start(ctx, s.tracer, "mapper map", m)
	dead := func(code string, err error) []*nats.Msg {
		span.SetStatus(codes.Error, code)
		return append(out, bus.DeadLetter(m, stage.Mapper, code, err.Error()))
	}
	// unrouted dead-letters an event that reaches no flow, and counts it.
	unrouted := func(code string, err error) []*nats.Msg {
		s.deps.Metrics.Unrouted(stage.Mapper, code)
		return dead(code, err)
	}
	e, err := envelope.Decode(m.Data())
	if err != nil {
		return dead(stage.CodeMalformed, err), span
	}
	stage.Describe(span, e)
	// The subject is what a publisher is allowed to publish on; an envelope
	// that names another tenant, endpoint or entity would otherwise reach
	// flows its publisher has no right to.
	if tenant, endpoint, entity, ok := bus.IngestRoute(m.Subject()); !ok || e.Tenant != tenant || e.SourceEndpoint != endpoint || e.Entity != entity {
		return unrouted(stage.CodeRouteMismatch, fmt.Errorf("event %s was published on %s but names tenant %q, endpoint %q and entity %q: publish each change on ingest.<its tenant>.<its endpoint>.<its entity>",
			e.EventId, m.Subject(), e.Tenant, e.SourceEndpoint, e.Entity)), span
	}
	if e.SourceKey == "" {
		return dead(stage.CodeMissingKey, fmt.Errorf("event %s has no source_key: every change needs the record's key in the source system", e.EventId)), span
	}
	if e.Operation != eventv1.Operation_OPERATION_UPSERT && e.Operation != eventv1.Operation_OPERATION_DELETE {
		return dead(stage.CodeMalformed, fmt.Errorf("event %s has operation %v: use OPERATION_UPSERT or OPERATION_DELETE", e.EventId, e.Operation)), span
	}
	// pkg/ingest checked what it published; a program that publishes to
	// NATS itself gets the same checks here, so a bad record is refused at
	// the door with the reason, never later for a whole batch.
	if err := envelope.Validate(e); err != nil {
		if errors.Is(err, envelope.ErrPayloadNotJSON) || errors.Is(err, envelope.ErrNotJSON) {
			return dead(stage.CodePayloadNotJSON, err), span
		}
		return dead(stage.CodeMalformed, err), span
	}
	flows := s.deps.Flows.Match(e.Tenant, e.SourceEndpoint, e.Entity)
	if len(flows) == 0 && s.deps.Flows.CatchUp(ctx) {
		flows = s.deps.Flows.Match(e.Tenant, e.SourceEndpoint, e.Entity)
	}
	if e.Flow != "" {
		// A replayed dead letter of one flow runs that flow only.
		flows = slices.DeleteFunc(slices.Clone(flows), func(f *flowconfig.Flow) bool { return f.Name != e.Flow })
		if len(flows) == 0 {
			return dead(stage.CodeFlowGone, fmt.Errorf("event %s was sent again for flow %q of tenant %q, which no longer reads entity %q from endpoint %q", e.EventId, e.Flow, e.Tenant, e.Entity, e.SourceEndpoint)), span
		}
	}
	if len(flows) == 0 {
		if !s.deps.Flows.KnowsTenant(e.Tenant) {
			// No tenant owns the event, so the admin's log keeps it (under
			// bus.NoTenant), not one that may be created later.
			out = unrouted(stage.CodeUnknownTenant, fmt.Errorf("event %s: tenant %q does not exist: create it with `syncline apply`, or publish for an existing tenant", e.EventId, e.Tenant))
			out[len(out)-1].Subject = bus.DeadLetterSubject(bus.NoTenant, stage.Mapper, bus.SubjectPartition(m.Subject()))
			return out, span
		}
		return unrouted(stage.CodeNoFlow, fmt.Errorf("event %s: no flow of tenant %q reads entity %q from endpoint %q: apply a flow for it or stop publishing there", e.EventId, e.Tenant, e.Entity, e.SourceEndpoint)), span
	}
	nameFlows(span, flows)
	source, key := e.Payload, e.SourceKey
	for _, f := range flows {
		if p.holds(f) {
			out = append(out, p.hold(ctx, m, e.EventId, f))
			continue
		}
		out = s.mapFlow(ctx, m, e, source, f, out)
		e.SourceKey = key
	}
	e.Payload, e.SourceKey = source, key
	return out, span
}

// nameFlows puts the flows an event goes to on its span. One span covers
// them all, so that an event is one trace however many flows read it; the
// names are joined with commas (a flow name has none), keeping syncline.flow
// a string as on every other stage's span.
func nameFlows(span trace.Span, flows []*flowconfig.Flow) {
	if !span.IsRecording() {
		return
	}
	names := make([]string, len(flows))
	for i, f := range flows {
		names[i] = f.Name
	}
	span.SetAttributes(attribute.String("syncline.flow", strings.Join(names, ",")))
}

// mapFlow maps e for flow f. It sets e's flow fields and payload in place
// (encoding copies them), which saves a clone per flow.
func (s *Service) mapFlow(ctx context.Context, m jetstream.Msg, e *eventv1.Envelope, source []byte, f *flowconfig.Flow, out []*nats.Msg) []*nats.Msg {
	start := time.Now()
	e.Flow, e.FlowGeneration, e.Integrator, e.Payload = f.Name, f.Generation, f.Integrator, source
	fail := func(code string, err error) []*nats.Msg {
		data, encErr := envelope.Encode(e)
		if encErr != nil {
			data = nil
		}
		return append(out, bus.DeadLetterForFlow(m, f.Name, data, stage.Mapper, code, fmt.Sprintf("flow %s: %v", f.Name, err)))
	}
	result := &eventv1.Result{Stage: stage.Mapper, Attempts: uint32(bus.Deliveries(m))}
	// finish ends e here, with only an audit record of what happened.
	finish := func(action eventv1.Action, code, reason string) []*nats.Msg {
		result.Action, result.Code, result.Reason = action, code, reason
		result.DurationUs = time.Since(start).Microseconds()
		a, err := stage.Audit(ctx, e, result, bus.Partition(e.SourceKey, s.deps.Bus.Partitions))
		if err != nil {
			return fail(stage.CodeMalformed, err)
		}
		return append(out, a)
	}
	if f.Stage == flowconfig.StageDeleted {
		return finish(eventv1.Action_ACTION_FAILED, stage.CodeIntegratorDeleted,
			fmt.Sprintf("integrator %q is deleted: its flows take no more events; stop sending them, or apply the flow under another integrator", f.Integrator))
	}
	if f.KeyField != "" {
		if e.Operation == eventv1.Operation_OPERATION_DELETE && len(source) == 0 {
			// The flow's records are keyed by a field of the record, and a
			// delete without its record does not say which one it is.
			return finish(eventv1.Action_ACTION_SKIPPED, stage.CodeNoKey,
				fmt.Sprintf("a delete without its record: the flow's records are keyed by %s, so send the deleted record (with its %s) along with the delete", f.KeyField, f.KeyField))
		}
		key, err := mapping.KeyOf(source, f.KeyField)
		var bad *mapping.PayloadError
		switch {
		case errors.As(err, &bad):
			return fail(stage.CodePayloadNotJSON, fmt.Errorf("key %q: payload is not a JSON object: %w", e.SourceKey, err))
		case err != nil:
			return fail(stage.CodeMalformed, err)
		case key != "":
			// A key taken from the record must be a key the ledger and
			// the target can hold, as a published one must.
			if err := envelope.ValidateKey(key); err != nil {
				return fail(stage.CodeMalformed, fmt.Errorf("key field %s: %w", f.KeyField, err))
			}
			e.SourceKey = key
		case f.Keyless == flowconfig.KeylessExport:
			e.SourceKey = "keyless-" + e.EventId
		default:
			return finish(eventv1.Action_ACTION_SKIPPED, stage.CodeNoKey,
				fmt.Sprintf("the record has no %s, the flow's key: skipped (set keyless: export to export records without a key)", f.KeyField))
		}
	}
	if e.Operation == eventv1.Operation_OPERATION_UPSERT {
		p, err := s.program(f)
		if err != nil {
			return fail(stage.CodeMappingFailed, err)
		}
		// ApplyJSON checks the payload as it decodes it, so a payload that
		// is not a JSON object is told apart from a mapping that fails.
		mapped, skip, reason, err := p.ApplyJSON(source)
		var bad *mapping.PayloadError
		if errors.As(err, &bad) {
			return fail(stage.CodePayloadNotJSON, fmt.Errorf("key %q: payload is not a JSON object: %w", e.SourceKey, err))
		}
		if err != nil {
			return fail(stage.CodeMappingFailed, err)
		}
		if skip {
			return finish(eventv1.Action_ACTION_SKIPPED, stage.CodeFiltered, reason)
		}
		// A target that serves the entity canonically reads exactly the
		// entity's shape, so a record that does not fit it is refused here,
		// naming each field, before dedup or the target sees it: retrying
		// will not fix it, mending the mapping or the source will.
		if f.Canonical {
			if err := entity.Check(f.Entity, mapped); err != nil {
				return fail(stage.CodeInvalidRecord, fmt.Errorf("key %q: %w", e.SourceKey, err))
			}
		}
		e.Payload = mapped
		result.ContentHash = envelope.ContentHash(mapped)
	} else {
		e.Payload = nil
	}
	result.DurationUs = time.Since(start).Microseconds()
	e.Result = result
	subject := bus.FlowSubject(e.Tenant, f.Name, bus.Partition(e.SourceKey, s.deps.Bus.Partitions))
	msg, err := stage.Output(ctx, subject, e)
	e.Result = nil
	if err != nil {
		return fail(stage.CodeMalformed, err)
	}
	return append(out, msg)
}

// prune drops the compiled mappings of flows that no longer exist; s.mu is
// held.
func (s *Service) prune(version uint64) {
	live := map[string]bool{}
	for _, f := range s.deps.Flows.Flows() {
		live[f.Key()] = true
	}
	for k := range s.programs {
		if !live[k] {
			delete(s.programs, k)
		}
	}
	s.indexVersion = version
}

// program returns f's compiled mapping, compiling it again only when the
// flow's generation changed: a reload applies to every event mapped after it.
func (s *Service) program(f *flowconfig.Flow) (*mapping.Program, error) {
	key := f.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.deps.Flows.Version(); v != s.indexVersion {
		s.prune(v)
	}
	if c, ok := s.programs[key]; ok && c.generation == f.Generation {
		return c.program, c.err
	}
	p, err := mapping.Compile(f.Mapping)
	if err != nil {
		err = fmt.Errorf("compiling mapping of generation %d: %w", f.Generation, err)
	}
	s.programs[key] = compiled{generation: f.Generation, program: p, err: err}
	return p, err
}
