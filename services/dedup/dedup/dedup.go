// Package dedup is the dedup service: it keeps the ledger (source key ->
// target id, content hash, last applied version) and decides for every mapped
// event whether the target gets a create, an update, a delete or nothing.
// Unchanged records are skipped by content hash, stale versions never
// overwrite newer ones, and a redelivered event gets the decision it got the
// first time, so retries and replays never duplicate a record.
package dedup

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/erase"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/lifecycle"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/pkg/telemetry"
	"github.com/syncline/syncline/services/dedup/ledger"
)

// Deps are the dedup service's dependencies.
type Deps struct {
	JetStream jetstream.JetStream
	Flows     *flowconfig.Index
	Ledger    ledger.Store
	Bus       bus.Config
	Logger    *slog.Logger
	Tracer    trace.TracerProvider
	Metrics   *bus.Metrics
	// Leases share the partitions among replicas; nil when this is the
	// only process (the all-in-one mode).
	Leases *bus.Leases
	// ConfirmCreates makes the ledger read created records' target ids from
	// the audit stream. It is needed only when some target type makes its
	// own ids (connector.Registry.AllTargetsKeyed is false); otherwise the
	// ledger knows the id when it decides, and reading every audit event
	// would be work for nothing.
	ConfirmCreates bool
}

// Service is the dedup service.
type Service struct {
	deps   Deps
	log    *slog.Logger
	tracer trace.Tracer
	pub    *bus.Publisher
	parts  *lifecycle.Group
}

