// Package eventlog is the eventlog service: it turns the audit stream and the
// dead-letter stream into the API log (one record per change event per flow,
// never the payload), dead-letters what no stage ever acknowledged, answers
// log queries, and alerts tenants of their failures and of flows paused by
// their circuit breaker (alerts.go).
package eventlog

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/erase"
	"github.com/syncline/syncline/pkg/lifecycle"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/pkg/telemetry"
	"github.com/syncline/syncline/services/eventlog/apilog"
	"github.com/syncline/syncline/services/eventlog/deadletter"
)

// Deps are the eventlog service's dependencies.
type Deps struct {
	Conn      *nats.Conn
	JetStream jetstream.JetStream
	Log       apilog.Store
	Flows     FlowLister
	Bus       bus.Config
	Logger    *slog.Logger
	// Tracer makes the eventlog's span of each event, the last of its
	// trace; nil makes ids only.
	Tracer  trace.TracerProvider
	Metrics *bus.Metrics
	// Leases share the consumers among replicas; nil when this is the only
	// process (the all-in-one mode).
	Leases *bus.Leases
	// DeadLetters keeps dead letters for listing and replay.
	DeadLetters *deadletter.Store
	// Secrets seals dead letters' events and opens the tenants' alert
	// secrets; nil keeps letters without their events (they can be listed
	// and discarded, not replayed) and fails every alert, saying that a
	// master key is needed.
	Secrets *secret.Box
	// Retention returns each tenant's retention (0: DefaultRetention); the
	// sweeper deletes older API log records and dead letters. Nil sweeps
	// nothing.
	Retention func() map[string]time.Duration
	// SweepEvery is how often the sweeper runs; 0 means every hour.
	SweepEvery time.Duration
	// Alerts says where tenants' failure alerts go (the flow-config
	// index); nil sends none.
	Alerts AlertConfigs
	// AlertMetrics count alerts; nil counts nothing.
	AlertMetrics *AlertMetrics
}

// logLinger lets audit events gather for a moment before a batch is
// written: the API log is not on an event's way to its target, and a few
// larger inserts cost the store much less than many single-row ones.
const logLinger = 20 * time.Millisecond

// Service is the eventlog service.
type Service struct {
	deps   Deps
	log    *slog.Logger
	tracer trace.Tracer
	pub    *bus.Publisher
	parts  *lifecycle.Group
	// auditSpecs and dlqSpecs are the consumers of the audit and dead
	// letter partitions.
	auditSpecs, dlqSpecs []bus.ConsumerSpec
	// alerts is nil when Deps.Alerts is.
	alerts *alerter
}

