package bus_test

import (
	"context"
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