// New returns a dedup service; Start runs it.
func New(deps Deps) (*Service, error) {
	if deps.JetStream == nil || deps.Flows == nil || deps.Ledger == nil {
		return nil, fmt.Errorf("dedup: JetStream, Flows and Ledger are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Tracer == nil {
		deps.Tracer = telemetry.IDsOnly()
	}
	s := &Service{
		deps:   deps,
		log:    deps.Logger.With("service", stage.Dedup),
		tracer: deps.Tracer.Tracer("github.com/syncline/syncline/services/dedup"),
		pub:    bus.NewPublisher(deps.JetStream),
	}
	s.parts = lifecycle.NewGroup(s.log, 30*time.Second)
	cd := bus.ConsumerDeps{JetStream: deps.JetStream, Config: deps.Bus, Logger: s.log, Metrics: deps.Metrics}
	partitions := make([]*bus.Consumer, deps.Bus.Partitions)
	cd.Handler = s.decideBatch
	for p := range partitions {
		partitions[p] = bus.NewConsumer(bus.ConsumerSpec{
			Stage:   stage.Dedup,
			Stream:  bus.StreamFlow,
			Durable: "dedup-p" + strconv.Itoa(p),
			Filter:  "flow.*.*." + strconv.Itoa(p),
		}, cd)
	}
	s.parts.Add("partitions", bus.NewShared(deps.Leases, "dedup-flow", partitions, s.log))
	// A push the target refused is dead-lettered by the connector; the
	// ledger marks it failed, so the same content is not skipped as
	// unchanged next time.
	cd.Handler = s.failureBatch
	s.parts.Add("failures", bus.NewShared(deps.Leases, "dedup-failures", []*bus.Consumer{bus.NewConsumer(bus.ConsumerSpec{
		Stage:   stage.Dedup,
		Stream:  bus.StreamDeadLetter,
		Durable: "dedup-failures",
		Filter:  bus.DeadLetterSubject("*", stage.Connector),
		Linger:  20 * time.Millisecond,
	}, cd)}, s.log))
	if deps.ConfirmCreates {
		cd.Handler = s.confirmBatch
		s.parts.Add("confirmations", bus.NewShared(deps.Leases, "dedup-confirm", []*bus.Consumer{bus.NewConsumer(bus.ConsumerSpec{
			Stage:   stage.Dedup,
			Stream:  bus.StreamAudit,
			Durable: "dedup-confirm",
			Filter:  "audit.>",
			// Confirmations are not on an event's way to its target;
			// gathering them makes fewer, larger ledger writes.
			Linger: 20 * time.Millisecond,
		}, cd)}, s.log))
	}
	s.parts.Add("erase requests", erase.NewResponder(deps.JetStream.Conn(), stage.Dedup, func(ctx context.Context, tenant string) (map[string]int64, error) {
		n, err := deps.Ledger.DeleteTenant(ctx, tenant)
		return map[string]int64{"ledger entries": n}, err
	}))
	return s, nil
}

// Start creates the streams if needed and starts a consumer per partition.
func (s *Service) Start(ctx context.Context) error {
	if err := bus.EnsureStreams(ctx, s.deps.JetStream, s.deps.Bus); err != nil {
		return err
	}
	return s.parts.Start(ctx)
}

// Stop stops every consumer; see bus.Consumer.Stop.
func (s *Service) Stop(ctx context.Context) error {
	return s.parts.Stop(ctx)
}

type pending struct {
	msg  jetstream.Msg
	env  *eventv1.Envelope
	key  ledger.Key
	ctx  context.Context
	span trace.Span
}

// decideBatch decides a partition's batch in stream order. The ledger is read
// once for the batch, decisions are made against an in-memory copy that
// earlier events of the batch update, outputs are published, and only then
// is the ledger written: a crash in between redelivers the batch, which finds
// the ledger unchanged and makes the same decisions (published again under
// the same message ids, so stored once).
func (s *Service) decideBatch(ctx context.Context, msgs []jetstream.Msg) (int, error) {
	out := make([]*nats.Msg, 0, len(msgs))
	batch := make([]pending, 0, len(msgs))
	keys := make([]ledger.Key, 0, len(msgs))
	for _, m := range msgs {
		e, err := envelope.Decode(m.Data())
		if err != nil {
			out = append(out, bus.DeadLetter(m, stage.Dedup, stage.CodeMalformed, err.Error()))
			continue
		}
		sctx, span := stage.Start(ctx, s.tracer, "dedup decide", m)
		stage.Describe(span, e)
		k := ledger.Key{Tenant: e.Tenant, Flow: e.Flow, SourceKey: e.SourceKey}
		batch = append(batch, pending{msg: m, env: e, key: k, ctx: sctx, span: span})
		keys = append(keys, k)
	}
	endSpans := func(err error) {
		for _, p := range batch {
			if err != nil {
				p.span.SetStatus(codes.Error, err.Error())
			}
			p.span.End()
		}
	}
	known, err := s.deps.Ledger.Lookup(ctx, keys)
	if err != nil {
		endSpans(err)
		return 0, fmt.Errorf("looking up %d ledger keys: %w", len(keys), err)
	}
	// New keys are inserted, known ones put: a store may insert faster.
	var inserts, puts []ledger.Entry
	for _, p := range batch {
		start := time.Now()
		entry, exists := known[p.key]
		flow := s.deps.Flows.Get(p.env.Tenant, p.env.Flow)
		d := decide(p.env, entry, exists, policy(flow))
		if p.span.IsRecording() {
			p.span.SetAttributes(attribute.String("syncline.decision", d.action.String()))
		}
		var msg *nats.Msg
		var err error
		switch {
		case d.code == stage.CodeFlowGone || d.code == stage.CodeDuplicate:
			p.span.SetStatus(codes.Error, d.code)
			msg = bus.DeadLetter(p.msg, stage.Dedup, d.code, d.reason)
		case d.action == eventv1.Action_ACTION_SKIPPED:
			msg, err = stage.Audit(p.ctx, p.env, &eventv1.Result{
				Stage: stage.Dedup, Action: d.action, Code: d.code, Reason: d.reason,
				TargetId: entry.TargetID, Attempts: uint32(bus.Deliveries(p.msg)),
				DurationUs: time.Since(start).Microseconds(),
			})
		default:
			hash := p.env.GetResult().GetContentHash()
			p.env.Result = &eventv1.Result{Stage: stage.Dedup, Action: d.action, TargetId: entry.TargetID, ContentHash: hash,
				Attempts: uint32(bus.Deliveries(p.msg)), DurationUs: time.Since(start).Microseconds()}
			subject := bus.PushSubject(p.env.Tenant, p.env.Flow, bus.Partition(p.env.SourceKey, s.deps.Bus.Partitions))
			msg, err = stage.Output(p.ctx, subject, p.env)
			if d.record {
				next := ledger.Entry{
					Key: p.key, TargetID: entry.TargetID, ContentHash: hash, SourceVersion: p.env.SourceVersion,
					State: ledger.StatePending, LastEventID: p.env.EventId, LastAction: actionName(d.action),
				}
				if next.TargetID == "" && flow.Target.KeyIsID {
					next.TargetID = p.env.SourceKey
				}
				if _, seen := known[p.key]; seen {
					puts = append(puts, next)
				} else {
					inserts = append(inserts, next)
				}
				known[p.key] = next
			}
		}
		if err != nil {
			msg = bus.DeadLetter(p.msg, stage.Dedup, stage.CodeMalformed, err.Error())
		}
		out = append(out, msg)
	}
	if err := s.pub.Publish(ctx, out...); err != nil {
		endSpans(err)
		return 0, err
	}
	if err := s.deps.Ledger.Insert(ctx, inserts); err != nil {
		endSpans(err)
		return 0, fmt.Errorf("writing %d new ledger entries: %w", len(inserts), err)
	}
	if err := s.deps.Ledger.Put(ctx, puts); err != nil {
		endSpans(err)
		return 0, fmt.Errorf("writing %d ledger entries: %w", len(puts), err)
	}
	endSpans(nil)
	return len(msgs), nil
}

// policy returns the duplicate policy of flow f, or "" when the flow no
// longer exists.
func policy(f *flowconfig.Flow) string {
	if f == nil {
		return ""
	}
	if f.Duplicates == "" {
		return flowconfig.DuplicateUpdate
	}
	return f.Duplicates
}

// decision is what happens to one event.
type decision struct {
	action eventv1.Action
	code   string
	reason string
	// record says whether the ledger changes.
	record bool
}

// decide applies the ledger's rules to one event, given the ledger's entry
// for its key (exists=false when there is none) and the flow's duplicate
// policy ("" when the flow is gone).
func decide(e *eventv1.Envelope, cur ledger.Entry, exists bool, policy string) decision {
	if policy == "" {
		return decision{action: eventv1.Action_ACTION_FAILED, code: stage.CodeFlowGone,
			reason: fmt.Sprintf("flow %s of tenant %s no longer exists", e.Flow, e.Tenant)}
	}
	if exists && cur.LastEventID == e.EventId {
		// A redelivery or replay of the event that last changed the entry:
		// make the same decision again so that its push completes.
		return decision{action: actionOf(cur.LastAction)}
	}
	deleted := exists && cur.LastAction == "deleted"
	if exists && e.SourceVersion < cur.SourceVersion {
		return decision{action: eventv1.Action_ACTION_SKIPPED, code: stage.CodeStaleVersion,
			reason: fmt.Sprintf("source version %d is older than version %d already applied", e.SourceVersion, cur.SourceVersion)}
	}
	if e.Operation == eventv1.Operation_OPERATION_DELETE {
		if !exists || deleted {
			return decision{action: eventv1.Action_ACTION_SKIPPED, code: stage.CodeNotInTarget, reason: "deleted in the source, never created in the target"}
		}
		return decision{action: eventv1.Action_ACTION_DELETED, record: true}
	}
	if !exists || deleted {
		return decision{action: eventv1.Action_ACTION_CREATED, record: true}
	}
	if cur.State != ledger.StateFailed && cur.ContentHash == e.GetResult().GetContentHash() {
		return decision{action: eventv1.Action_ACTION_SKIPPED, code: stage.CodeUnchanged, reason: "content unchanged since the last applied version"}
	}
	switch policy {
	case flowconfig.DuplicateSkip:
		if cur.State == ledger.StateFailed && cur.LastAction == "created" {
			// The record never made it into the target: this is not a
			// duplicate, it is the create again.
			return decision{action: eventv1.Action_ACTION_CREATED, record: true}
		}
		return decision{action: eventv1.Action_ACTION_SKIPPED, code: stage.CodeDuplicate, reason: "already exists in the target; the flow's duplicate policy is skip"}
	case flowconfig.DuplicateError:
		return decision{action: eventv1.Action_ACTION_FAILED, code: stage.CodeDuplicate,
			reason: fmt.Sprintf("key %q already exists in the target and the flow's duplicate policy is error", e.SourceKey)}
	}
	if cur.State == ledger.StateFailed && cur.LastAction == "created" {
		return decision{action: eventv1.Action_ACTION_CREATED, record: true}
	}
	return decision{action: eventv1.Action_ACTION_UPDATED, record: true}
}

func actionName(a eventv1.Action) string {
	switch a {
	case eventv1.Action_ACTION_CREATED:
		return "created"
	case eventv1.Action_ACTION_UPDATED:
		return "updated"
	case eventv1.Action_ACTION_DELETED:
		return "deleted"
	}
	return ""
}

func actionOf(name string) eventv1.Action {
	switch name {
	case "created":
		return eventv1.Action_ACTION_CREATED
	case "updated":
		return eventv1.Action_ACTION_UPDATED
	case "deleted":
		return eventv1.Action_ACTION_DELETED
	}
	return eventv1.Action_ACTION_UPDATED
}

// outcomeCreated is the audit outcome whose target id the ledger records.
var outcomeCreated = stage.Outcome(stage.Connector, eventv1.Action_ACTION_CREATED)

// confirmBatch records the target ids of created records, from the
// connector's audit events, for targets that make their own ids.
func (s *Service) confirmBatch(ctx context.Context, msgs []jetstream.Msg) (int, error) {
	cs := make([]ledger.Confirmation, 0, len(msgs))
	for _, m := range msgs {
		if m.Headers().Get(stage.HeaderOutcome) != outcomeCreated {
			continue
		}
		// audit.<tenant>.<flow>: no need to decode to know the flow.
		if tenant, flow, ok := bus.AuditRoute(m.Subject()); ok {
			if f := s.deps.Flows.Get(tenant, flow); f != nil && f.Target.KeyIsID {
				continue
			}
		}
		e, err := envelope.Decode(m.Data())
		if err != nil || e.GetResult().GetStage() != stage.Connector {
			continue
		}
		cs = append(cs, ledger.Confirmation{
			Key:      ledger.Key{Tenant: e.Tenant, Flow: e.Flow, SourceKey: e.SourceKey},
			EventID:  e.EventId,
			State:    ledger.StateApplied,
			TargetID: e.Result.TargetId,
		})
	}
	return s.confirm(ctx, msgs, cs)
}

// failureBatch marks refused pushes failed in the ledger, from the
// connector's dead letters.
func (s *Service) failureBatch(ctx context.Context, msgs []jetstream.Msg) (int, error) {
	cs := make([]ledger.Confirmation, 0, len(msgs))
	for _, m := range msgs {
		if m.Headers().Get(bus.HeaderDeadCode) != stage.CodeTargetRejected {
			continue
		}
		e, err := envelope.Decode(m.Data())
		if err != nil {
			continue
		}
		cs = append(cs, ledger.Confirmation{
			Key:     ledger.Key{Tenant: e.Tenant, Flow: e.Flow, SourceKey: e.SourceKey},
			EventID: e.EventId,
			State:   ledger.StateFailed,
		})
	}
	return s.confirm(ctx, msgs, cs)
}

func (s *Service) confirm(ctx context.Context, msgs []jetstream.Msg, cs []ledger.Confirmation) (int, error) {
	if len(cs) == 0 {
		return len(msgs), nil
	}
	if _, err := s.deps.Ledger.Confirm(ctx, cs); err != nil {
		return 0, fmt.Errorf("confirming %d ledger entries: %w", len(cs), err)
	}
	return len(msgs), nil
}
