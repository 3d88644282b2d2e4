package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderHeldSubject carries a held event's original subject.
const HeaderHeldSubject = "Syncline-Held-Subject"

// Held returns the message that keeps m in the hold stream under subject: m's
// bytes and headers, its original subject, and a message id of its own
// (m's, with suffix), so a re-hold within the duplicate window is stored
// once.
func Held(m jetstream.Msg, subject, msgID string) *nats.Msg {
	out := nats.NewMsg(subject)
	for k, v := range m.Headers() {
		out.Header[k] = v
	}
	out.Header.Set(HeaderMsgID, msgID)
	out.Header.Set(HeaderHeldSubject, m.Subject())
	out.Data = m.Data()
	return out
}

// HeldMsg is a held event read back from the hold stream, seen as the
// delivery it was: its original subject and headers, so that a stage handles
// (and dead-letters) it as it would have on arrival. It is never
// acknowledged: a released event leaves the hold stream by a purge.
type HeldMsg struct {
	Raw *jetstream.RawStreamMsg
}

var _ jetstream.Msg = (*HeldMsg)(nil)

// Metadata gives the hold stream's sequence and the time the event was held.
func (h *HeldMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: h.Raw.Sequence},
		NumDelivered: 1,
		Stream:       StreamHold,
		Timestamp:    h.Raw.Time,
	}, nil
}

// Data is the event's bytes.
func (h *HeldMsg) Data() []byte { return h.Raw.Data }

// Headers are the event's headers as it arrived, and HeaderHeldSubject.
func (h *HeldMsg) Headers() nats.Header { return h.Raw.Header }

// Subject is the subject the event arrived on.
func (h *HeldMsg) Subject() string {
	if s := h.Raw.Header.Get(HeaderHeldSubject); s != "" {
		return s
	}
	return h.Raw.Subject
}

// Reply is empty: a held event has no one to answer.
func (h *HeldMsg) Reply() string { return "" }

// Ack and the other acknowledgements fail: see HeldMsg.
func (h *HeldMsg) Ack() error                       { return errHeldNoAck }
func (h *HeldMsg) DoubleAck(context.Context) error  { return errHeldNoAck }
func (h *HeldMsg) Nak() error                       { return errHeldNoAck }
func (h *HeldMsg) NakWithDelay(time.Duration) error { return errHeldNoAck }
func (h *HeldMsg) InProgress() error                { return errHeldNoAck }
func (h *HeldMsg) Term() error                      { return errHeldNoAck }
func (h *HeldMsg) TermWithReason(string) error      { return errHeldNoAck }

var errHeldNoAck = errors.New("a held event is released by purging the hold stream, not acknowledged")

// ReadHeld reads up to n held events of subject from the hold stream st,
// oldest first, starting at sequence from (1 for the oldest).
func ReadHeld(ctx context.Context, st jetstream.Stream, subject string, from uint64, n int) ([]*HeldMsg, error) {
	var out []*HeldMsg
	for len(out) < n {
		raw, err := st.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, err
		}
		out = append(out, &HeldMsg{Raw: raw})
		from = raw.Sequence + 1
	}
	return out, nil
}

// HeldFlow names a flow with held events.
type HeldFlow struct{ Tenant, Flow string }

// OpenHold opens the hold stream and lists the flows with events held under
// filter (hold.*.* for the mapper's, hold.*.*.<partition> for one partition
// of the connector's): a stage rebuilds what it holds from the stream,
// since another process may have held events while this one did not run.
func OpenHold(ctx context.Context, js jetstream.JetStream, filter string) (jetstream.Stream, map[HeldFlow]bool, error) {
	st, err := js.Stream(ctx, StreamHold)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the hold stream: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the hold stream: %w", err)
	}
	tokens := strings.Count(filter, ".") + 1
	held := map[HeldFlow]bool{}
	for subject, n := range info.State.Subjects {
		parts := strings.Split(subject, ".")
		if n > 0 && len(parts) == tokens {
			held[HeldFlow{parts[1], parts[2]}] = true
		}
	}
	return st, held, nil
}
