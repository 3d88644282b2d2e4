// Package connector is the connector service's target side: it consumes the
// push stream partition by partition, writes each flow's records into its
// target system in batches, and reports every outcome on the audit stream.
// A record the target rejects is failed and dead-lettered (so it can be
// replayed once the cause is fixed); a target that cannot be reached opens
// its flow's circuit breaker, and the flow's events wait in the hold stream
// until it works again (breaker.go, paused.go). Its source side is the ingest API
// (api.go), for systems that post change events over HTTP with a token, and the
// webhook receiver (hooks.go), for systems that post their records signed with
// their endpoint's secret.
package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/flowstate"
	"github.com/syncline/syncline/pkg/lifecycle"
	"github.com/syncline/syncline/pkg/recipe"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/pkg/telemetry"
)

// Deps are the connector service's dependencies.
type Deps struct {
	JetStream  jetstream.JetStream
	Flows      *flowconfig.Index
	Connectors *sdk.Registry
	Bus        bus.Config
	Logger     *slog.Logger
	Tracer     trace.TracerProvider
	Metrics    *bus.Metrics
	// Leases share the partitions among replicas; nil when this is the
	// only process (the all-in-one mode).
	Leases *bus.Leases
	// Secrets opens endpoint credentials; nil fails every push to an
	// endpoint that has credentials, saying a master key is needed.
	Secrets *secret.Box
	// Breaker tunes the flows' circuit breakers; the zero value is the
	// defaults.
	Breaker BreakerConfig
	// Egress is the platform's egress policy: what every target may reach.
	// Each tenant's own rules (its spec.egress) are added from Flows.
	Egress *sdk.Egress
	// BudgetMetrics show how each endpoint's request budget holds its flows
	// back; nil records nothing.
	BudgetMetrics *sdk.BudgetMetrics
	// PollMetrics show how the polled sources are read; nil records nothing.
	PollMetrics *PollMetrics
}

// Service is the connector service.
type Service struct {
	deps   Deps
	log    *slog.Logger
	tracer trace.Tracer
	pub    *bus.Publisher
	parts  *lifecycle.Group

	breakers *breakers
	// states tells the control plane what is known of paused flows.
	states *flowstate.Writer
	// egress is the platform's policy with each tenant's own, as the flow
	// configs say now.
	egress *sdk.Egress
	// pushTimeout bounds one push, so a target that hangs fails and
	// opens its breaker instead of stalling its partitions; a batch's (and
	// a tick's) pushes share it. minPush is the least time a push is
	// started with: a batch or a tick whose time is nearly spent holds (or
	// leaves held) the rest.
	pushTimeout, minPush time.Duration

	// locks serialise finding and making a document's customer among the
	// replicas, so that two orders of one new customer make one customer.
	locks *bus.Locks

	mu      sync.Mutex
	targets map[string]*openTarget // by tenant + "/" + endpoint
	// indexVersion is the flow index version the targets were last pruned at.
	indexVersion uint64
}

type openTarget struct {
	settings string // the settings it was opened with, as JSON
	target   sdk.Target
	// open are the settings it was opened with, credentials and all, from which
	// the capabilities of a flow that the control plane compiled none for
	// are read.
	open map[string]any
}

