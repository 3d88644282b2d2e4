package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/natstest"
)

// TestRewoundDurableInAClusterKeepsItsFloor: a rewind creates the durable
// again at its ack floor + 1. A holder that rewinds and dies before its
// first acknowledgement leaves such a durable with messages delivered and
// none acknowledged, and a clustered server reports its ack floor as 0,
// not as the sequence before its start. The next holder goes on from the
// start the durable was created at, not from the stream's first message.
func TestRewoundDurableInAClusterKeepsItsFloor(t *testing.T) {
	ctx := context.Background()
	c := natstest.RunCluster(t, 3)
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Replicas = 3
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, "ingest.acme.shop.order", 100)
	// The durable as the dead holder left it: created at 61 (60 were
	// acknowledged before), ten delivered, none acknowledged.
	cons, err := js.CreateConsumer(ctx, bus.StreamIngest, jetstream.ConsumerConfig{Durable: "rewound", FilterSubject: "ingest.>",
		AckPolicy: jetstream.AckAllPolicy, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 61})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(10)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the dead holder's durable: ack floor %d, delivered up to %d", info.AckFloor.Stream, info.Delivered.Stream)

	rec := &recorder{}
	next := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "rewound", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: rec.handle})
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = next.Stop(context.Background()) })
	waitFor(t, 20*time.Second, func() bool { return rec.count() >= 40 }, "the next holder did not handle the 40 unacknowledged messages")
	time.Sleep(300 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) != 40 || rec.seen[0] != "60" {
		t.Fatalf("the next holder handled %d messages from %q, want the 40 from \"60\" (stream sequence 61): it read what was acknowledged before the rewind", len(rec.seen), rec.seen[0])
	}
}
