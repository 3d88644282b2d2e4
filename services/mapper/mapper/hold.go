package mapper

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/stage"
)

// Holding. While a flow's integrator is inactive, the mapper keeps the flow's
// events, as they arrived, in the hold stream (subject hold.<tenant>.<flow>):
// nothing is dropped and nothing is pushed. When the integrator is active
// again, the mapper releases them in order, mapping each with the flow as it
// is then, before any newer event of the flow: as long as a flow has held
// events, its new events join them, so one key's changes never overtake each
// other. A deleted integrator's held events are released too, and refused
// and logged as every event of a deleted integrator is; a flow that is gone
// has its held events dead-lettered.
//
// All of it runs in the mapper consumer's goroutine (the handler and the
// consumer's tick), and only in the process that holds the mapper's lease,
// so holding and releasing never race each other.

// headerHeldSubject carries a held event's original subject.
const headerHeldSubject = "Syncline-Held-Subject"

// releaseBatch is how many held events one publish round moves.
const releaseBatch = 500

// heldKey names a flow in the held set.
type heldKey struct{ tenant, flow string }

// loadHeld rebuilds the set of flows that have held events from the hold
// stream: another process may have held events while this one did not run
// the consumer.
func (s *Service) loadHeld(ctx context.Context) error {
	st, err := s.deps.JetStream.Stream(ctx, bus.StreamHold)
	if err != nil {
		return fmt.Errorf("opening the hold stream: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("hold.>"))
	if err != nil {
		return fmt.Errorf("reading the hold stream: %w", err)
	}
	held := map[heldKey]bool{}
	for subject, n := range info.State.Subjects {
		parts := strings.Split(subject, ".")
		if n > 0 && len(parts) == 3 {
			held[heldKey{parts[1], parts[2]}] = true
		}
	}
	s.holdStream, s.held = st, held
	return nil
}

// holds says whether an event of f must be held: its integrator is
// inactive, or earlier events of f still wait.
func (s *Service) holds(f *flowconfig.Flow) bool {
	return f.Stage == flowconfig.StageInactive || s.held[heldKey{f.Tenant, f.Name}]
}

// hold returns the message that keeps m's event for flow f.
func (s *Service) hold(m jetstream.Msg, eventID string, f *flowconfig.Flow) *nats.Msg {
	s.held[heldKey{f.Tenant, f.Name}] = true
	out := nats.NewMsg(bus.HoldSubject(f.Tenant, f.Name))
	for k, v := range m.Headers() {
		out.Header[k] = v
	}
	out.Header.Set(bus.HeaderMsgID, eventID+":hold:"+f.Name)
	out.Header.Set(headerHeldSubject, m.Subject())
	out.Data = m.Data()
	return out
}

// release moves the held events of every flow whose integrator is no
// longer inactive on to the flow stream, oldest first.
func (s *Service) release(ctx context.Context) error {
	for k := range s.held {
		f := s.deps.Flows.Get(k.tenant, k.flow)
		if f != nil && f.Stage == flowconfig.StageInactive {
			continue
		}
		if err := s.drain(ctx, k, f); err != nil {
			return err
		}
	}
	return nil
}

// drain releases one flow's held events; f is nil for a flow that is gone.
func (s *Service) drain(ctx context.Context, k heldKey, f *flowconfig.Flow) error {
	subject := bus.HoldSubject(k.tenant, k.flow)
	released := 0
	var next uint64 = 1
	for {
		out := make([]*nats.Msg, 0, releaseBatch)
		var last uint64
		n := 0
		for n < releaseBatch {
			raw, err := s.holdStream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading held events of flow %s/%s: %w", k.tenant, k.flow, err)
			}
			m := &heldMsg{raw: raw}
			if f == nil {
				out = append(out, bus.DeadLetter(m, stage.Mapper, stage.CodeFlowGone,
					fmt.Sprintf("flow %q of tenant %q was deleted while its events were held", k.flow, k.tenant)))
			} else {
				out = s.mapHeld(ctx, m, f, out)
			}
			last, next = raw.Sequence, raw.Sequence+1
			n++
		}
		if last == 0 {
			delete(s.held, k)
			if released > 0 {
				s.log.Info("released held events", "tenant", k.tenant, "flow", k.flow, "events", released)
			}
			return nil
		}
		if err := s.pub.Publish(ctx, out...); err != nil {
			return fmt.Errorf("releasing held events of flow %s/%s: %w", k.tenant, k.flow, err)
		}
		// Only now that their outputs are durable do the held events go.
		if err := s.holdStream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(last+1)); err != nil {
			return fmt.Errorf("removing released events of flow %s/%s: %w", k.tenant, k.flow, err)
		}
		released += n
	}
}

// mapHeld maps one held event for f.
func (s *Service) mapHeld(ctx context.Context, m *heldMsg, f *flowconfig.Flow, out []*nats.Msg) []*nats.Msg {
	e, err := envelope.Decode(m.Data())
	if err != nil {
		return append(out, bus.DeadLetter(m, stage.Mapper, stage.CodeMalformed, err.Error()))
	}
	source := e.Payload
	return s.mapFlow(ctx, m, e, source, f, out)
}

// heldMsg is a held event read back from the hold stream, seen as the
// delivery it was: its original subject and headers. It is never
// acknowledged: the hold stream is purged once the event is released.
type heldMsg struct {
	raw *jetstream.RawStreamMsg
}

var _ jetstream.Msg = (*heldMsg)(nil)

func (h *heldMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: h.raw.Sequence},
		NumDelivered: 1,
		Stream:       bus.StreamHold,
		Timestamp:    h.raw.Time,
	}, nil
}
func (h *heldMsg) Data() []byte         { return h.raw.Data }
func (h *heldMsg) Headers() nats.Header { return h.raw.Header }
func (h *heldMsg) Subject() string {
	if s := h.raw.Header.Get(headerHeldSubject); s != "" {
		return s
	}
	return h.raw.Subject
}
func (h *heldMsg) Reply() string                    { return "" }
func (h *heldMsg) Ack() error                       { return errNoAck }
func (h *heldMsg) DoubleAck(context.Context) error  { return errNoAck }
func (h *heldMsg) Nak() error                       { return errNoAck }
func (h *heldMsg) NakWithDelay(time.Duration) error { return errNoAck }
func (h *heldMsg) InProgress() error                { return errNoAck }
func (h *heldMsg) Term() error                      { return errNoAck }
func (h *heldMsg) TermWithReason(string) error      { return errNoAck }

var errNoAck = errors.New("a held event is released by purging the hold stream, not acknowledged")