// New returns a connector service; Start runs it.
func New(deps Deps) (*Service, error) {
	if deps.JetStream == nil || deps.Flows == nil || deps.Connectors == nil || deps.Egress == nil {
		return nil, fmt.Errorf("connector: JetStream, Flows, Connectors and Egress are required")
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
		tracer:   deps.Tracer.Tracer("github.com/syncline/syncline/services/connector"),
		pub:      bus.NewPublisher(deps.JetStream),
		targets:  map[string]*openTarget{},
		locks:    bus.NewLocks(deps.JetStream, deps.Bus.Replicas),
		breakers: newBreakers(deps.Breaker),
		states:   flowstate.NewWriter(deps.JetStream, deps.Bus.Replicas),
		egress:   deps.Egress.WithTenants(deps.Flows.Egress),
		// Well within the ack wait, after which the server would deliver
		// the batch again.
		pushTimeout: max(deps.Bus.AckWait/2, time.Second),
	}
	s.minPush = s.pushTimeout / 4
	s.parts = lifecycle.NewGroup(s.log, 30*time.Second)
	partitions := make([]*bus.Consumer, deps.Bus.Partitions)
	for n := range partitions {
		p := &partition{s: s, n: n, held: map[flowKey]bool{}, size: map[flowKey]int{}, restored: map[flowKey]time.Time{}}
		partitions[n] = bus.NewConsumer(bus.ConsumerSpec{
			Stage:   stage.Connector,
			Stream:  bus.StreamPush,
			Durable: "connector-p" + strconv.Itoa(n),
			Filter:  "push.*.*." + strconv.Itoa(n),
		}, bus.ConsumerDeps{JetStream: deps.JetStream, Config: deps.Bus, Logger: s.log, Metrics: deps.Metrics,
			Handler: p.pushBatch, OnOpen: p.loadHeld, Tick: p.release, TickEvery: releaseEvery})
	}
	s.parts.Add("partitions", bus.NewShared(deps.Leases, "connector-push", partitions, s.log))
	s.parts.Add("pollers", newPollers(s))
	return s, nil
}

// Start creates the streams if needed and starts a consumer per partition.
func (s *Service) Start(ctx context.Context) error {
	if err := bus.EnsureStreams(ctx, s.deps.JetStream, s.deps.Bus); err != nil {
		return err
	}
	return s.parts.Start(ctx)
}

// Stop stops the consumers, then closes every open target.
func (s *Service) Stop(ctx context.Context) error {
	err := s.parts.Stop(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.targets {
		if cerr := t.target.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing target %s: %w", k, cerr))
		}
		delete(s.targets, k)
	}
	return err
}

type item struct {
	// index is the message's place in its batch.
	index int
	msg   jetstream.Msg
	env   *eventv1.Envelope
	ctx   context.Context
	span  trace.Span
}

// group is the run of a batch's records that go to one flow's target.
type group struct {
	flow  *flowconfig.Flow
	items []item
}

// pushBatch writes a batch. Records are grouped by flow in stream order, each
// group is pushed in one call, and all outcomes are published before the
// batch is acknowledged. A push that fails as a whole opens the flow's
// circuit breaker and the group is held (breaker.go): the batch goes on
// with the other flows.
func (p *partition) pushBatch(ctx context.Context, msgs []jetstream.Msg) (int, error) {
	s := p.s
	out := make([]*nats.Msg, 0, len(msgs))
	var groups []*group
	byFlow := map[string]*group{}
	var all []item
	for i, m := range msgs {
		e, err := envelope.DecodeStaged(m.Data())
		if err != nil {
			out = append(out, bus.DeadLetter(m, stage.Connector, stage.CodeMalformed, err.Error()))
			continue
		}
		it := s.startItem(ctx, i, m, e)
		all = append(all, it)
		f := s.deps.Flows.Get(e.Tenant, e.Flow)
		if f == nil {
			it.span.SetStatus(codes.Error, stage.CodeFlowGone)
			out = append(out, bus.DeadLetter(m, stage.Connector, stage.CodeFlowGone, fmt.Sprintf("flow %s of tenant %s no longer exists", e.Flow, e.Tenant)))
			continue
		}
		g := byFlow[f.Key()]
		if g == nil {
			g = &group{flow: f}
			byFlow[f.Key()] = g
			groups = append(groups, g)
		}
		g.items = append(g.items, it)
	}
	// The batch's pushes share half the ack wait, so its messages are not
	// delivered again while it runs.
	deadline := time.Now().Add(s.pushTimeout)
	for _, g := range groups {
		k := flowKey{g.flow.Tenant, g.flow.Name}
		if p.held[k] || s.breakers.open(k) {
			out = p.hold(g, "the flow's target is failing; pushed when it works again", out)
			continue
		}
		left := time.Until(deadline)
		if left < s.minPush {
			// The next tick pushes them, before newer events of the flow.
			out = p.hold(g, "the batch's time was spent on other flows", out)
			continue
		}
		var pushed bool
		var err error
		out, pushed, _, err = s.pushFlow(ctx, g.flow, g.items, left, false, out)
		if err != nil {
			// The batch is finished up to the failed flow's first record:
			// every record before it went to another flow, whose push
			// succeeded or was held.
			endSpans(all, err)
			if pubErr := s.pub.Publish(ctx, out...); pubErr != nil {
				return 0, errors.Join(err, pubErr)
			}
			return g.items[0].index, err
		}
		if !pushed {
			out = p.hold(g, "the flow's target is failing; pushed when it works again", out)
		}
	}
	if err := s.pub.Publish(ctx, out...); err != nil {
		endSpans(all, err)
		return 0, err
	}
	endSpans(all, nil)
	return len(msgs), nil
}

