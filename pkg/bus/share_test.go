package bus_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/natstest"
)

// replica is one process's view of a four-partition consumer family.
type replica struct {
	shared *bus.Shared
	mu     sync.Mutex
	seen   map[string]int
}

func newReplica(js jetstream.JetStream, kv *bus.Leases, cfg bus.Config) *replica {
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
	a, b := newReplica(js, kv, cfg), newReplica(js, kv, cfg)
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

// acked waits until the four partitions' consumers have acknowledged
// everything, so that nothing is in flight.
func acked(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	waitFor(t, 20*time.Second, func() bool {
		for p := range 4 {
			c, err := js.Consumer(context.Background(), bus.StreamFlow, "share-p"+strconv.Itoa(p))
			if err != nil {
				return false
			}
			info, err := c.Info(context.Background())
			if err != nil || info.NumAckPending > 0 || info.NumPending > 0 {
				return false
			}
		}
		return true
	}, "the partitions did not acknowledge every message")
}

// TestSharedSurvivesServerRestart runs two replicas, each on its own
// connection, restarts the NATS server under them (same port, same files:
// the in-memory lease bucket is lost), then kills one replica. The leases
// are renewed again, no partition ever runs in both replicas at once, the
// killed replica's partitions are taken over, and every message is handled
// exactly once.
func TestSharedSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	s := natstest.RunIn(t, dir)
	cfg := testConfig()
	ctx := context.Background()
	ncA, jsA := natstest.Dial(t, s)
	_, jsB := natstest.Dial(t, s)
	if err := bus.EnsureStreams(ctx, jsA, cfg); err != nil {
		t.Fatal(err)
	}
	open := func(js jetstream.JetStream) *bus.Leases {
		l, err := bus.OpenLeases(ctx, js, 1)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := newReplica(jsA, open(jsA), cfg), newReplica(jsB, open(jsB), cfg)
	for _, r := range []*replica{a, b} {
		if err := r.shared.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	bStopped := false
	t.Cleanup(func() {
		_ = a.shared.Stop(context.Background())
		if !bStopped {
			_ = b.shared.Stop(context.Background())
		}
	})
	settled := func(na, nb int) func() bool {
		return func() bool { return len(a.shared.Held()) == na && len(b.shared.Held()) == nb }
	}
	waitFor(t, 20*time.Second, settled(2, 2), "the replicas did not settle on two partitions each")

	// Watch for a partition running in both replicas, from now to the end.
	var overlap []string
	var watchMu sync.Mutex
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(time.Millisecond):
			}
			ha, hb := a.shared.Held(), b.shared.Held()
			for _, p := range ha {
				if slices.Contains(hb, p) {
					watchMu.Lock()
					overlap = append(overlap, fmt.Sprintf("partition %d in %v and %v", p, ha, hb))
					watchMu.Unlock()
				}
			}
		}
	}()
	all := func() map[string]int {
		out := a.handled()
		for k, v := range b.handled() {
			out[k] += v
		}
		return out
	}

	publishPartitions(t, jsA, 0, 200)
	waitFor(t, 20*time.Second, func() bool { return len(all()) == 200 }, "not all 200 messages handled before the restart")
	acked(t, jsA)

	natstest.Restart(t, s, dir)
	// Renewals recover: the bucket is there again, with both members and
	// a lease for every partition in it, and the replicas share the
	// partitions again.
	renewed := func() bool {
		kv, err := jsB.KeyValue(ctx, bus.LeaseBucket)
		if err != nil {
			return false
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return false
		}
		var members, leases int
		for k := range keys.Keys() {
			switch {
			case strings.HasPrefix(k, "member.test-flow."):
				members++
			case strings.HasPrefix(k, "lease.share-p"):
				leases++
			}
		}
		return members == 2 && leases == 4
	}
	waitFor(t, 30*time.Second, func() bool { return renewed() && settled(2, 2)() },
		"the replicas did not renew their membership and leases, two partitions each, after the restart")
	publishPartitions(t, jsB, 200, 400)
	waitFor(t, 20*time.Second, func() bool { return len(all()) == 400 }, "not all 400 messages handled after the restart")
	acked(t, jsB)

	// Kill replica a: its connection goes, its leases are never given up.
	ncA.Close()
	waitFor(t, 30*time.Second, settled(0, 4), "the killed replica's partitions were not taken over")
	publishPartitions(t, jsB, 400, 600)
	waitFor(t, 20*time.Second, func() bool { return len(all()) == 600 }, "not all 600 messages handled after the take-over")
	acked(t, jsB)

	// The restarted server stops before the cleanups of earlier
	// registration: stop the survivor while it is still there.
	bStopped = true
	if err := b.shared.Stop(ctx); err != nil {
		t.Errorf("stopping the surviving replica: %v", err)
	}
	close(stopWatch)
	<-watched
	if len(overlap) > 0 {
		t.Errorf("a partition ran in both replicas at once (%d samples), first: %s", len(overlap), overlap[0])
	}
	for k, n := range all() {
		if n != 1 {
			t.Errorf("message %s handled %d times, want once", k, n)
		}
	}
}
