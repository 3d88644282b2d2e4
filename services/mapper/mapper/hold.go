package mapper

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/stage"
)

// Holding. While a flow's integrator is inactive, the mapper keeps the flow's
// events, as they arrived, in the hold stream (subject
// hold.<tenant>.<flow>.mapper.<ingest partition>): nothing is dropped and
// nothing is pushed. When the integrator is active
// again, the mapper releases them in order, mapping each with the flow as it
// is then, before any newer event of the flow: as long as a flow has held
// events, its new events join them, so one key's changes never overtake each
// other. A deleted integrator's held events are released too, and refused
// and logged as every event of a deleted integrator is; a flow that is gone
// has its held events dead-lettered.
//
// Each ingest partition holds and releases its own events. All of it runs
// in the partition's consumer goroutine (the handler and the consumer's
// tick), and only in the process that holds the partition's lease, so
// holding and releasing never race each other.

// releaseBatch is how many held events one publish round moves.
const releaseBatch = 500

// loadHeld rebuilds the set of flows that have held events from the hold
// stream: another process may have held events while this one did not run
// the consumer.
func (p *partition) loadHeld(ctx context.Context) error {
	st, held, err := bus.OpenHold(ctx, p.s.deps.JetStream, "hold.*.*.mapper."+strconv.Itoa(p.n))
	if err != nil {
		return err
	}
	p.holdStream, p.held, p.legacy = st, held, nil
	if p.n == 0 {
		if _, p.legacy, err = bus.OpenHold(ctx, p.s.deps.JetStream, "hold.*.*"); err != nil {
			return err
		}
	}
	return nil
}

// holds says whether an event of f must be held: its integrator is
// inactive, or earlier events of f still wait.
func (p *partition) holds(f *flowconfig.Flow) bool {
	k := bus.HeldFlow{Tenant: f.Tenant, Flow: f.Name}
	return f.Stage == flowconfig.StageInactive || p.held[k] || p.legacy[k]
}

// hold returns the message that keeps m's event for flow f. It carries the
// span in ctx, so that the release continues the event's trace, even for an
// event that arrived without trace context.
func (p *partition) hold(ctx context.Context, m jetstream.Msg, eventID string, f *flowconfig.Flow) *nats.Msg {
	p.held[bus.HeldFlow{Tenant: f.Tenant, Flow: f.Name}] = true
	msg := bus.Held(m, bus.HoldSubject(f.Tenant, f.Name, p.n), eventID+":"+f.Tenant+":hold:"+f.Name)
	bus.InjectTrace(ctx, msg.Header)
	return msg
}

// release moves the held events of every flow whose integrator is no
// longer inactive on to the flow stream, oldest first: those an earlier
// version held first.
func (p *partition) release(ctx context.Context) error {
	for _, set := range []map[bus.HeldFlow]bool{p.legacy, p.held} {
		for k := range set {
			f := p.s.deps.Flows.Get(k.Tenant, k.Flow)
			if f != nil && f.Stage == flowconfig.StageInactive {
				continue
			}
			subject := bus.HoldSubject(k.Tenant, k.Flow, p.n)
			if p.legacy[k] {
				subject = bus.LegacyHoldSubject(k.Tenant, k.Flow)
			}
			if err := p.drain(ctx, k, f, subject); err != nil {
				return err
			}
			delete(set, k)
		}
	}
	return nil
}

// drain releases one flow's held events under subject; f is nil for a flow
// that is gone.
func (p *partition) drain(ctx context.Context, k bus.HeldFlow, f *flowconfig.Flow, subject string) error {
	s := p.s
	released := 0
	for {
		held, err := bus.ReadHeld(ctx, p.holdStream, subject, 1, releaseBatch)
		if err != nil {
			return fmt.Errorf("reading held events of flow %s/%s: %w", k.Tenant, k.Flow, err)
		}
		out := make([]*nats.Msg, 0, len(held))
		spans := make([]trace.Span, 0, len(held))
		var last uint64
		for _, m := range held {
			if f == nil {
				out = append(out, bus.DeadLetter(m, stage.Mapper, stage.CodeFlowGone,
					fmt.Sprintf("flow %q of tenant %q was deleted while its events were held", k.Flow, k.Tenant)))
			} else {
				var span trace.Span
				out, span = s.mapHeld(ctx, m, f, out)
				spans = append(spans, span)
			}
			last = m.Raw.Sequence
		}
		n := len(held)
		if last == 0 {
			if released > 0 {
				s.log.Info("released held events", "tenant", k.Tenant, "flow", k.Flow, "events", released)
			}
			return nil
		}
		err = s.pub.Publish(ctx, out...)
		for _, sp := range spans {
			if err != nil {
				sp.SetStatus(codes.Error, "publishing outputs failed")
			}
			sp.End()
		}
		if err != nil {
			return fmt.Errorf("releasing held events of flow %s/%s: %w", k.Tenant, k.Flow, err)
		}
		// Only now that their outputs are durable do the held events go.
		if err := p.holdStream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(last+1)); err != nil {
			return fmt.Errorf("removing released events of flow %s/%s: %w", k.Tenant, k.Flow, err)
		}
		released += n
	}
}

// mapHeld maps one held event for f and returns its span, still open, so
// it ends when the outputs are durable. The span joins the event's trace
// (the held message keeps its headers), which a release would otherwise
// cut in two.
func (s *Service) mapHeld(ctx context.Context, m *bus.HeldMsg, f *flowconfig.Flow, out []*nats.Msg) ([]*nats.Msg, trace.Span) {
	ctx, span := stage.Start(ctx, s.tracer, "mapper map", m)
	span.AddEvent("released from the hold stream")
	e, err := envelope.Decode(m.Data())
	if err != nil {
		span.SetStatus(codes.Error, stage.CodeMalformed)
		return append(out, bus.DeadLetter(m, stage.Mapper, stage.CodeMalformed, err.Error())), span
	}
	stage.Describe(span, e)
	nameFlows(span, []*flowconfig.Flow{f})
	source := e.Payload
	return s.mapFlow(ctx, m, e, source, f, out), span
}
