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
}

// Service is the dedup service.
type Service struct {
	deps   Deps
	log    *slog.Logger
	tracer trace.Tracer
	pub    *bus.Publisher
	// confirmSpecs and failureSpecs are the consumers of the partitions'
	// answers and failed pushes.
	confirmSpecs, failureSpecs []bus.ConsumerSpec
	parts                      *lifecycle.Group
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
		log:    deps.Logger,
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
	s.failureSpecs = bus.PartitionSpecs(bus.ConsumerSpec{
		Stage:   stage.Dedup,
		Stream:  bus.StreamDeadLetter,
		Durable: "dedup-failures",
		Linger:  20 * time.Millisecond,
	}, deps.Bus.Partitions, func(p int) []string { return bus.DeadLetterFilters(stage.Connector, p) })
	s.parts.Add("failures", bus.NewShared(deps.Leases, "dedup-failures", bus.NewConsumers(s.failureSpecs, cd), s.log))
	// The target's answers move the ledger out of pending: applied, with
	// the target id for targets that make their own.
	cd.Handler = s.confirmBatch
	// One consumer per audit partition: the answers of one key come in order.
	s.confirmSpecs = bus.AuditSpecs(bus.ConsumerSpec{
		Stage:   stage.Dedup,
		Durable: "dedup-confirm",
		// Confirmations are not on an event's way to its target;
		// gathering them makes fewer, larger ledger writes.
		Linger: 20 * time.Millisecond,
	}, deps.Bus.Partitions)
	s.parts.Add("confirmations", bus.NewShared(deps.Leases, "dedup-confirm", bus.NewConsumers(s.confirmSpecs, cd), s.log))
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
	// Earlier versions read the answers and the failed pushes with one
	// consumer each.
	if err := bus.Supersede(ctx, s.deps.JetStream, s.deps.Bus, "dedup-confirm", s.confirmSpecs); err != nil {
		return err
	}
	if err := bus.Supersede(ctx, s.deps.JetStream, s.deps.Bus, "dedup-failures", s.failureSpecs); err != nil {
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
		e, err := envelope.DecodeStaged(m.Data())
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
	// Skipped newer versions only raise the version (advances), so that a
	// confirmation written meanwhile is not overwritten. Inserts are sized
	// for every new key to be written, which in a burst they all are.
	inserts := make([]ledger.Entry, 0, len(batch)-len(known))
	var puts []ledger.Entry
	var advances []ledger.Version
	// written says where a key's entry is in inserts or puts: a key decided twice in a
	// batch is written once, as its last decision. A new key's entry is inserted as it
	// ends the batch, never inserted and then put: a target's answer that came between
	// the two would find the first and be given up, leaving the second pending.
	type slot struct {
		insert bool
		i      int
	}
	written := make(map[ledger.Key]slot, len(batch))
	// decided holds the entries this batch changed: later events of a key
	// are decided against them, while known keeps what the store holds until
	// the batch's writes land, which is what a push says it supersedes.
	decided := make(map[ledger.Key]ledger.Entry, len(batch))
	for _, p := range batch {
		start := time.Now()
		entry, exists := decided[p.key]
		if !exists {
			entry, exists = known[p.key]
		}
		flow := s.deps.Flows.Get(p.env.Tenant, p.env.Flow)
		d := decide(p.env, entry, exists, policy(flow))
		if p.span.IsRecording() {
			p.span.SetAttributes(attribute.String("syncline.decision", d.action.String()))
		}
		if d.done {
			continue
		}
		var msg *nats.Msg
		var err error
		switch d.action {
		case eventv1.Action_ACTION_FAILED:
			p.span.SetStatus(codes.Error, d.code)
			msg = bus.DeadLetter(p.msg, stage.Dedup, d.code, d.reason)
		case eventv1.Action_ACTION_SKIPPED:
			msg, err = stage.Audit(p.ctx, p.env, &eventv1.Result{
				Stage: stage.Dedup, Action: d.action, Code: d.code, Reason: d.reason,
				TargetId: entry.TargetID, Attempts: uint32(bus.Deliveries(p.msg)),
				DurationUs: time.Since(start).Microseconds(),
			}, bus.Partition(p.env.SourceKey, s.deps.Bus.Partitions))
			if d.advance && (!exists || p.env.SourceVersion > entry.SourceVersion) {
				advances = append(advances, ledger.Version{Key: p.key, SourceVersion: p.env.SourceVersion})
				if !exists {
					entry = ledger.Entry{Key: p.key, State: ledger.StateApplied, LastAction: "deleted"}
				}
				entry.SourceVersion = p.env.SourceVersion
				decided[p.key] = entry
			}
		default:
			hash := p.env.GetResult().GetContentHash()
			// Only the replay of a refused change is older than the entry
			// (see decide); it goes out as the entry's version, so that the
			// target, which keeps the newest version it has, takes it.
			if exists {
				p.env.SourceVersion = max(p.env.SourceVersion, entry.SourceVersion)
			}
			p.env.Result = &eventv1.Result{Stage: stage.Dedup, Action: d.action, TargetId: entry.TargetID, ContentHash: hash,
				Attempts: uint32(bus.Deliveries(p.msg)), DurationUs: time.Since(start).Microseconds()}
			subject := bus.PushSubject(p.env.Tenant, p.env.Flow, bus.Partition(p.env.SourceKey, s.deps.Bus.Partitions))
			msg, err = stage.Output(p.ctx, subject, p.env)
			// The target's answer may come before this batch's entries are
			// written: it then finds the stored entry, which names the event
			// the push supersedes, however many events of the key the batch
			// decided before it.
			if stored := known[p.key].LastEventID; err == nil && stored != "" {
				msg.Header.Set(stage.HeaderSupersedes, stored)
			}
			if d.record {
				next := ledger.Entry{
					Key: p.key, TargetID: entry.TargetID, ContentHash: hash, SourceVersion: p.env.SourceVersion,
					State: ledger.StatePending, LastEventID: p.env.EventId, LastAction: actionName(d.action),
				}
				if next.TargetID == "" && flow.Target.KeyIsID {
					next.TargetID = p.env.SourceKey
				}
				switch w, ok := written[p.key]; {
				case ok && w.insert:
					inserts[w.i] = next
				case ok:
					puts[w.i] = next
				case exists:
					written[p.key] = slot{i: len(puts)}
					puts = append(puts, next)
				default:
					written[p.key] = slot{insert: true, i: len(inserts)}
					inserts = append(inserts, next)
				}
				decided[p.key] = next
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
	if err := s.deps.Ledger.Advance(ctx, advances); err != nil {
		endSpans(err)
		return 0, fmt.Errorf("raising the versions of %d ledger entries: %w", len(advances), err)
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
	// record says whether the ledger's entry becomes this event's.
	record bool
	// advance says whether a skipped event raises the entry's version to its
	// own (creating a deleted entry when there is none).
	advance bool
	// done says the event is already finished: nothing is published and
	// the ledger does not change.
	done bool
}

// decide applies the ledger's rules to one event, given the ledger's entry
// for its key (exists=false when there is none) and the flow's duplicate
// policy ("" when the flow is gone). A flow that is gone fails the event
// (flow_gone, dead-lettered); otherwise the rules are the README's (under
// Architecture, dedup), in its order:
//
//  1. The event that last changed the entry, again (a redelivery): the same
//     action again, so that its push completes — unless the target has
//     confirmed that push (the entry is applied): then the event is finished
//     as it is, with no output, and its outcome stays the one logged. (A
//     stage that crashed publishes its batch again one event at a time, in
//     other frames than the first time; see pkg/bus.)
//  2. A version older than the entry's: skipped (stale_version) — except the
//     very content the target refused, when the entry is failed: a replay of
//     the refused change, pushed as the entry's version.
//  3. A delete of a record the target does not have: skipped
//     (not_in_target). Otherwise a delete deletes.
//  4. An upsert of a record the target does not have, or whose create the
//     target refused: created.
//  5. The same content as the entry's, not refused: skipped (unchanged).
//  6. Changed content: the duplicate policy. update: updated; skip: skipped
//     (duplicate), a success that keeps the target's record; error: failed
//     (duplicate), dead-lettered.
//
// Every skip of a version newer than the entry's (3, 5, 6) raises the entry's
// version to it, so that no older version is applied after it. The model in
// tools/allinone/ledger_model_test.go checks these rules against the running
// pipeline.
func decide(e *eventv1.Envelope, cur ledger.Entry, exists bool, policy string) decision {
	if policy == "" {
		return decision{action: eventv1.Action_ACTION_FAILED, code: stage.CodeFlowGone,
			reason: fmt.Sprintf("flow %s of tenant %s no longer exists", e.Flow, e.Tenant)}
	}
	if exists && cur.LastEventID == e.EventId {
		return decision{action: actionOf(cur.LastAction), done: cur.State == ledger.StateApplied}
	}
	upsert := e.Operation != eventv1.Operation_OPERATION_DELETE
	hash := e.GetResult().GetContentHash()
	refused := exists && cur.State == ledger.StateFailed
	if exists && e.SourceVersion < cur.SourceVersion && !(refused && upsert && hash == cur.ContentHash) {
		return decision{action: eventv1.Action_ACTION_SKIPPED, code: stage.CodeStaleVersion,
			reason: fmt.Sprintf("source version %d is older than version %d already applied", e.SourceVersion, cur.SourceVersion)}
	}
	inTarget := exists && cur.LastAction != "deleted"
	if !upsert {
		if !inTarget {
			return decision{action: eventv1.Action_ACTION_SKIPPED, code: stage.CodeNotInTarget, reason: "deleted in the source, never created in the target", advance: true}
		}
		return decision{action: eventv1.Action_ACTION_DELETED, record: true}
	}
	if !inTarget || refused && cur.LastAction == "created" {
		return decision{action: eventv1.Action_ACTION_CREATED, record: true}
	}
	if !refused && cur.ContentHash == hash {
		return decision{action: eventv1.Action_ACTION_SKIPPED, code: stage.CodeUnchanged, reason: "content unchanged since the last applied version", advance: true}
	}
	switch policy {
	case flowconfig.DuplicateSkip:
		return decision{action: eventv1.Action_ACTION_SKIPPED, code: stage.CodeDuplicate, reason: "already exists in the target; the flow's duplicate policy is skip", advance: true}
	case flowconfig.DuplicateError:
		return decision{action: eventv1.Action_ACTION_FAILED, code: stage.CodeDuplicate,
			reason: fmt.Sprintf("key %q already exists in the target and the flow's duplicate policy is error; replay it once the flow's policy is update, or discard it", e.SourceKey)}
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

// appliedOutcomes are the audit outcomes of pushes the target applied.
// A skip at the connector is a record the target held, unknown to the ledger, that the
// duplicate policy kept: it is in the target, with the id the connector found.
var appliedOutcomes = map[string]bool{
	stage.Outcome(stage.Connector, eventv1.Action_ACTION_SKIPPED): true,
	stage.Outcome(stage.Connector, eventv1.Action_ACTION_CREATED): true,
	stage.Outcome(stage.Connector, eventv1.Action_ACTION_UPDATED): true,
	stage.Outcome(stage.Connector, eventv1.Action_ACTION_DELETED): true,
}

// answer is the target's answer to the push of one event.
type answer struct {
	ledger.Confirmation
	// supersedes is the push's stage.HeaderSupersedes: the event whose entry
	// the push's decision replaced.
	supersedes string
}

// confirmBatch marks applied pushes applied in the ledger, with the target
// id, from the connector's audit events. Only the headers of the other audit
// events (every skip, every other stage's outcome) are read.
func (s *Service) confirmBatch(ctx context.Context, msgs []jetstream.Msg) (int, error) {
	as := make([]answer, 0, len(msgs))
	for _, m := range msgs {
		if !appliedOutcomes[bus.HeaderValue(m, stage.HeaderOutcome)] {
			continue
		}
		e, err := envelope.DecodeStaged(m.Data())
		if err != nil {
			continue
		}
		as = append(as, answer{Confirmation: ledger.Confirmation{
			Key:      ledger.Key{Tenant: e.Tenant, Flow: e.Flow, SourceKey: e.SourceKey},
			EventID:  e.EventId,
			State:    ledger.StateApplied,
			TargetID: e.GetResult().GetTargetId(),
		}, supersedes: bus.HeaderValue(m, stage.HeaderSupersedes)})
	}
	return s.confirm(ctx, msgs, as)
}

// failureBatch marks failed pushes failed in the ledger, from the connector's
// dead letters: the target's refusals, the records the target held unknown to
// the ledger under the error duplicate policy, and the documents the recipe
// could not write (a line's SKU, a payment's invoice, a customer missing).
func (s *Service) failureBatch(ctx context.Context, msgs []jetstream.Msg) (int, error) {
	as := make([]answer, 0, len(msgs))
	for _, m := range msgs {
		h := m.Headers()
		// Every failure of a record at its target is the record's: a refusal, a record
		// held unknown to the ledger, and the document recipe's (a line's SKU or a
		// payment's invoice missing). Its entry is failed, so that a replay pushes it
		// again however unchanged its content. The connector's other dead letters (an
		// event it cannot read, a flow that is gone) say nothing of the target.
		if code := h.Get(bus.HeaderDeadCode); code == stage.CodeMalformed || code == stage.CodeFlowGone {
			continue
		}
		e, err := envelope.Decode(m.Data())
		if err != nil {
			continue
		}
		as = append(as, answer{Confirmation: ledger.Confirmation{
			Key:     ledger.Key{Tenant: e.Tenant, Flow: e.Flow, SourceKey: e.SourceKey},
			EventID: e.EventId,
			State:   ledger.StateFailed,
		}, supersedes: h.Get(stage.HeaderSupersedes)})
	}
	return s.confirm(ctx, msgs, as)
}

// earlyWait bounds how long a batch of answers waits for the ledger entries
// of pushes that were published but whose entries are not written yet.
const earlyWait = 5 * time.Second

func (s *Service) confirm(ctx context.Context, msgs []jetstream.Msg, as []answer) (int, error) {
	if len(as) == 0 {
		return len(msgs), nil
	}
	n, err := s.deps.Ledger.Confirm(ctx, confirmations(as))
	if err != nil {
		return 0, fmt.Errorf("confirming %d ledger entries: %w", len(as), err)
	}
	if n < len(as) {
		if err := s.confirmEarly(ctx, as); err != nil {
			return 0, err
		}
	}
	return len(msgs), nil
}

// confirmEarly deals with answers that changed nothing. Most were confirmed
// before (a redelivery) or answer a decision a newer one has replaced; but
// the dedup stage writes an entry only after publishing its push, so an
// answer can also come before its entry is written. Such an entry still
// shows what the push replaced; the answer waits for it (polling the
// ledger, as the writer may be another process) up to earlyWait, and is
// then given up with a warning: the entry stays pending.
func (s *Service) confirmEarly(ctx context.Context, as []answer) error {
	deadline := time.Now().Add(earlyWait)
	for {
		keys := make([]ledger.Key, len(as))
		for i := range as {
			keys[i] = as[i].Key
		}
		got, err := s.deps.Ledger.Lookup(ctx, keys)
		if err != nil {
			return fmt.Errorf("looking up %d ledger entries for their confirmations: %w", len(keys), err)
		}
		var now, early []answer
		for _, a := range as {
			e, ok := got[a.Key]
			switch {
			case ok && e.LastEventID == a.EventID:
				if e.State != a.State || a.TargetID != "" && e.TargetID != a.TargetID {
					now = append(now, a)
				}
			case ok && e.LastEventID == a.supersedes, !ok && a.supersedes == "":
				early = append(early, a)
			}
		}
		if len(now) > 0 {
			if _, err := s.deps.Ledger.Confirm(ctx, confirmations(now)); err != nil {
				return fmt.Errorf("confirming %d ledger entries: %w", len(now), err)
			}
		}
		if len(early) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, a := range early {
				s.log.Warn("the ledger entry of a confirmed push was not written in time; it stays pending",
					"tenant", a.Tenant, "flow", a.Flow, "event", a.EventID, "state", a.State)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d ledger entries to confirm: %w", len(early), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		as = early
	}
}

func confirmations(as []answer) []ledger.Confirmation {
	cs := make([]ledger.Confirmation, len(as))
	for i := range as {
		cs[i] = as[i].Confirmation
	}
	return cs
}
