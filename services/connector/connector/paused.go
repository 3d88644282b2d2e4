package connector

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"

	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/flowstate"
	"github.com/syncline/syncline/pkg/stage"
)

// Holding a paused flow's events. While a flow's breaker is open, each
// partition keeps the flow's events, as they arrived, in the hold stream
// under hold.<tenant>.<flow>.<partition>. As long as a partition has held
// events of a flow, the flow's new events join them, so one key's changes
// never overtake each other. The partition's tick releases them: a probe of
// one event once the cool-down is over, then the rest in batches, oldest
// first. Nothing in the hold stream expires: a flow paused for a week keeps
// a week of events. A flow deleted meanwhile has its held events
// dead-lettered.
//
// The handler, the tick and the open hook all run in the partition
// consumer's goroutine, and only in the process that holds its lease, so
// holding and releasing never race.

const (
	// releaseEvery is how often a partition looks at its held flows.
	releaseEvery = 250 * time.Millisecond
	// releaseRounds bounds the batches one tick releases per flow, so a
	// long backlog is pushed while the partition's new events keep
	// flowing between ticks.
	releaseRounds = 4
	// probeTimeout bounds a probe, so a target that hangs stalls its
	// partition's other flows for no longer than this per cool-down.
	probeTimeout = 5 * time.Second
)

// partition is one push partition's consumer state.
type partition struct {
	s          *Service
	n          int
	holdStream jetstream.Stream
	// held are the flows with events of this partition in the hold stream.
	held map[flowKey]bool
	// size is a held flow's next release batch: it starts at one (the
	// probe), doubles with each batch that goes through, up to MaxBatch,
	// and halves when one fails, so a target that is slow rather than
	// down gets batches it can take within the push's time.
	size map[flowKey]int
	// restored are the flows found held when the partition opened, with
	// when their oldest event was held: no breaker of this process paused
	// them, so their release is told as a resume.
	restored map[flowKey]time.Time
}

// loadHeld rebuilds the partition's held flows from the hold stream: another
// process may have held events while this one did not run the partition.
func (p *partition) loadHeld(ctx context.Context) error {
	st, flows, err := bus.OpenHold(ctx, p.s.deps.JetStream, "hold.*.*."+strconv.Itoa(p.n))
	if err != nil {
		return err
	}
	held := make(map[flowKey]bool, len(flows))
	restored := map[flowKey]time.Time{}
	for f := range flows {
		k := flowKey{f.Tenant, f.Flow}
		held[k] = true
		if !p.held[k] {
			restored[k] = time.Now()
		}
	}
	p.holdStream, p.held, p.restored = st, held, restored
	return nil
}

// hold adds to out the messages that keep g's events in the hold stream.
func (p *partition) hold(g *group, why string, out []*nats.Msg) []*nats.Msg {
	f := g.flow
	p.held[flowKey{f.Tenant, f.Name}] = true
	subject := bus.PausedSubject(f.Tenant, f.Name, p.n)
	for _, it := range g.items {
		it.span.AddEvent("held: " + why)
		out = append(out, bus.Held(it.msg, subject, stage.MsgID(it.env)+":held"))
	}
	p.s.deps.Metrics.Held(stage.Connector, len(g.items))
	return out
}

// release pushes the held events of each flow whose breaker allows it,
// within half the ack wait, so the messages the consumer has fetched are
// not delivered again meanwhile.
func (p *partition) release(ctx context.Context) error {
	deadline := time.Now().Add(p.s.pushTimeout)
	for k := range p.held {
		if time.Until(deadline) < p.s.minPush {
			return nil
		}
		if err := p.releaseFlow(ctx, k, deadline); err != nil {
			return err
		}
	}
	return nil
}