// startItem starts the span of m's push, in its trace.
func (s *Service) startItem(ctx context.Context, index int, m jetstream.Msg, e *eventv1.Envelope) item {
	sctx, span := stage.Start(ctx, s.tracer, "connector push", m)
	stage.Describe(span, e)
	return item{index: index, msg: m, env: e, ctx: sctx, span: span}
}

func endSpans(items []item, err error) {
	for _, it := range items {
		if err != nil {
			it.span.SetStatus(codes.Error, err.Error())
		}
		it.span.End()
	}
}

// pushFlow pushes items to f's target and adds their outcomes to out. When
// the target fails the push as a whole, the flow's breaker learns of it (and
// out gets the notice, if this failure paused the flow) and pushed is false.
// told says the push resumed a paused flow, and the notice is in out. err
// is for what is not the target's failure: a stop, an outcome that cannot
// be encoded.
func (s *Service) pushFlow(ctx context.Context, f *flowconfig.Flow, items []item, timeout time.Duration, probe bool, out []*nats.Msg) (_ []*nats.Msg, pushed, told bool, err error) {
	start := time.Now()
	results, err := s.push(ctx, f, items, timeout)
	if err != nil {
		if ctx.Err() != nil {
			return out, false, false, err
		}
		return s.failed(f, err, probe, out), false, false, nil
	}
	if out, err = s.outcomes(items, results, time.Since(start), out); err != nil {
		return out, false, false, err
	}
	out, told = s.succeeded(f, out)
	return out, true, told, nil
}

// push applies items to f's target through the flow's recipe and returns one
// outcome per item. An error means the push failed as a whole.
func (s *Service) push(ctx context.Context, f *flowconfig.Flow, items []item, timeout time.Duration) ([]recipe.Outcome, error) {
	// The endpoint's budget records its waits and throttles against the flow.
	ctx = sdk.WithFlow(ctx, f.Name)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t, caps, related, err := s.target(ctx, f)
	if err != nil {
		return nil, err
	}
	records := make([]sdk.Record, len(items))
	for i, it := range items {
		op := sdk.OpUpsert
		if it.env.Operation == eventv1.Operation_OPERATION_DELETE {
			op = sdk.OpDelete
		}
		records[i] = sdk.Record{
			Key:      it.env.SourceKey,
			Op:       op,
			Create:   it.env.GetResult().GetAction() == eventv1.Action_ACTION_CREATED,
			TargetID: it.env.GetResult().GetTargetId(),
			Version:  it.env.SourceVersion,
			Payload:  json.RawMessage(it.env.Payload),
		}
	}
	lock := func(ctx context.Context, name string) (func(), error) {
		unlock, err := s.locks.Lock(ctx, f.Tenant+"/"+name)
		if err != nil && ctx.Err() != nil {
			// Another replica holds the customer for longer than this push may
			// wait: the flow tries again shortly, nothing failed.
			return nil, &sdk.ThrottledError{RetryAfter: time.Second, Err: err}
		}
		return unlock, err
	}
	rf := recipe.For(f, caps, related, lock)
	outcomes, err := recipe.Run(ctx, t, rf, records)
	if err != nil {
		return nil, fmt.Errorf("pushing %d records to %s (%s): %w", len(records), f.Target.Name, f.Target.Type, err)
	}
	return outcomes, nil
}

