package bus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamConfigs are the five streams. Pipeline streams keep events for MaxAge
// after they are written (limits retention, not work-queue or interest): an
// event published before its consumer exists is kept, not dropped, and a
// stream can be inspected or replayed for a while.
func streamConfigs(c Config) []jetstream.StreamConfig {
	pipeline := func(name, subjects, desc string, duplicates time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subjects},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      c.MaxAge,
			Discard:     jetstream.DiscardOld,
			Duplicates:  duplicates,
			AllowDirect: true,
		}
	}
	dlq := pipeline(StreamDeadLetter, "dlq.>", "Events a stage could not process, with the reason; replayable.", c.InternalDuplicates)
	dlq.MaxAge = c.DeadLetterMaxAge
	hold := pipeline(StreamHold, "hold.>", "Events of flows whose integrator is inactive, or whose target is down, kept in order until they can go on.", c.InternalDuplicates)
	hold.MaxAge = 0
	// Held events are read back by message gets that must see the last
	// write: a direct get may be answered by a replica that lags, and "no
	// more held events" would then be wrong.
	hold.AllowDirect = false
	ingest := pipeline(StreamIngest, "ingest.>", "Change events as sources publish them, partitioned by source key.", c.IngestDuplicates)
	ingest.SubjectTransform = ingestTransform(c.Partitions)
	return []jetstream.StreamConfig{
		ingest,
		pipeline(StreamFlow, "flow.>", "Mapped events, one per matching flow, partitioned by source key.", c.InternalDuplicates),
		pipeline(StreamPush, "push.>", "Events the ledger decided to apply, partitioned by source key.", c.InternalDuplicates),
		pipeline(StreamAudit, "audit.>", "Outcomes of every stage, for the API log. Never payloads.", c.InternalDuplicates),
		dlq,
		hold,
	}
}

// EnsureStreams creates the streams, or brings their settings up to date. Every
// service calls it at start, so the order in which services start does not
// matter.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	for _, sc := range streamConfigs(c) {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("creating stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// PurgeTenant removes a tenant's every message from every stream (its
// subjects all start with "<prefix>.<tenant>."), for erasing a tenant, and
// counts what it removed per stream. Consumers already past the messages
// are not disturbed; consumers behind them skip the gap.
func PurgeTenant(ctx context.Context, js jetstream.JetStream, tenant string) (map[string]int64, error) {
	if err := ValidateToken("tenant", tenant); err != nil {
		return nil, err
	}
	removed := map[string]int64{}
	for _, sc := range streamConfigs(DefaultConfig()) {
		st, err := js.Stream(ctx, sc.Name)
		if err != nil {
			return removed, fmt.Errorf("purging tenant %s: opening stream %s: %w", tenant, sc.Name, err)
		}
		prefix := strings.TrimSuffix(sc.Subjects[0], ">")
		before, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+tenant+".>"))
		if err != nil {
			return removed, fmt.Errorf("purging tenant %s from stream %s: %w", tenant, sc.Name, err)
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(prefix+tenant+".>")); err != nil {
			return removed, fmt.Errorf("purging tenant %s from stream %s: %w", tenant, sc.Name, err)
		}
		var n int64
		for _, c := range before.State.Subjects {
			n += int64(c)
		}
		removed[sc.Name] = n
	}
	return removed, nil
}

// ConsumerSpec names one durable consumer of a stage.
type ConsumerSpec struct {
	// Stage names the service step for metrics, logs and dead letters:
	// mapper, dedup, connector, eventlog.
	Stage string
	// Stream and Durable identify the consumer.
	Stream  string
	Durable string
	// Filter is the subject filter, e.g. "flow.*.*.3" for partition 3.
	Filter string
	// Filters, when given, are the filter subjects instead of Filter: a
	// partition 0 that also reads the subjects of earlier versions, which
	// had no partition token.
	Filters []string
	// Linger is how long to wait for more messages after the first of a
	// batch when fewer than MaxBatch have arrived. Zero hands over at once,
	// which is right on the path an event's latency is measured on; stages
	// off that path (the API log, ledger confirmations) linger, so that
	// light traffic makes a few larger store commits instead of many tiny
	// ones.
	Linger time.Duration
}

// consumerConfig acknowledges with AckAll: a stage handles its messages in
// stream order and acks the last finished one, which acknowledges everything
// before it in one message instead of one ack per event.
func consumerConfig(c Config, s ConsumerSpec) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        s.Durable,
		Description:    "Syncline " + s.Stage,
		FilterSubject:  s.Filter,
		FilterSubjects: s.Filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckAllPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     c.MaxDeliver,
		MaxAckPending:  c.MaxAckPending,
		MaxWaiting:     512,
	}
}
