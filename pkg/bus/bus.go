// Package bus is Syncline's use of NATS JetStream: the streams every stage
// reads and writes, the subjects that route events between them, a batching
// publisher that waits for the stream to store what it sends, and a batching
// consumer that acknowledges only what its stage has finished.
//
// All stream and consumer settings live in this package so that every service
// creates the same streams the same way (idempotently, at start).
package bus

import (
	"fmt"
	"time"
)

// Stream names.
const (
	StreamIngest     = "SYNCLINE_INGEST"
	StreamFlow       = "SYNCLINE_FLOW"
	StreamPush       = "SYNCLINE_PUSH"
	StreamAudit      = "SYNCLINE_AUDIT"
	StreamDeadLetter = "SYNCLINE_DLQ"
	// StreamHold keeps the events of flows whose integrator is inactive
	// (the mapper's) or whose target is down (the connector's) until they
	// can go on; nothing in it expires.
	StreamHold = "SYNCLINE_HOLD"
)

// Header names. Nats-Msg-Id makes JetStream drop a re-publish of the same
// message within the duplicate window, which is what turns at-least-once
// delivery between stages into one stored message per event and flow.
const (
	HeaderMsgID          = "Nats-Msg-Id"
	HeaderDeadReason     = "Syncline-Dead-Reason"
	HeaderDeadCode       = "Syncline-Dead-Code"
	HeaderDeadStage      = "Syncline-Dead-Stage"
	HeaderDeadSubject    = "Syncline-Dead-Subject"
	HeaderDeadStream     = "Syncline-Dead-Stream"
	HeaderDeadSequence   = "Syncline-Dead-Sequence"
	HeaderDeadDeliveries = "Syncline-Dead-Deliveries"
	HeaderDeadAt         = "Syncline-Dead-At"
)

// Config holds the settings of the streams and consumers. The zero value is
// not useful; start from DefaultConfig.
type Config struct {
	// Partitions is N in partition = hash(source key) mod N for every
	// stream a stage reads. It can grow, never shrink (ResolvePartitions):
	// growing reroutes keys, so in-flight events of one key could be applied
	// out of order for a moment (the ledger's version check still keeps the
	// newest).
	Partitions int
	// Replicas of every stream (1 for a single server; 3 in production).
	Replicas int
	// MaxAge bounds how long pipeline streams keep events after they are
	// consumed, so a stream can be inspected or replayed for a while.
	MaxAge time.Duration
	// DeadLetterMaxAge bounds how long the dead-letter stream keeps a dead
	// letter. The stream is the way dead letters reach the eventlog (and
	// dedup), which keeps them, sealed, for the tenant's retention; in the
	// stream they are as clear as events in the others, so they stay no
	// longer than those (MaxAge).
	DeadLetterMaxAge time.Duration
	// IngestDuplicates is the ingest stream's duplicate window: a source
	// that publishes the same event id again within it is stored once.
	IngestDuplicates time.Duration
	// InternalDuplicates is the duplicate window of the streams between
	// stages. A stage that republishes after a failed batch does so within
	// seconds; past the window a duplicate is still harmless (the ledger
	// recognises a redelivered event, targets upsert, the API log replaces
	// by event and flow), so the window only saves work. It is short because
	// the server keeps every message id of the window in memory.
	InternalDuplicates time.Duration
	// MaxDeliver is how many times a message is delivered before it is
	// dead-lettered.
	MaxDeliver int
	// AckWait is how long a delivered, unacknowledged message waits before
	// the server redelivers it (a crashed or stuck stage).
	AckWait time.Duration
	// Backoff is the delay before redelivery after a failed attempt; the
	// n-th failure waits Backoff[min(n, len-1)].
	Backoff []time.Duration
	// MaxBatch is the most messages a stage handles at once.
	MaxBatch int
	// MaxAckPending bounds the unacknowledged messages per consumer: the
	// batch a stage is handling and what it has read ahead. A pull asks for
	// this many and statusRoom more (see PullOptions), so the server's
	// statuses always find room beside the messages it may send.
	MaxAckPending int
}

// DefaultConfig returns settings that suit a single server and are safe in
// production. See the README's production guidance for replicas and fsync.
func DefaultConfig() Config {
	return Config{
		Partitions:         4,
		Replicas:           1,
		MaxAge:             72 * time.Hour,
		DeadLetterMaxAge:   72 * time.Hour,
		IngestDuplicates:   2 * time.Minute,
		InternalDuplicates: 20 * time.Second,
		MaxDeliver:         5,
		AckWait:            30 * time.Second,
		Backoff:            []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute},
		MaxBatch:           500,
		MaxAckPending:      1000,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > 1024:
		return fmt.Errorf("bus: partitions %d is out of range: use 1 to 1024", c.Partitions)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("bus: replicas %d is out of range: use 1 to 5", c.Replicas)
	case c.MaxDeliver < 1:
		return fmt.Errorf("bus: max deliver %d must be at least 1", c.MaxDeliver)
	case c.MaxBatch < 1:
		return fmt.Errorf("bus: max batch %d must be at least 1", c.MaxBatch)
	case c.MaxAckPending < c.MaxBatch:
		return fmt.Errorf("bus: max ack pending %d must be at least max batch %d", c.MaxAckPending, c.MaxBatch)
	case c.AckWait < time.Second:
		return fmt.Errorf("bus: ack wait %s must be at least 1s", c.AckWait)
	case c.IngestDuplicates < time.Second || c.InternalDuplicates < time.Second:
		return fmt.Errorf("bus: duplicate windows must be at least 1s")
	case len(c.Backoff) == 0:
		return fmt.Errorf("bus: backoff needs at least one delay")
	}
	return nil
}

func (c Config) backoff(failures int) time.Duration {
	if failures < 1 {
		failures = 1
	}
	if failures > len(c.Backoff) {
		failures = len(c.Backoff)
	}
	return c.Backoff[failures-1]
}
