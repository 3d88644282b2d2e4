package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Supersede hands the place of a durable consumer of earlier versions (one
// consumer of a whole stream, such as the mapper's "mapper") over to the
// partitioned consumers that replace it: each of them that does not exist
// yet is created to start after the old one's ack floor, so that the
// partitions go on exactly where it stopped instead of reading the stream
// from its start; then the old one is deleted. Without the old consumer it
// does nothing. Replicas may run it at once: creating a consumer that
// another replica just created, or deleting one already deleted, is no
// error.
//
// The old consumer must no longer be read when this runs (replicas of the
// earlier version stopped: see the README's upgrade notes), or the events
// after its floor are handled by both, which every stage absorbs (publish
// de-duplication, the ledger) but the work is done twice.
func Supersede(ctx context.Context, js jetstream.JetStream, c Config, old string, specs []ConsumerSpec) error {
	if len(specs) == 0 {
		return nil
	}
	stream := specs[0].Stream
	cons, err := js.Consumer(ctx, stream, old)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading consumer %s of stream %s: %w", old, stream, err)
	}
	floor := ackFloor(cons.CachedInfo())
	for _, s := range specs {
		cfg := consumerConfig(c, s)
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = floor + 1
		_, err := js.CreateConsumer(ctx, stream, cfg)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
			return fmt.Errorf("creating consumer %s to replace %s: %w", s.Durable, old, err)
		}
	}
	if err := js.DeleteConsumer(ctx, stream, old); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("deleting consumer %s, replaced by partitioned consumers: %w", old, err)
	}
	return nil
}

// PartitionSpecs are the specs of a stage's consumers of n partitions:
// base's, each named <base.Durable>-p<partition> with filters(partition).
func PartitionSpecs(base ConsumerSpec, n int, filters func(p int) []string) []ConsumerSpec {
	specs := make([]ConsumerSpec, n)
	for p := range specs {
		specs[p] = base
		specs[p].Durable = base.Durable + "-p" + strconv.Itoa(p)
		specs[p].Filter, specs[p].Filters = "", filters(p)
	}
	return specs
}

// AuditSpecs are the specs of a stage's consumers of the audit stream's n
// partitions (PartitionSpecs).
func AuditSpecs(base ConsumerSpec, n int) []ConsumerSpec {
	base.Stream = StreamAudit
	return PartitionSpecs(base, n, func(p int) []string { return AuditFilters(p, n) })
}

// NewConsumers returns a consumer for each spec, all with deps.
func NewConsumers(specs []ConsumerSpec, deps ConsumerDeps) []*Consumer {
	out := make([]*Consumer, len(specs))
	for i, s := range specs {
		out[i] = NewConsumer(s, deps)
	}
	return out
}
