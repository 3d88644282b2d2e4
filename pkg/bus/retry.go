package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Retrying returns js with its creates of streams and key-value buckets
// retried when the server does not answer in time. A JetStream cluster may
// let concurrent creates of one stream or bucket time out (replicas of
// every service starting together on a new cluster all create the same
// streams and buckets), though a second try finds it made; without the
// retry, the replica would stop at start.
func Retrying(js jetstream.JetStream) jetstream.JetStream { return retrying{js} }

type retrying struct{ jetstream.JetStream }

func (r retrying) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return retryCreate(ctx, func(ctx context.Context) (jetstream.Stream, error) { return r.JetStream.CreateOrUpdateStream(ctx, cfg) })
}

func (r retrying) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return retryCreate(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return r.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	})
}

// createTries is how often a create is tried; createPause the pause after
// the first failed try, doubled after each.
const (
	createTries = 4
	createPause = 250 * time.Millisecond
)

// retryCreate calls create until it succeeds, fails otherwise than by a
// timeout, ctx ends, or createTries tries have timed out.
func retryCreate[T any](ctx context.Context, create func(context.Context) (T, error)) (T, error) {
	pause := createPause
	for try := 1; ; try++ {
		v, err := create(ctx)
		timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
		if err == nil || !timedOut || ctx.Err() != nil || try == createTries {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(pause):
		}
		pause *= 2
	}
}
