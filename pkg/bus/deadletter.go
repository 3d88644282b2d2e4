package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Codes for dead letters the bus itself produces. Stages add their own.
const (
	CodeRetriesExhausted = "retries_exhausted"
	CodeMaxDeliveries    = "max_deliveries"
	// CodeTooLarge is an event, or what a stage made of it, larger than
	// the NATS server takes.
	CodeTooLarge = "too_large"
)

// PermanentError is a failure that retrying will not fix: the message is too
// large, malformed, refused for good. A BatchHandler returns one (wrapped or
// not) for the message it stopped at, and the consumer dead-letters that
// message at once with Code, instead of retrying it with back-off, and goes
// on with the rest. When the handler failed the batch as a whole (done = 0
// with more than one message in hand), the consumer hands the batch over in
// halves until the message that fails is alone, so its batch-mates are not
// dead-lettered with it.
type PermanentError struct {
	// Code goes into the dead letter's Syncline-Dead-Code header.
	Code string
	Err  error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as a failure that retrying will not fix; code names it
// in the dead letter.
func Permanent(code string, err error) error { return &PermanentError{Code: code, Err: err} }

// HeaderDeadOmitted says what a dead letter left out to fit the server's
// message size limit, and where the event can still be read.
const HeaderDeadOmitted = "Syncline-Dead-Omitted"

func isDeadLetter(m *nats.Msg) bool { return strings.HasPrefix(m.Subject, "dlq.") }

// fitDeadLetter makes a dead letter that is larger than limit (or has more
// headers than JetStream stores) fit: it leaves out the event's bytes, and
// if that is not enough the event's own headers too (keeping the dead
// letter's, which are bounded), and says so in HeaderDeadOmitted. The event
// itself stays in its stream (named by the dead letter's stream and
// sequence headers) for the stream's max age.
func fitDeadLetter(m *nats.Msg, limit int) *nats.Msg {
	out := nats.NewMsg(m.Subject)
	for k, v := range m.Header {
		out.Header[k] = v
	}
	where := fmt.Sprintf("the event is message %s of stream %s until the stream's max age removes it",
		m.Header.Get(HeaderDeadSequence), m.Header.Get(HeaderDeadStream))
	out.Header.Set(HeaderDeadOmitted, fmt.Sprintf("the event's %d bytes: with the dead letter's headers they were more than the %d bytes the NATS server takes; %s", len(m.Data), limit, where))
	if size := payloadSize(out); size <= limit && size <= maxHeaders {
		return out
	}
	for k := range out.Header {
		if k != HeaderMsgID && !strings.HasPrefix(k, "Syncline-Dead-") {
			delete(out.Header, k)
		}
	}
	out.Header.Set(HeaderDeadOmitted, fmt.Sprintf("the event's %d bytes and its headers: with the dead letter's headers they were more than the NATS server takes (%d bytes, %d of them headers); %s", len(m.Data), limit, maxHeaders, where))
	return out
}

// DeadLetter builds the dead-letter message for m: the original bytes and
// headers, untouched, so that a replay after the cause is fixed sends exactly
// what arrived, plus headers saying where it came from and why it stopped.
// Its message id is the source stream and sequence, so the stage's own
// dead-lettering and the advisory path never store one message twice.
func DeadLetter(m jetstream.Msg, stage, code, reason string) *nats.Msg {
	return DeadLetterForFlow(m, "", nil, stage, code, reason)
}

// DeadLetterForFlow dead-letters one flow's copy of m: data replaces m's bytes
// (the envelope with its flow set, so a replay runs that flow only) and the
// flow is part of the message id, so each flow's failure is kept.
func DeadLetterForFlow(m jetstream.Msg, flow string, data []byte, stage, code, reason string) *nats.Msg {
	var stream string
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		stream, seq = md.Stream, md.Sequence.Stream
	}
	if data == nil {
		data = m.Data()
	}
	out := deadLetterMsg(m.Subject(), m.Headers(), data, stream, seq, deliveries(m), stage, code, reason)
	if f, ok := m.(*frameItem); ok {
		markIndex(out, f.index)
	}
	if flow != "" {
		out.Header.Set(HeaderMsgID, out.Header.Get(HeaderMsgID)+":"+flow)
	}
	return out
}

