package bus_test

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
)

// replica is one process's view of a four-partition consumer family.
type replica struct {
	shared *bus.Shared
	mu     sync.Mutex
	seen   map[string]int
}

func newReplica(t *testing.T, js jetstream.JetStream, kv jetstream.KeyValue, cfg bus.Config) *replica {
	r := &replica{seen: map[string]int{}}
	handle := func(_ context.Context, msgs []jetstream.Msg) (int, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range msgs {
			r.seen[string(m.Data())]++
		}
		return len(msgs), nil
	}
	consumers := make([]*bus.Consumer, 4)
	for p := range consumers {
		consumers[p] = bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamFlow, Durable: "share-p" + strconv.Itoa(p), Filter: "flow.*.*." + strconv.Itoa(p)},
			bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: handle})
	}
	r.shared = bus.NewShared(kv, "test-flow", consumers, nil)
	return r
}

func (r *replica) handled() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.seen)
}

func publishPartitions(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	var msgs []*nats.Msg
	for i := from; i < to; i++ {
		m := nats.NewMsg(bus.FlowSubject("acme", "orders", i%4))
		m.Header.Set(bus.HeaderMsgID, "share-"+strconv.Itoa(i))
		m.Data = []byte(strconv.Itoa(i))
		msgs = append(msgs, m)
	}
	if err := bus.NewPublisher(js).Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestSharedSplitsPartitionsAndTakesOver runs two replicas of a partitioned
// consumer family: they split the four partitions, never hold one twice,
// and when one stops the other takes over its partitions with nothing lost.
func TestSharedSplitsPartitionsAndTakesOver(t *testing.T) {
	_, js, cfg := setup(t)
	ctx := context.Background()
	kv, err := bus.OpenLeases(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newReplica(t, js, kv, cfg), newReplica(t, js, kv, cfg)
	if err := a.shared.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.shared.Held(); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("a lone replica runs partitions %v, want all four at once", got)
	}
	if err := b.shared.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.shared.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { return len(a.shared.Held()) == 2 && len(b.shared.Held()) == 2 },
		"the replicas did not settle on two partitions each")
	for _, p := range a.shared.Held() {
		if slices.Contains(b.shared.Held(), p) {
			t.Fatalf("partition %d runs in both replicas", p)
		}
	}

	publishPartitions(t, js, 0, 400)
	all := func() map[string]int {
		out := a.handled()
		for k, v := range b.handled() {
			out[k] += v
		}
		return out
	}
	waitFor(t, 10*time.Second, func() bool { return len(all()) == 400 }, "not all 400 messages handled")

	if err := a.shared.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return len(b.shared.Held()) == 4 }, "the remaining replica did not take over every partition")
	publishPartitions(t, js, 400, 800)
	waitFor(t, 10*time.Second, func() bool { return len(all()) == 800 }, "messages published after the take-over were not all handled")
	for k, n := range all() {
		if n > 1 {
			t.Errorf("message %s handled %d times across a clean hand-over", k, n)
		}
	}
}
