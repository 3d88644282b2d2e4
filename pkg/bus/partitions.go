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
// with, read from the partition filters of the flow and push streams'
// consumers (…*.*.<partition>): the highest partition plus one, or 0 when no
// partitioned consumer exists yet (a new deployment). A process that picks
// its partition count by itself calls it first, because the count is fixed
// for the life of a deployment: a smaller one would leave the events of the
// higher partitions to consumers that no longer run. ctx bounds the call.
func PartitionsInUse(ctx context.Context, js jetstream.JetStream) (int, error) {
	n := 0
	for _, name := range []string{StreamFlow, StreamPush} {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading stream %s: %w", name, err)
		}
		infos := s.ListConsumers(ctx)
		for info := range infos.Info() {
			if p, ok := filterPartition(info.Config.FilterSubject); ok {
				n = max(n, p+1)
			}
		}
		if err := infos.Err(); err != nil {
			return 0, fmt.Errorf("listing the consumers of stream %s: %w", name, err)
		}
	}
	return n, nil
}

// filterPartition returns the partition of a partitioned consumer's filter
// subject, flow.*.*.<partition> or push.*.*.<partition>.
func filterPartition(filter string) (int, bool) {
	tokens := strings.Split(filter, ".")
	if len(tokens) != 4 || (tokens[0] != "flow" && tokens[0] != "push") {
		return 0, false
	}
	p, err := strconv.Atoi(tokens[3])
	return p, err == nil && p >= 0
}
