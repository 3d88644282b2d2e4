package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// PartitionsInUse returns the partition count a deployment already runs
// with, read from the partition filters of the partitioned consumers
// (…*.<partition>) of the ingest, flow, push, audit and dead-letter streams:
// the highest partition plus one, or 0 when no partitioned consumer exists
// yet (a new deployment). A process calls it before it picks its partition
// count, because the count never shrinks (see ResolvePartitions). ctx
// bounds the call.
func PartitionsInUse(ctx context.Context, js jetstream.JetStream) (int, error) {
	n := 0
	for _, name := range []string{StreamIngest, StreamFlow, StreamPush, StreamAudit, StreamDeadLetter} {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading stream %s: %w", name, err)
		}
		infos := s.ListConsumers(ctx)
		for info := range infos.Info() {
			for _, f := range append([]string{info.Config.FilterSubject}, info.Config.FilterSubjects...) {
				if p, ok := filterPartition(f); ok {
					n = max(n, p+1)
				}
			}
		}
		if err := infos.Err(); err != nil {
			return 0, fmt.Errorf("listing the consumers of stream %s: %w", name, err)
		}
	}
	return n, nil
}

// filterPartition returns the partition of a partitioned consumer's filter
// subject: flow.*.*.<p>, push.*.*.<p>, audit.*.*.<p>, dlq.*.*.<p> or
// ingest.*.*.*.<p>.
func filterPartition(filter string) (int, bool) {
	tokens := strings.Split(filter, ".")
	switch {
	case len(tokens) == 4 && (tokens[0] == "flow" || tokens[0] == "push" || tokens[0] == "audit" || tokens[0] == "dlq"):
	case len(tokens) == 5 && tokens[0] == "ingest":
	default:
		return 0, false
	}
	p, err := strconv.Atoi(tokens[len(tokens)-1])
	return p, err == nil && p >= 0
}

// ResolvePartitions returns the partition count a process runs with:
// configured, or the count the deployment already runs with when that is
// more. Partitions can grow but never shrink: a smaller count would leave
// the higher partitions' events to consumers that no longer run, and would
// move keys between partitions back and forth while replicas disagree.
func ResolvePartitions(ctx context.Context, js jetstream.JetStream, configured int) (n int, raised bool, err error) {
	inUse, err := PartitionsInUse(ctx, js)
	if err != nil {
		return 0, false, err
	}
	if inUse > configured {
		return inUse, true, nil
	}
	return configured, false, nil
}
