package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/natstest"
)

// TestPartitionsInUse reads a deployment's partition count from its
// partitioned consumers, and finds none before any exist.
func TestPartitionsInUse(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)

	if n, err := bus.PartitionsInUse(ctx, js); err != nil || n != 0 {
		t.Fatalf("before the streams exist: PartitionsInUse = %d, %v; want 0", n, err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if n, err := bus.PartitionsInUse(ctx, js); err != nil || n != 0 {
		t.Fatalf("without consumers: PartitionsInUse = %d, %v; want 0", n, err)
	}
	for _, c := range []struct{ stream, durable, filter string }{
		{bus.StreamFlow, "dedup-p0", "flow.*.*.0"},
		{bus.StreamPush, "connector-p5", "push.*.*.5"},
		{bus.StreamFlow, "dedup-p2", "flow.*.*.2"},
		// Not partitioned: no say in the count.
		{bus.StreamFlow, "watcher", "flow.>"},
		{bus.StreamPush, "one-tenant", "push.acme.orders.*"},
	} {
		if _, err := js.CreateConsumer(ctx, c.stream, jetstream.ConsumerConfig{Durable: c.durable, FilterSubject: c.filter, AckPolicy: jetstream.AckAllPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := bus.PartitionsInUse(ctx, js); err != nil || n != 6 {
		t.Fatalf("PartitionsInUse = %d, %v; want 6 (partition 5 is in use)", n, err)
	}
}

// TestIngestPartitions publishes keys on their buckets and reads where the
// stream stored them: every version of a key in one partition, the keys
// spread over all partitions, a subject without a bucket in partition 0's
// filters. A deployment that grows its partitions maps new events over all
// of them, and a process configured with fewer runs with the deployment's.
func TestIngestPartitions(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	cfg := bus.DefaultConfig()
	cfg.Partitions = 3
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	// publish publishes each key twice and returns the partition each
	// key's versions were stored in.
	publish := func(keys []string) map[string]string {
		t.Helper()
		stored := map[string]string{}
		for version := range 2 {
			for _, k := range keys {
				ack, err := js.Publish(ctx, bus.IngestSubject("acme", "shop", "order", k), []byte(k))
				if err != nil {
					t.Fatal(err)
				}
				m, err := st.GetMsg(ctx, ack.Sequence)
				if err != nil {
					t.Fatal(err)
				}
				tokens := strings.Split(m.Subject, ".")
				if len(tokens) != 5 || tokens[3] != "order" {
					t.Fatalf("key %s stored on %s, want ingest.acme.shop.order.<partition>", k, m.Subject)
				}
				if p, ok := stored[k]; ok && p != tokens[4] {
					t.Fatalf("version %d of key %s stored in partition %s, the one before in %s", version+1, k, tokens[4], p)
				}
				stored[k] = tokens[4]
			}
		}
		return stored
	}
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = fmt.Sprintf("SO-%d", i)
	}
	used := map[string]int{}
	for _, p := range publish(keys) {
		used[p]++
	}
	if len(used) != 3 || used["0"] == 0 || used["1"] == 0 || used["2"] == 0 {
		t.Fatalf("60 keys over 3 partitions: %v", used)
	}

	// Published without a bucket: stored as it is, read by partition 0.
	ack, err := js.Publish(ctx, "ingest.acme.shop.order", []byte("plain"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, ack.Sequence)
	if err != nil || m.Subject != "ingest.acme.shop.order" {
		t.Fatalf("a subject without a bucket stored as %v, %v", m, err)
	}
	if !slices.Contains(bus.IngestFilters(0, 3), "ingest.*.*.*") || slices.Contains(bus.IngestFilters(1, 3), "ingest.*.*.*") {
		t.Fatalf("filters %v and %v: only partition 0 reads subjects without a bucket", bus.IngestFilters(0, 3), bus.IngestFilters(1, 3))
	}

	// Grown to six: new events go over all six.
	cfg.Partitions = 6
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	more := make([]string, 120)
	for i := range more {
		more[i] = fmt.Sprintf("PO-%d", i)
	}
	used = map[string]int{}
	for _, p := range publish(more) {
		used[p]++
	}
	if len(used) != 6 {
		t.Fatalf("120 keys over 6 partitions after growing: %v", used)
	}
	if _, err := js.CreateConsumer(ctx, bus.StreamIngest, jetstream.ConsumerConfig{Durable: "mapper-p5", FilterSubjects: bus.IngestFilters(5, 6), AckPolicy: jetstream.AckAllPolicy}); err != nil {
		t.Fatal(err)
	}
	if n, raised, err := bus.ResolvePartitions(ctx, js, 4); err != nil || n != 6 || !raised {
		t.Fatalf("ResolvePartitions(4) = %d, %v, %v; want 6, raised: partitions never shrink", n, raised, err)
	}
	if n, raised, err := bus.ResolvePartitions(ctx, js, 8); err != nil || n != 8 || raised {
		t.Fatalf("ResolvePartitions(8) = %d, %v, %v; want 8: partitions grow", n, raised, err)
	}
}

// TestSupersedeGoesOnFromTheOldFloor replaces a consumer of a whole stream,
// as earlier versions had, by partitioned ones: they start right after what
// the old one acknowledged, so nothing is read twice or skipped, and the old
// one is gone.
func TestSupersedeGoesOnFromTheOldFloor(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	cfg := bus.DefaultConfig()
	cfg.Partitions = 2
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	// Ten outcomes as earlier versions published them (no partition),
	// then ten on partitions.
	for i := range 20 {
		subject := "audit.acme.orders"
		if i >= 10 {
			subject = bus.AuditSubject("acme", "orders", i%2)
		}
		if _, err := js.Publish(ctx, subject, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	old, err := js.CreateConsumer(ctx, bus.StreamAudit, jetstream.ConsumerConfig{Durable: "eventlog-audit", FilterSubject: "audit.>", AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := old.Fetch(7)
	if err != nil {
		t.Fatal(err)
	}
	var last jetstream.Msg
	for m := range batch.Messages() {
		last = m
	}
	if err := last.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}

	specs := bus.AuditSpecs(bus.ConsumerSpec{Stage: "eventlog", Durable: "eventlog-audit"}, 2)
	for range 2 { // a second replica finds it done
		if err := bus.Supersede(ctx, js, cfg, "eventlog-audit", specs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Consumer(ctx, bus.StreamAudit, "eventlog-audit"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the old consumer is still there: %v", err)
	}
	var read []string
	for _, spec := range specs {
		c, err := js.Consumer(ctx, bus.StreamAudit, spec.Durable)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := c.FetchNoWait(20)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			read = append(read, string(m.Data()))
		}
	}
	got := map[string]bool{}
	for _, r := range read {
		if got[r] {
			t.Fatalf("outcome %s read twice", r)
		}
		got[r] = true
	}
	for i := range 20 {
		if want := i >= 7; got[strconv.Itoa(i)] != want {
			t.Errorf("outcome %d read by the partitions: %v, want %v (the old consumer acknowledged 0-6)", i, got[strconv.Itoa(i)], want)
		}
	}
}