// actions are the audit actions of the recipe's outcomes.
var actions = map[recipe.Action]eventv1.Action{
	recipe.Created: eventv1.Action_ACTION_CREATED,
	recipe.Updated: eventv1.Action_ACTION_UPDATED,
	recipe.Deleted: eventv1.Action_ACTION_DELETED,
	recipe.Skipped: eventv1.Action_ACTION_SKIPPED,
	recipe.Failed:  eventv1.Action_ACTION_FAILED,
}

// outcomes adds to out the audit record of each pushed item, and the dead
// letter of each that failed: refused by the target, or held by it unknown to
// the ledger under the error duplicate policy.
func (s *Service) outcomes(items []item, results []recipe.Outcome, took time.Duration, out []*nats.Msg) ([]*nats.Msg, error) {
	per := took.Microseconds() / int64(len(items))
	for i, it := range items {
		o := results[i]
		r := &eventv1.Result{
			Stage:       stage.Connector,
			Action:      actions[o.Action],
			TargetId:    o.TargetID,
			ContentHash: it.env.GetResult().GetContentHash(),
			Attempts:    uint32(bus.Deliveries(it.msg)),
			DurationUs:  per,
			Code:        o.Code,
			Reason:      o.Reason,
		}
		if o.Action == recipe.Failed {
			it.span.SetStatus(codes.Error, o.Code)
			out = append(out, bus.DeadLetter(it.msg, stage.Connector, o.Code, o.Reason))
		}
		a, err := stage.Audit(it.ctx, it.env, r, bus.Partition(it.env.SourceKey, s.deps.Bus.Partitions))
		if err != nil {
			return out, err
		}
		if prev := bus.HeaderValue(it.msg, stage.HeaderSupersedes); prev != "" {
			a.Header.Set(stage.HeaderSupersedes, prev)
		}
		out = append(out, a)
	}
	return out, nil
}

// prune closes the targets no flow writes to any more; s.mu is held. Another
// partition may still be pushing to one (its batch began before the flow
// went): that push fails and its batch is retried, then dead-lettered as a
// flow that is gone.
func (s *Service) prune(version uint64) {
	live := map[string]bool{}
	for _, f := range s.deps.Flows.Flows() {
		live[f.Tenant+"/"+f.Target.Name] = true
	}
	for k, t := range s.targets {
		if !live[k] {
			s.closeTarget(k, t, "no flow uses it")
		}
	}
	s.indexVersion = version
}

// withCredentials returns the target's settings with its credentials
// opened (flowconfig.Endpoint.OpenSettings), saying what to do when they
// cannot be.
func (s *Service) withCredentials(f *flowconfig.Flow) (map[string]any, error) {
	open, err := f.Target.OpenSettings(f.Tenant, s.deps.Secrets)
	switch {
	case errors.Is(err, flowconfig.ErrNoMasterKey):
		return nil, fmt.Errorf("endpoint %s of tenant %s has credentials, and the connector has no master key: set %s as on the control plane", f.Target.Name, f.Tenant, secret.EnvMasterKey)
	case err != nil:
		return nil, fmt.Errorf("%w (is %s the control plane's?)", err, secret.EnvMasterKey)
	}
	return open, nil
}

// fingerprint identifies what f's target is opened with: its type, settings,
// sealed credentials and the tenant's own egress policy (new credentials
// reopen it, and so does a narrower policy, so that connections it no longer
// allows are closed).
func (s *Service) fingerprint(f *flowconfig.Flow) (string, error) {
	settings, err := json.Marshal(f.Target.Settings)
	if err != nil {
		return "", fmt.Errorf("encoding settings of endpoint %s: %w", f.Target.Name, err)
	}
	egress, err := json.Marshal(s.deps.Flows.Egress(f.Tenant))
	if err != nil {
		return "", fmt.Errorf("encoding the egress policy of tenant %s: %w", f.Tenant, err)
	}
	return f.Target.Type + "\x00" + string(settings) + "\x00" + f.Target.Credentials + "\x00" + string(egress), nil
}