func (p *partition) releaseFlow(ctx context.Context, k flowKey, deadline time.Time) error {
	s := p.s
	f := s.deps.Flows.Get(k.tenant, k.flow)
	if f == nil {
		return p.dropHeld(ctx, k)
	}
	fp, _ := s.fingerprint(f)
	ok, probe := s.breakers.claim(k, fp, time.Now())
	if !ok {
		return nil
	}
	if probe {
		// However the probe ends, another may follow: a failure or a
		// success has settled the breaker already, and a probe that was
		// not made (nothing held, a stop) leaves it as it was.
		defer s.breakers.unclaim(k)
	}
	subject := bus.PausedSubject(k.tenant, k.flow, p.n)
	for range releaseRounds {
		timeout := time.Until(deadline)
		if timeout < p.s.minPush {
			return nil
		}
		n := p.size[k]
		if n == 0 {
			n = s.deps.Bus.MaxBatch
		}
		if probe {
			n, timeout = 1, min(timeout, probeTimeout)
		}
		held, err := bus.ReadHeld(ctx, p.holdStream, subject, 1, n)
		if err != nil {
			return fmt.Errorf("reading held events of flow %s/%s: %w", k.tenant, k.flow, err)
		}
		if len(held) == 0 {
			delete(p.held, k)
			delete(p.size, k)
			delete(p.restored, k)
			return nil
		}
		pushed, err := p.pushHeld(ctx, f, held, probe, timeout)
		if err != nil {
			return err
		}
		if !pushed {
			p.size[k] = max(n/2, 1)
			return nil
		}
		if len(held) == n && !probe {
			p.size[k] = min(2*n, s.deps.Bus.MaxBatch)
		}
		probe = false
		last := held[len(held)-1].Raw.Sequence
		// Only now that their outcomes are durable do the held events go.
		if err := p.holdStream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(last+1)); err != nil {
			return fmt.Errorf("removing released events of flow %s/%s: %w", k.tenant, k.flow, err)
		}
		s.deps.Metrics.Released(stage.Connector, len(held))
	}
	return nil
}

// pushHeld pushes held events of f and publishes their outcomes. pushed is
// false when the target failed again: the events stay held, and the
// breaker's cool-down grows.
func (p *partition) pushHeld(ctx context.Context, f *flowconfig.Flow, held []*bus.HeldMsg, probe bool, timeout time.Duration) (pushed bool, err error) {
	s := p.s
	var out []*nats.Msg
	items := make([]item, 0, len(held))
	for i, m := range held {
		e, err := envelope.Decode(m.Data())
		if err != nil {
			out = append(out, bus.DeadLetter(m, stage.Connector, stage.CodeMalformed, err.Error()))
			continue
		}
		it := s.startItem(ctx, i, m, e)
		it.span.AddEvent("released from the hold stream")
		items = append(items, it)
	}
	if len(items) > 0 {
		var pushed, told bool
		out, pushed, told, err = s.pushFlow(ctx, f, items, timeout, probe, out)
		if err != nil {
			endSpans(items, err)
			return false, err
		}
		if !pushed {
			// Held still; the notice, if this failure paused the flow,
			// goes out.
			for _, it := range items {
				it.span.SetStatus(codes.Error, "held: the target failed again")
				it.span.End()
			}
			return false, s.pub.Publish(ctx, out...)
		}
		k := flowKey{f.Tenant, f.Name}
		if since, ok := p.restored[k]; ok {
			delete(p.restored, k)
			if !told {
				// Held by a process that stopped: whether it had told the
				// tenant of a pause is not known here, so the release is
				// told (the eventlog passes on one resume per pause).
				out = s.notice(stage.NoticeFlowResumed, f, breakerState{since: heldSince(held[0], since)}, out)
				s.tellState(f, nil)
			}
		}
	}
	if err := s.pub.Publish(ctx, out...); err != nil {
		endSpans(items, err)
		return false, fmt.Errorf("publishing the outcomes of held events of flow %s/%s: %w", f.Tenant, f.Name, err)
	}
	endSpans(items, nil)
	return true, nil
}

// heldSince is when m was held, or fallback when the stream does not say.
func heldSince(m *bus.HeldMsg, fallback time.Time) time.Time {
	if m.Raw.Time.IsZero() {
		return fallback
	}
	return m.Raw.Time
}

// dropHeld dead-letters the held events of a flow that is gone.
func (p *partition) dropHeld(ctx context.Context, k flowKey) error {
	s := p.s
	if s.breakers.forget(k) {
		s.deps.Metrics.Paused(stage.Connector, -1)
		s.tellState(&flowconfig.Flow{Tenant: k.tenant, Name: k.flow}, nil)
	}
	subject := bus.PausedSubject(k.tenant, k.flow, p.n)
	reason := fmt.Sprintf("flow %q of tenant %q was deleted while its events were held (its target was failing)", k.flow, k.tenant)
	for {
		held, err := bus.ReadHeld(ctx, p.holdStream, subject, 1, s.deps.Bus.MaxBatch)
		if err != nil {
			return fmt.Errorf("reading held events of flow %s/%s: %w", k.tenant, k.flow, err)
		}
		if len(held) == 0 {
			delete(p.held, k)
			return nil
		}
		out := make([]*nats.Msg, len(held))
		for i, m := range held {
			out[i] = bus.DeadLetter(m, stage.Connector, stage.CodeFlowGone, reason)
		}
		if err := s.pub.Publish(ctx, out...); err != nil {
			return fmt.Errorf("dead-lettering held events of deleted flow %s/%s: %w", k.tenant, k.flow, err)
		}
		if err := p.holdStream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(held[len(held)-1].Raw.Sequence+1)); err != nil {
			return fmt.Errorf("removing dead-lettered held events of flow %s/%s: %w", k.tenant, k.flow, err)
		}
	}
}

