package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher publishes to JetStream and waits until the stream has stored
// every message. It sends a whole batch before waiting for the first
// acknowledgement, so a batch costs one round trip, not one per message, and
// it gathers the batch's messages between stages into frames (frame.go), so
// the streams store one message per subject and batch, not one per event.
type Publisher struct {
	js jetstream.JetStream
}

// NewPublisher returns a publisher on js. Create js with
// jetstream.WithPublishAsyncMaxPending at least as large as the biggest batch.
func NewPublisher(js jetstream.JetStream) *Publisher {
	return &Publisher{js: js}
}

// Publish sends msgs and returns when the stream has stored all of them, or
// the first error. ctx bounds the wait. Every message should carry a
// Nats-Msg-Id header: then publishing a batch again after a partial failure
// stores each message once.
//
// Sizes are checked before anything is sent: a message larger than the
// server takes (max_payload, headers included; and at most 64 KiB of
// headers, JetStream's own limit) fails the whole call with a
// *PermanentError (CodeTooLarge) that names it, since sending it again will
// never work, except a dead letter, which always fits (see fitDeadLetter).
func (p *Publisher) Publish(ctx context.Context, msgs ...*nats.Msg) error {
	return p.publish(ctx, msgs, nil)
}

// PublishAcked is Publish returning the stream's acknowledgement of each
// message, in the order of msgs. An acknowledgement with Duplicate set says
// that the stream already held a message with the same Nats-Msg-Id within
// its duplicate window, and did not store this one.
func (p *Publisher) PublishAcked(ctx context.Context, msgs ...*nats.Msg) ([]*jetstream.PubAck, error) {
	acks := make([]*jetstream.PubAck, len(msgs))
	if err := p.publish(ctx, msgs, acks); err != nil {
		return nil, err
	}
	return acks, nil
}

// publish sends msgs and, when acks is not nil, keeps each acknowledgement
// in it.
func (p *Publisher) publish(ctx context.Context, msgs []*nats.Msg, acks []*jetstream.PubAck) error {
	if len(msgs) == 0 {
		return nil
	}
	msgs, err := p.fit(msgs)
	if err != nil {
		return err
	}
	if acks == nil {
		// Events between stages travel in frames (frame.go); a caller
		// that wants each message's acknowledgement publishes them alone.
		msgs = Frame(msgs, int(p.js.Conn().MaxPayload()))
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var sendErr error
	for _, m := range msgs {
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			sendErr = fmt.Errorf("publishing to %s: %w", m.Subject, classify(m, err))
			break
		}
		futures = append(futures, f)
	}
	// Wait for what was sent even after a send error, so nothing is left
	// outstanding when the caller retries.
	var ackErr error
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if acks != nil {
				acks[i] = ack
			}
		case err := <-f.Err():
			if ackErr == nil {
				ackErr = fmt.Errorf("publishing to %s: %w", f.Msg().Subject, classify(f.Msg(), err))
			}
		case <-ctx.Done():
			return fmt.Errorf("publishing %d messages: %w", len(msgs), ctx.Err())
		}
	}
	return errors.Join(sendErr, ackErr)
}

// fit checks every message's size against the server's limit. It returns
// msgs, or a copy with the dead letters that did not fit made to fit.
func (p *Publisher) fit(msgs []*nats.Msg) ([]*nats.Msg, error) {
	limit := int(p.js.Conn().MaxPayload())
	if limit <= 0 {
		// Not connected yet: the server checks on arrival.
		return msgs, nil
	}
	copied := false
	for i, m := range msgs {
		size := payloadSize(m)
		if size <= limit && size-len(m.Data) <= maxHeaders {
			continue
		}
		if !isDeadLetter(m) {
			return nil, tooLarge(m, size, limit)
		}
		if !copied {
			msgs, copied = slices.Clone(msgs), true
		}
		msgs[i] = fitDeadLetter(m, limit)
	}
	return msgs, nil
}

// maxHeaders is the most header bytes JetStream stores with a message.
const maxHeaders = 64 << 10

// payloadSize is what the server counts against max_payload: the data and
// the encoded headers ("NATS/1.0\r\n", "key: value\r\n" each, "\r\n"). It
// counts values untrimmed, so it may say a few bytes more than the client
// sends, never less, and costs less than nats.Msg.Size, which trims every
// value: it runs for every message published.
func payloadSize(m *nats.Msg) int {
	n := len(m.Data)
	if len(m.Header) == 0 {
		return n
	}
	n += len("NATS/1.0\r\n\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + len(": \r\n")
		}
	}
	return n
}

func tooLarge(m *nats.Msg, size, limit int) error {
	if headers := size - len(m.Data); headers > maxHeaders {
		return &PermanentError{Code: CodeTooLarge, Err: fmt.Errorf(
			"message %s to %s has %d bytes of headers, more than the %d bytes JetStream stores: send fewer or shorter headers",
			m.Header.Get(HeaderMsgID), m.Subject, headers, maxHeaders)}
	}
	return &PermanentError{Code: CodeTooLarge, Err: fmt.Errorf(
		"message %s to %s is %d bytes with its headers, more than the %d bytes the NATS server takes (max_payload): make the record smaller, or raise max_payload on every NATS server",
		m.Header.Get(HeaderMsgID), m.Subject, size, limit)}
}

// jsHeaderExceedsMaximum is JetStream's error code for headers over 64 KiB.
const jsHeaderExceedsMaximum = 10097

// classify marks the publish errors that retrying will not fix.
func classify(m *nats.Msg, err error) error {
	var api *jetstream.APIError
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) ||
		errors.As(err, &api) && api.ErrorCode == jsHeaderExceedsMaximum {
		return &PermanentError{Code: CodeTooLarge, Err: fmt.Errorf("message %s is too large for the server: %w", m.Header.Get(HeaderMsgID), err)}
	}
	return err
}
