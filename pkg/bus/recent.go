package bus

import (
	"context"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// recentIDs remembers the Nats-Msg-Ids of the events a consumer finished
// within the duplicate window, so that an event published again in another
// frame (a batch handed over one event at a time after a crash, where the
// first run had framed it) is finished again at once instead of handed to the
// stage: what JetStream's duplicate window does for one message, done per
// event. It keeps 64-bit hashes in two generations, each at most a window
// long, so an id is remembered for one to two windows, at about 20 bytes per
// event; a collision between two events of one window (about one in 10^10 at
// 10,000 events per second) would drop one.
//
// The memory outlives the process: a consumer that starts reads back what
// its durable finished in the last two windows (rememberFinished), so a
// stage that crashed together with the one upstream of it (the all-in-one
// mode killed) does not take the upstream stage's republished events for new
// ones.
type recentIDs struct {
	window    time.Duration
	seed      maphash.Seed
	cur, prev map[uint64]struct{}
	since     time.Time
}

func newRecentIDs(window time.Duration) *recentIDs {
	return &recentIDs{window: window, seed: maphash.MakeSeed(), cur: map[uint64]struct{}{}, since: time.Now()}
}

func msgID(m jetstream.Msg) string {
	return HeaderValue(m, HeaderMsgID)
}

// seen reports whether m's event was finished within the window.
func (r *recentIDs) seen(m jetstream.Msg) bool {
	id := msgID(m)
	if id == "" {
		return false
	}
	h := maphash.String(r.seed, id)
	if _, ok := r.cur[h]; ok {
		return true
	}
	_, ok := r.prev[h]
	return ok
}

// add remembers that msgs' events are finished.
func (r *recentIDs) add(msgs []jetstream.Msg) {
	if now := time.Now(); now.Sub(r.since) > r.window {
		r.prev, r.cur, r.since = r.cur, make(map[uint64]struct{}, len(r.cur)), now
	}
	for _, m := range msgs {
		if id := msgID(m); id != "" {
			r.cur[maphash.String(r.seed, id)] = struct{}{}
		}
	}
}

// recallBatch is how many messages one read of rememberFinished asks for, at
// most pullBytes in all: a message may be a frame of hundreds of events.
const recallBatch = 64

// rememberFinished adds to c.recent the events that the durable finished
// (acknowledged, up to floor) and that were stored within the last two
// duplicate windows, as long as the in-process memory would have kept them.
// It reads them back from the stream with a short-lived consumer of its own,
// which stores nothing and goes away by itself if this process dies.
func (c *Consumer) rememberFinished(ctx context.Context, floor uint64) error {
	if floor == 0 {
		return nil
	}
	since := time.Now().Add(-2 * c.deps.Config.InternalDuplicates)
	cfg := jetstream.ConsumerConfig{
		Description:       "Syncline " + c.spec.Stage + ": what " + c.spec.Durable + " finished lately",
		FilterSubject:     c.spec.Filter,
		FilterSubjects:    c.spec.Filters,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &since,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	}
	cons, err := c.deps.JetStream.CreateConsumer(ctx, c.spec.Stream, cfg)
	if err != nil {
		return fmt.Errorf("reading back what %s finished lately: %w", c.spec.Durable, err)
	}
	name := cons.CachedInfo().Name
	defer func() {
		// It goes by itself after InactiveThreshold should this fail.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = c.deps.JetStream.DeleteConsumer(dctx, c.spec.Stream, name)
	}()
	// Only what was stored when it was created is read: what comes after is
	// past the floor anyway.
	left := cons.CachedInfo().NumPending
	events := 0
	for left > 0 {
		batch, err := cons.Fetch(int(min(left, recallBatch)), jetstream.FetchMaxBytes(c.pullBytes()), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("reading back what %s finished lately: %w", c.spec.Durable, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("reading back what %s finished lately: %w", c.spec.Durable, err)
			}
			if md.Sequence.Stream > floor {
				left = 0
				continue
			}
			its := items(m)
			c.recent.add(its)
			events += len(its)
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("reading back what %s finished lately: %w", c.spec.Durable, err)
		}
		if n == 0 {
			// Removed by its limits since (MaxAge, a purge): nothing
			// more to read.
			break
		}
		left -= min(left, uint64(n))
	}
	if events > 0 {
		c.log.Debug("remembered the events finished lately", "events", events, "floor", floor)
	}
	return nil
}