func deadLetterMsg(subject string, h nats.Header, data []byte, stream string, seq uint64, delivered int, stage, code, reason string) *nats.Msg {
	tenant := TenantOf(subject)
	if tenant == "" {
		tenant = NoFlow
	}
	out := nats.NewMsg(DeadLetterSubject(tenant, stage, SubjectPartition(subject)))
	for k, v := range h {
		if k == HeaderMsgID {
			continue
		}
		out.Header[k] = v
	}
	out.Header.Set(HeaderMsgID, "dlq:"+stream+":"+strconv.FormatUint(seq, 10))
	out.Header.Set(HeaderDeadStage, stage)
	out.Header.Set(HeaderDeadCode, code)
	out.Header.Set(HeaderDeadReason, oneLine(reason))
	out.Header.Set(HeaderDeadSubject, subject)
	out.Header.Set(HeaderDeadStream, stream)
	out.Header.Set(HeaderDeadSequence, strconv.FormatUint(seq, 10))
	out.Header.Set(HeaderDeadDeliveries, strconv.Itoa(delivered))
	out.Header.Set(HeaderDeadAt, time.Now().UTC().Format(time.RFC3339Nano))
	out.Data = data
	return out
}

// oneLine keeps a reason a valid header value.
func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

type deadLetterer struct {
	pub   *Publisher
	stage string
}

func (d *deadLetterer) publish(ctx context.Context, m jetstream.Msg, code, reason string) error {
	return d.pub.Publish(ctx, DeadLetter(m, d.stage, code, reason))
}

// advisory is the part of JetStream's max-deliveries advisory we use.
type advisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// DeadLetterWatcher dead-letters messages that the server stopped
// redelivering because no stage ever acknowledged them — a stage that crashed
// or hung on them every time. Stages dead-letter the failures they see
// themselves; this catches the ones they could not see.
type DeadLetterWatcher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	pub *Publisher
	log *slog.Logger
	sub *nats.Subscription
}

// NewDeadLetterWatcher returns a watcher; Start subscribes.
func NewDeadLetterWatcher(nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) *DeadLetterWatcher {
	return &DeadLetterWatcher{nc: nc, js: js, pub: NewPublisher(js), log: log}
}

// Start subscribes to the advisories in a queue group, so replicas share them.
func (w *DeadLetterWatcher) Start(context.Context) error {
	sub, err := w.nc.QueueSubscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>", "syncline-dead-letters", w.handle)
	if err != nil {
		return fmt.Errorf("subscribing to max-deliveries advisories: %w", err)
	}
	w.sub = sub
	return nil
}

// Stop unsubscribes after the advisory in hand is handled.
func (w *DeadLetterWatcher) Stop(context.Context) error {
	if w.sub == nil {
		return nil
	}
	if err := w.sub.Drain(); err != nil {
		return fmt.Errorf("draining advisory subscription: %w", err)
	}
	return nil
}

func (w *DeadLetterWatcher) handle(m *nats.Msg) {
	var a advisory
	if err := json.Unmarshal(m.Data, &a); err != nil {
		w.log.Error("decoding max-deliveries advisory", "error", err)
		return
	}
	if !strings.HasPrefix(a.Stream, "SYNCLINE_") || a.Stream == StreamDeadLetter {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := w.js.Stream(ctx, a.Stream)
	if err != nil {
		w.log.Error("dead-lettering after max deliveries", "stream", a.Stream, "sequence", a.StreamSeq, "error", err)
		return
	}
	raw, err := stream.GetMsg(ctx, a.StreamSeq)
	if err != nil {
		w.log.Error("dead-lettering after max deliveries", "stream", a.Stream, "sequence", a.StreamSeq, "error", err)
		return
	}
	stage, _, _ := strings.Cut(a.Consumer, "-")
	reason := fmt.Sprintf("delivered %d times to %s without being acknowledged (the stage crashed or timed out on it)", a.Deliveries, a.Consumer)
	out := deadLetters(raw.Subject, raw.Header, raw.Data, a.Stream, a.StreamSeq, a.Deliveries, stage, CodeMaxDeliveries, reason)
	if err := w.pub.Publish(ctx, out...); err != nil {
		w.log.Error("dead-lettering after max deliveries", "stream", a.Stream, "sequence", a.StreamSeq, "error", err)
	}
}