// failed records a failed push of f: the flow's breaker opens, or stays open
// for longer. When this failure pauses the flow, the notice that tells its
// tenant is added to out.
func (s *Service) failed(f *flowconfig.Flow, cause error, probe bool, out []*nats.Msg) []*nats.Msg {
	fp, _ := s.fingerprint(f)
	if th := (*sdk.ThrottledError)(nil); errors.As(cause, &th) {
		if s.breakers.throttled(flowKey{f.Tenant, f.Name}, fp, th.RetryAfter, time.Now()) {
			s.deps.Metrics.Paused(stage.Connector, 1)
		}
		s.log.Info("target asked to slow down; holding the flow's events until then", "tenant", f.Tenant, "flow", f.Name,
			"endpoint", f.Target.Name, "retry_after", th.RetryAfter, "error", cause)
		return out
	}
	st := s.breakers.failed(flowKey{f.Tenant, f.Name}, fp, cause.Error(), probe, time.Now())
	log := s.log.With("tenant", f.Tenant, "flow", f.Name, "endpoint", f.Target.Name, "failures", st.failures)
	if st.opened {
		s.deps.Metrics.Paused(stage.Connector, 1)
		log.Warn("target failed; holding the flow's events until it works again", "error", cause)
	} else {
		log.Info("target failed again; the flow's events stay held", "error", cause)
	}
	s.tellState(f, &flowstate.Pause{LastError: st.reason, Since: st.since.UTC(), Failures: st.failures})
	if !st.paused {
		return out
	}
	log.Error("flow paused: its target keeps failing; its events are held, in order, until it works", "since", st.since, "error", cause)
	return s.notice(stage.NoticeFlowPaused, f, st, out)
}

// succeeded records a push of f that went through: an open breaker closes,
// and the tenant of a paused flow is told it resumed (told).
func (s *Service) succeeded(f *flowconfig.Flow, out []*nats.Msg) (_ []*nats.Msg, told bool) {
	st, wasOpen := s.breakers.succeeded(flowKey{f.Tenant, f.Name})
	if !wasOpen {
		return out, false
	}
	s.deps.Metrics.Paused(stage.Connector, -1)
	s.tellState(f, nil)
	s.log.Info("target works again; releasing the flow's held events", "tenant", f.Tenant, "flow", f.Name, "endpoint", f.Target.Name,
		"failures", st.failures, "since", st.since)
	if !st.resumed {
		return out, false
	}
	return s.notice(stage.NoticeFlowResumed, f, st, out), true
}

// stateTimeout bounds a write of a flow's state: the state is for people
// looking, and a slow bus must not hold up the partition's pushes.
const stateTimeout = 2 * time.Second

// tellState records f's pause (nil: f is not paused) where the control plane
// shows it. A failed write is logged, not retried: the next failure or
// success of the flow writes again, and the count of held events that makes
// a flow paused is read from the hold stream itself.
func (s *Service) tellState(f *flowconfig.Flow, p *flowstate.Pause) {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	var err error
	if p != nil {
		err = s.states.Paused(ctx, f.Tenant, f.Name, *p)
	} else {
		err = s.states.Resumed(ctx, f.Tenant, f.Name)
	}
	if err != nil {
		s.log.Warn("recording the flow's state for the control plane", "tenant", f.Tenant, "flow", f.Name, "error", err)
	}
}

func (s *Service) notice(kind string, f *flowconfig.Flow, st breakerState, out []*nats.Msg) []*nats.Msg {
	m, err := stage.Notice(&stage.FlowNotice{Kind: kind, Tenant: f.Tenant, Integrator: f.Integrator, Flow: f.Name,
		Endpoint: f.Target.Name, Reason: st.reason, Failures: st.failures, Since: st.since.UTC(), At: time.Now().UTC()}, s.deps.Bus.Partitions)
	if err != nil {
		s.log.Error("making a flow notice", "tenant", f.Tenant, "flow", f.Name, "error", err)
		return out
	}
	return append(out, m)
}