// target returns the open target of f, opening it on first use and again
// when the endpoint's settings changed, and what it can do with f's entity.
// target opens f's target and says what it can do with the flow's entity, and with the
// entities the flow's documents refer to: as the control plane compiled them, or for an
// older config, as the connector declares them.
func (s *Service) target(ctx context.Context, f *flowconfig.Flow) (sdk.Target, sdk.Capabilities, []sdk.Capabilities, error) {
	t, err := s.openFor(ctx, f)
	if err != nil {
		return nil, sdk.Capabilities{}, nil, err
	}
	if f.Target.Caps != nil {
		return t.target, *f.Target.Caps, f.Target.Related, nil
	}
	caps, err := s.deps.Connectors.Capabilities(f.Target.Type, t.open, f.Entity)
	if err != nil {
		return nil, sdk.Capabilities{}, nil, fmt.Errorf("target endpoint %s of tenant %s: %w", f.Target.Name, f.Tenant, err)
	}
	var related []sdk.Capabilities
	for _, e := range recipe.Related(f.Entity) {
		if c, err := s.deps.Connectors.Capabilities(f.Target.Type, t.open, e); err == nil {
			related = append(related, c)
		}
	}
	return t.target, caps, related, nil
}

func (s *Service) openFor(ctx context.Context, f *flowconfig.Flow) (*openTarget, error) {
	settings, err := s.fingerprint(f)
	if err != nil {
		return nil, err
	}
	key := f.Tenant + "/" + f.Target.Name
	if t := s.openTarget(key, settings); t != nil {
		return t, nil
	}
	// Opened without the lock: a target that takes its time to connect
	// (a host that drops packets) holds up only the partitions pushing to
	// it, not every other tenant's pushes.
	open, err := s.withCredentials(f)
	if err != nil {
		return nil, err
	}
	// One target per endpoint, so its budget is the endpoint's, shared by
	// every flow that writes to it (in this process).
	valid, err := s.deps.Connectors.ValidateSettings(f.Target.Type, open)
	if err != nil {
		return nil, fmt.Errorf("opening target endpoint %s of tenant %s: %w", f.Target.Name, f.Tenant, err)
	}
	budget := sdk.NewBudget(sdk.BudgetFromSettings(valid), sdk.WithBudgetMetrics(s.deps.BudgetMetrics, f.Tenant, f.Target.Name))
	t, err := s.deps.Connectors.OpenTarget(ctx, f.Target.Type, open, sdk.Env{Tenant: f.Tenant, Egress: s.egress, Budget: budget})
	if err != nil {
		return nil, fmt.Errorf("opening target endpoint %s of tenant %s: %w", f.Target.Name, f.Tenant, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.targets[key]; ok {
		if cur.settings == settings {
			// Another partition opened it meanwhile.
			if err := t.Close(); err != nil {
				s.log.Warn("closing a second connection to a target", "tenant", f.Tenant, "endpoint", f.Target.Name, "error", err)
			}
			return cur, nil
		}
		s.closeTarget(key, cur, "its settings changed")
	}
	ot := &openTarget{settings: settings, target: t, open: open}
	s.targets[key] = ot
	return ot, nil
}

// openTarget returns the target open under key with settings, or nil; a
// target open with other settings is closed. It prunes the targets no flow
// uses once per flow index version.
func (s *Service) openTarget(key, settings string) *openTarget {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.deps.Flows.Version(); v != s.indexVersion {
		s.prune(v)
	}
	t, ok := s.targets[key]
	if !ok {
		return nil
	}
	if t.settings == settings {
		return t
	}
	s.closeTarget(key, t, "its settings changed")
	return nil
}

// closeTarget closes and forgets an open target; s.mu is held.
func (s *Service) closeTarget(key string, t *openTarget, why string) {
	if err := t.target.Close(); err != nil {
		s.log.Warn("closing a target: "+why, "target", key, "error", err)
	}
	delete(s.targets, key)
}
