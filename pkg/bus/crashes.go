package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stage that crashes on a message (or hangs on it until it is killed)
// never acknowledges it and never counts a failure of it, and the server's
// own delivery count cannot see it either: each start rewinds the durable by
// creating it again, which starts the count afresh. So the consumer counts
// such runs itself, in the durable's metadata, which survives the process:
// each open writes "running" with the ack floor and the count; a clean stop
// writes "stopped". A start that finds "running" and messages delivered but
// unacknowledged knows the last run died with the first message after the
// ack floor unfinished; if the floor has not moved since the last count, it
// is another such run in a row. After MaxDeliver of them the message is
// dead-lettered (CodeMaxDeliveries, as the advisory path does) and the
// consumer starts after it. Until the consumer is past what the dead run had
// been delivered, it hands over one message at a time, so that the next
// crash is on the one message that caused it and not on a batch-mate.
const (
	metaRun     = "syncline_run"
	metaFloor   = "syncline_floor"
	metaCrashes = "syncline_crashes"
	runRunning  = "running"
	runStopped  = "stopped"
)

func (c *Consumer) runMetadata() map[string]string {
	return map[string]string{
		metaRun:     runRunning,
		metaFloor:   strconv.FormatUint(c.crashFloor, 10),
		metaCrashes: strconv.Itoa(c.crashes),
	}
}

// countCrash reads, at a start, whether the last run ended without
// finishing what it had been delivered.
func (c *Consumer) countCrash(info *jetstream.ConsumerInfo, inFlight bool) {
	floor := ackFloor(info)
	md := info.Config.Metadata
	c.carefulUntil = 0
	if !inFlight || md[metaRun] != runRunning {
		c.crashFloor, c.crashes = floor, 0
		return
	}
	n := 1
	if md[metaFloor] == strconv.FormatUint(floor, 10) {
		prev, _ := strconv.Atoi(md[metaCrashes])
		n = prev + 1
	}
	c.crashFloor, c.crashes = floor, n
	c.carefulUntil = info.Delivered.Stream
	c.log.Warn("the last run of this consumer stopped without finishing its messages; handing them over one at a time",
		"after_sequence", floor, "up_to_sequence", info.Delivered.Stream, "runs_in_a_row", n)
}

// careful reports whether m must be handled alone.
func (c *Consumer) careful(m jetstream.Msg) bool {
	if c.carefulUntil == 0 {
		return false
	}
	md, err := m.Metadata()
	if err == nil && md.Sequence.Stream <= c.carefulUntil {
		return true
	}
	c.carefulUntil = 0
	return false
}

// deadLetterCrashed dead-letters the first message of the consumer after
// floor and returns its sequence (floor when there is none).
func (c *Consumer) deadLetterCrashed(ctx context.Context, floor uint64) (uint64, error) {
	st, err := c.deps.JetStream.Stream(ctx, c.spec.Stream)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s to dead-letter a message of consumer %s: %w", c.spec.Stream, c.spec.Durable, err)
	}
	raw, err := firstAfter(ctx, st, floor, c.spec)
	if err != nil {
		return 0, fmt.Errorf("reading the message after sequence %d of stream %s to dead-letter it: %w", floor, c.spec.Stream, err)
	}
	if raw == nil {
		return floor, nil
	}
	reason := fmt.Sprintf("the %s stage stopped %d times in a row while handling it, without finishing it (its process crashed, or hung until stopped)", c.spec.Stage, c.crashes)
	out := deadLetters(raw.Subject, raw.Header, raw.Data, c.spec.Stream, raw.Sequence, c.crashes, c.spec.Stage, CodeMaxDeliveries, reason)
	if err := c.dead.pub.Publish(ctx, out...); err != nil {
		return 0, fmt.Errorf("dead-lettering message %d of stream %s: %w", raw.Sequence, c.spec.Stream, err)
	}
	c.deps.Metrics.observeDeadLetter(c.spec.Stage)
	c.log.Warn("dead-lettered a message that the stage stopped on every time", "sequence", raw.Sequence, "runs", c.crashes)
	return raw.Sequence, nil
}

// finish confirms the last acknowledgement and, when the run ended cleanly
// (no batch was cut short by the stop's deadline), records that in the
// durable, so that the next start does not count this run as one that died.
func (c *Consumer) finish() {
	c.confirmLastAck()
	if c.handlerCtx.Err() != nil || c.created.Durable == "" {
		return
	}
	cfg := c.created
	cfg.Metadata = c.runMetadata()
	cfg.Metadata[metaRun] = runStopped
	// Under the stop's deadline (through handlerCtx): a stop that cannot
	// record its end in time counts as one that died, which costs at most
	// one of MaxDeliver and a careful start.
	ctx, cancel := context.WithTimeout(c.handlerCtx, 5*time.Second)
	defer cancel()
	if _, err := c.deps.JetStream.UpdateConsumer(ctx, c.spec.Stream, cfg); err != nil {
		c.log.Warn("recording a clean stop; the next start counts this run as one that died", "error", err)
	}
}

// firstAfter returns the consumer's first message after floor, the earliest
// of its filters' (nil when there is none).
func firstAfter(ctx context.Context, st jetstream.Stream, floor uint64, spec ConsumerSpec) (*jetstream.RawStreamMsg, error) {
	filters := spec.Filters
	if len(filters) == 0 {
		filters = []string{cmp.Or(spec.Filter, ">")}
	}
	var first *jetstream.RawStreamMsg
	for _, f := range filters {
		raw, err := st.GetMsg(ctx, floor+1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if first == nil || raw.Sequence < first.Sequence {
			first = raw
		}
	}
	return first, nil
}
