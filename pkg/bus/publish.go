package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher publishes to JetStream and waits until the stream has stored
// every message. It sends a whole batch before waiting for the first
// acknowledgement, so a batch costs one round trip, not one per message.
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
func (p *Publisher) Publish(ctx context.Context, msgs ...*nats.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var sendErr error
	for _, m := range msgs {
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			sendErr = fmt.Errorf("publishing to %s: %w", m.Subject, err)
			break
		}
		futures = append(futures, f)
	}
	// Wait for what was sent even after a send error, so nothing is left
	// outstanding when the caller retries.
	var ackErr error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if ackErr == nil {
				ackErr = fmt.Errorf("publishing to %s: %w", f.Msg().Subject, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("publishing %d messages: %w", len(msgs), ctx.Err())
		}
	}
	return errors.Join(sendErr, ackErr)
}