// New returns an eventlog service; Start runs it.
func New(deps Deps) (*Service, error) {
	if deps.Conn == nil || deps.JetStream == nil || deps.Log == nil || deps.Flows == nil || deps.DeadLetters == nil {
		return nil, fmt.Errorf("eventlog: Conn, JetStream, Log, Flows and DeadLetters are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Tracer == nil {
		deps.Tracer = telemetry.IDsOnly()
	}
	s := &Service{
		deps: deps, log: deps.Logger, pub: bus.NewPublisher(deps.JetStream),
		tracer: deps.Tracer.Tracer("github.com/syncline/syncline/services/eventlog"),
	}
	s.parts = lifecycle.NewGroup(s.log, 30*time.Second)
	if deps.Alerts != nil {
		// Added first, so it stops last: after the consumers, with
		// everything they notified.
		s.alerts = newAlerter(deps.Alerts, deps.Secrets, deps.AlertMetrics, s.log)
		s.parts.Add("alerts", s.alerts)
	}
	cd := bus.ConsumerDeps{JetStream: deps.JetStream, Config: deps.Bus, Logger: s.log, Metrics: deps.Metrics}
	cd.Handler = s.auditBatch
	// One consumer per audit partition, shared by the replicas.
	s.auditSpecs = bus.AuditSpecs(bus.ConsumerSpec{Stage: stage.Eventlog, Durable: "eventlog-audit", Linger: logLinger}, deps.Bus.Partitions)
	s.parts.Add("audit", bus.NewShared(deps.Leases, "eventlog-audit", bus.NewConsumers(s.auditSpecs, cd), s.log))
	cd.Handler = s.deadLetterBatch
	s.dlqSpecs = bus.PartitionSpecs(bus.ConsumerSpec{Stage: stage.Eventlog, Stream: bus.StreamDeadLetter, Durable: "eventlog-dlq", Linger: logLinger},
		deps.Bus.Partitions, func(p int) []string { return bus.DeadLetterFilters("*", p) })
	s.parts.Add("dead letters", bus.NewShared(deps.Leases, "eventlog-dlq", bus.NewConsumers(s.dlqSpecs, cd), s.log))
	s.parts.Add("max-deliveries watcher", bus.NewDeadLetterWatcher(deps.Conn, deps.JetStream, s.log))
	every := deps.SweepEvery
	if every <= 0 {
		every = defaultSweepEvery
	}
	s.parts.Add("retention sweeper", &sweeper{s: s, every: every})
	s.parts.Add("erase requests", erase.NewResponder(deps.Conn, stage.Eventlog, func(ctx context.Context, tenant string) (map[string]int64, error) {
		n, err := deps.Log.DeleteTenant(ctx, tenant)
		if err != nil {
			return nil, err
		}
		letters, err := deps.DeadLetters.DeleteTenant(ctx, tenant)
		return map[string]int64{"log records": n, "stored dead letters": letters}, err
	}))
	return s, nil
}

// Start creates the streams if needed and starts consuming.
func (s *Service) Start(ctx context.Context) error {
	if err := bus.EnsureStreams(ctx, s.deps.JetStream, s.deps.Bus); err != nil {
		return err
	}
	// Earlier versions read the audit and dead-letter streams with one
	// consumer each.
	if err := bus.Supersede(ctx, s.deps.JetStream, s.deps.Bus, "eventlog-audit", s.auditSpecs); err != nil {
		return err
	}
	if err := bus.Supersede(ctx, s.deps.JetStream, s.deps.Bus, "eventlog-dlq", s.dlqSpecs); err != nil {
		return err
	}
	return s.parts.Start(ctx)
}

// Stop stops consuming.
func (s *Service) Stop(ctx context.Context) error {
	return s.parts.Stop(ctx)
}

// Mount adds the log query and report API and the dead-letter API to mux,
// each with its request limit. mux must authenticate every request
// (auth.Authenticator.Handler).
func (s *Service) Mount(mux *http.ServeMux) {
	path, h := newLogHandler(s.deps.Log, s.deps.Flows, apiserver.LogLimit.Option())
	mux.Handle(path, apiserver.LogLimit.Handler(h))
	path, h = eventlogv1connect.NewDeadLetterServiceHandler(&deadLetterHandler{s: s}, apiserver.DeadLetterLimit.Option())
	mux.Handle(path, apiserver.DeadLetterLimit.Handler(h))
}

// auditBatch writes a batch of outcomes to the API log in one insert. The
// insert is idempotent per event and flow, so a redelivered batch rewrites
// the same records instead of adding new ones.
func (s *Service) auditBatch(ctx context.Context, msgs []jetstream.Msg) (_ int, err error) {
	now := time.Now().UTC()
	records := make([]apilog.Record, 0, len(msgs))
	var dead []*nats.Msg
	var failed []failure
	var notices []*stage.FlowNotice
	spans := make([]trace.Span, 0, len(msgs))
	defer func() { endSpans(spans, err) }()
	for _, m := range msgs {
		if kind := bus.HeaderValue(m, stage.HeaderNotice); kind != "" {
			n, err := stage.ParseNotice(kind, m.Data())
			if err != nil {
				dead = append(dead, bus.DeadLetter(m, stage.Eventlog, stage.CodeMalformed, err.Error()))
				continue
			}
			notices = append(notices, n)
			continue
		}
		e, err := envelope.UnmarshalStaged(m.Data())
		if err != nil {
			// Not written by a stage of this build: keep it, with the
			// reason, rather than lose it.
			dead = append(dead, bus.DeadLetter(m, stage.Eventlog, stage.CodeMalformed, "audit event is not an envelope: "+err.Error()))
			continue
		}
		spans = append(spans, s.startSpan(ctx, "eventlog record", m, e))
		rec := recordOf(e, bus.TraceIDOf(m), now)
		records = append(records, rec)
		if rec.Status == apilog.StatusFailure && s.alerts != nil {
			failed = append(failed, failure{rec: rec, stage: e.GetResult().GetStage()})
		}
	}
	if err := s.pub.Publish(ctx, dead...); err != nil {
		return 0, err
	}
	if err := s.deps.Log.Insert(ctx, records); err != nil {
		return 0, fmt.Errorf("writing %d log records: %w", len(records), err)
	}
	// Alerted only once logged, so the alert's log query finds them.
	s.alerts.notify(failed)
	for _, n := range notices {
		log := s.log.With("tenant", n.Tenant, "flow", n.Flow, "endpoint", n.Endpoint, "failures", n.Failures, "since", n.Since)
		if n.Kind == stage.NoticeFlowPaused {
			log.Warn("flow paused: its target keeps failing", "reason", n.Reason)
		} else {
			log.Info("flow resumed: its target works again")
		}
	}
	s.alerts.flowNotices(notices)
	return len(msgs), nil
}

// deadLetterBatch writes a failure record for every dead letter, so the API
// log shows every event that stopped, including those no stage could decode.
func (s *Service) deadLetterBatch(ctx context.Context, msgs []jetstream.Msg) (_ int, err error) {
	now := time.Now().UTC()
	records := make([]apilog.Record, 0, len(msgs))
	letters := make([]deadletter.Letter, 0, len(msgs))
	var failed []failure
	spans := make([]trace.Span, 0, len(msgs))
	defer func() { endSpans(spans, err) }()
	for _, m := range msgs {
		h := m.Headers()
		e, err := envelope.Unmarshal(m.Data())
		if err != nil || envelope.Check(e) != nil {
			// Not an envelope: attribute it by what the bus knows.
			e = &eventv1.Envelope{Tenant: bus.TenantOf(h.Get(bus.HeaderDeadSubject)), EventId: h.Get(bus.HeaderMsgID)}
		}
		attempts, _ := strconv.Atoi(h.Get(bus.HeaderDeadDeliveries))
		r := &eventv1.Result{
			Stage:    h.Get(bus.HeaderDeadStage),
			Action:   eventv1.Action_ACTION_FAILED,
			Code:     h.Get(bus.HeaderDeadCode),
			Reason:   h.Get(bus.HeaderDeadReason),
			Attempts: uint32(attempts),
		}
		if e.Result != nil {
			r.TargetId = e.Result.TargetId
		}
		e.Result = r
		spans = append(spans, s.startSpan(ctx, "eventlog dead letter", m, e))
		rec := recordOf(e, bus.TraceID(h), now)
		// The tenant is the dead letter's subject's, which the stage took
		// from the subject the event was published on, never the envelope's
		// own word: an envelope naming another tenant must not reach that
		// tenant's log. Events for tenants that do not exist are the
		// admin's (bus.NoTenant).
		if rec.Tenant = bus.TenantOf(m.Subject()); rec.Tenant == "" {
			rec.Tenant = bus.NoTenant
		}
		records = append(records, rec)
		l, err := s.letterOf(m, e, rec.Tenant, now)
		if err != nil {
			return 0, fmt.Errorf("keeping a dead letter: %w", err)
		}
		letters = append(letters, l)
		if s.alerts != nil {
			failed = append(failed, failure{rec: rec, stage: r.Stage, deadLetter: true})
		}
	}
	if err := s.deps.Log.Insert(ctx, records); err != nil {
		return 0, fmt.Errorf("writing %d dead-letter log records: %w", len(records), err)
	}
	if err := s.deps.DeadLetters.Insert(ctx, letters); err != nil {
		return 0, fmt.Errorf("keeping %d dead letters: %w", len(letters), err)
	}
	s.alerts.notify(failed)
	return len(msgs), nil
}

// startSpan starts the span of m's record, in its event's trace: the last
// hop, so a trace shows when the outcome reached the API log.
func (s *Service) startSpan(ctx context.Context, name string, m jetstream.Msg, e *eventv1.Envelope) trace.Span {
	_, span := stage.Start(ctx, s.tracer, name, m)
	stage.Describe(span, e)
	if span.IsRecording() {
		r := e.GetResult()
		span.SetAttributes(attribute.String("syncline.stage", r.GetStage()), attribute.String("syncline.action", r.GetAction().String()))
		if code := r.GetCode(); code != "" {
			span.SetAttributes(attribute.String("syncline.code", code))
		}
	}
	return span
}

// endSpans ends the spans of a batch once its records are written (or
// not, with err).
func endSpans(spans []trace.Span, err error) {
	for _, sp := range spans {
		if err != nil {
			sp.SetStatus(codes.Error, err.Error())
		}
		sp.End()
	}
}

func recordOf(e *eventv1.Envelope, traceID string, now time.Time) apilog.Record {
	r := e.GetResult()
	rec := apilog.Record{
		Tenant:         e.Tenant,
		EventID:        e.EventId,
		Integrator:     e.Integrator,
		Flow:           e.Flow,
		Entity:         e.Entity,
		SourceEndpoint: e.SourceEndpoint,
		SourceKey:      e.SourceKey,
		TargetID:       r.GetTargetId(),
		Action:         actionOf(r.GetAction()),
		Status:         apilog.StatusSuccess,
		Reason:         r.GetReason(),
		ErrorCode:      r.GetCode(),
		Attempts:       int(r.GetAttempts()),
		TraceID:        traceID,
		LoggedAt:       now,
	}
	if rec.Action == apilog.ActionFailed {
		rec.Status = apilog.StatusFailure
	}
	if e.OccurredAt != nil {
		rec.OccurredAt = e.OccurredAt.AsTime()
	}
	// Duration is end to end: from the event entering the bus to its outcome.
	if e.PublishedAt != nil {
		rec.Duration = max(now.Sub(e.PublishedAt.AsTime()), 0)
	}
	return rec
}

func actionOf(a eventv1.Action) apilog.Action {
	switch a {
	case eventv1.Action_ACTION_CREATED:
		return apilog.ActionCreated
	case eventv1.Action_ACTION_UPDATED:
		return apilog.ActionUpdated
	case eventv1.Action_ACTION_DELETED:
		return apilog.ActionDeleted
	case eventv1.Action_ACTION_SKIPPED:
		return apilog.ActionSkipped
	}
	return apilog.ActionFailed
}

// logTenant is the tenant whose records a log or dead-letter request reads:
// the caller's own for an integrator token, the named one for the admin
// token, and for the admin token naming none, bus.NoTenant: the events that
// were addressed to no existing tenant.
func logTenant(ctx context.Context, tenant string) (string, error) {
	tenant, err := auth.Tenant(ctx, tenant)
	if err != nil {
		return "", err
	}
	if tenant == "" {
		return bus.NoTenant, nil
	}
	return tenant, nil
}
