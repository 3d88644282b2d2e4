package bus_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
)

func eventMsg(subject, id, data string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(bus.HeaderMsgID, id)
	m.Header.Set("traceparent", "00-"+strings.Repeat("a", 32)+"-"+strings.Repeat("b", 16)+"-01")
	m.Data = []byte(data)
	return m
}

// TestFrameKeepsEveryEvent: Frame gathers each framed subject's events in
// order, leaves other subjects and lone events as they are, keeps frames under
// the limit, and names a frame by its events.
func TestFrameKeepsEveryEvent(t *testing.T) {
	var msgs []*nats.Msg
	for i := range 30 {
		subject := "flow.acme.orders." + strconv.Itoa(i%2)
		msgs = append(msgs, eventMsg(subject, "e"+strconv.Itoa(i), strings.Repeat("x", 100)+strconv.Itoa(i)))
	}
	msgs = append(msgs, eventMsg("push.acme.orders.3", "lone", "lone"), eventMsg("dlq.acme.mapper", "d1", "d1"), eventMsg("dlq.acme.mapper", "d2", "d2"))
	for _, limit := range []int{0, 1 << 20, 1000} {
		out := bus.Frame(msgs, limit)
		got := map[string][]string{}
		for _, m := range out {
			if limit > 0 && len(m.Data) > limit {
				t.Errorf("limit %d: a message of %d bytes", limit, len(m.Data))
			}
			events, err := bus.Unframe(m.Header, m.Data)
			if err != nil {
				t.Fatalf("limit %d: %v", limit, err)
			}
			if bus.IsFrame(m.Header) != (len(events) > 1) {
				t.Errorf("limit %d: a frame of %d events on %s", limit, len(events), m.Subject)
			}
			if bus.IsFrame(m.Header) && !strings.HasPrefix(m.Subject, "flow.") {
				t.Errorf("limit %d: %s is framed", limit, m.Subject)
			}
			for _, e := range events {
				if e.Header.Get("traceparent") == "" {
					t.Errorf("limit %d: an event lost its trace context", limit)
				}
				got[m.Subject] = append(got[m.Subject], e.Header.Get(bus.HeaderMsgID)+"="+string(e.Data))
			}
		}
		want := map[string][]string{}
		for _, m := range msgs {
			want[m.Subject] = append(want[m.Subject], m.Header.Get(bus.HeaderMsgID)+"="+string(m.Data))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("limit %d: events\n%v\nwant\n%v", limit, got, want)
		}
		if limit == 0 && len(out) != 5 {
			t.Errorf("no limit: %d messages, want 2 frames and 3 others", len(out))
		}
	}
	// The same events make the same frame id; other events another.
	a, b := bus.Frame(msgs[:4], 0), bus.Frame(msgs[:4], 0)
	c := bus.Frame(msgs[:6], 0)
	if a[0].Header.Get(bus.HeaderMsgID) != b[0].Header.Get(bus.HeaderMsgID) {
		t.Error("the same events framed twice got two ids")
	}
	if a[0].Header.Get(bus.HeaderMsgID) == c[0].Header.Get(bus.HeaderMsgID) {
		t.Error("different events framed got one id")
	}
}

// TestUnframeRefusesBadFrames: a frame that is cut short, of an unknown
// version, or empty is an error, never a panic or a silent drop.
func TestUnframeRefusesBadFrames(t *testing.T) {
	good := bus.Frame([]*nats.Msg{eventMsg("flow.a.b.0", "1", "one"), eventMsg("flow.a.b.0", "2", "two")}, 0)[0]
	for name, tc := range map[string]struct {
		h    nats.Header
		data []byte
	}{
		"cut short":       {good.Header, good.Data[:len(good.Data)-2]},
		"unknown version": {nats.Header{bus.HeaderFrame: {"9"}}, good.Data},
		"empty":           {good.Header, nil},
		"garbage":         {good.Header, []byte{0xff, 0xff, 0xff}},
	} {
		if _, err := bus.Unframe(tc.h, tc.data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzUnframe(f *testing.F) {
	good := bus.Frame([]*nats.Msg{eventMsg("flow.a.b.0", "1", "one"), eventMsg("flow.a.b.0", "2", "two")}, 0)[0]
	f.Add(good.Data)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := bus.Unframe(nats.Header{bus.HeaderFrame: {"1"}}, data)
		if err == nil && len(events) == 0 {
			t.Fatal("no error and no events")
		}
	})
}

var framesSeed = flag.Uint64("frames.seed", 0, "seed of TestFramesAgainstModel (0: a new one)")

// TestFramesAgainstModel publishes random batches of events of a few keys in
// frames, and runs a consumer that fails at random: a transient failure at
// any event (retried), a permanent one at a poisoned event (dead-lettered),
// and stops that cut a batch short (the process ending). Checked against a
// plain model: every event is finished or dead-lettered, the poisoned ones
// and only they are dead-lettered, each once, with their own bytes; each
// key's events are first finished in the order they were published; and
// within one run of the consumer no finished event is handed over again,
// even when its frame is delivered again after a failure. It runs on the
// flow and push streams, whose consumers also remember recent event ids, and
// on the audit stream, whose consumers keep only a frame's progress.
func TestFramesAgainstModel(t *testing.T) {
	for _, tt := range []struct{ stream, subject string }{
		{bus.StreamFlow, "flow.acme.orders.0"},
		{bus.StreamPush, "push.acme.orders.0"},
		{bus.StreamAudit, "audit.acme.orders"},
	} {
		t.Run(tt.stream, func(t *testing.T) { testFramesAgainstModel(t, tt.stream, tt.subject) })
	}
}

func testFramesAgainstModel(t *testing.T, stream, subject string) {
	seed := *framesSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -frames.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	// The handler's own, used under st.mu from the consumer's goroutine.
	frng := rand.New(rand.NewPCG(seed, 1))
	_, js, cfg := setup(t)
	cfg.Backoff = []time.Duration{5 * time.Millisecond}
	cfg.MaxDeliver = 1000
	cfg.MaxBatch = 1 + rng.IntN(40)

	// The model: what was published, per key, and which are poisoned.
	var published []string
	poisoned := map[string]bool{}
	pub := bus.NewPublisher(js)
	for b := range 1 + rng.IntN(15) {
		var msgs []*nats.Msg
		for i := range 1 + rng.IntN(60) {
			key := "k" + strconv.Itoa(rng.IntN(5))
			ev := fmt.Sprintf("%s/%d.%d", key, b, i)
			if rng.IntN(25) == 0 {
				poisoned[ev] = true
			}
			published = append(published, ev)
			msgs = append(msgs, eventMsg(subject, ev, ev))
		}
		if err := pub.Publish(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	st := &recorder{}
	var run int
	finishedInRun := map[string]int{}
	var runHandled []string
	st.fail = func(ev string, attempt int) error {
		if poisoned[ev] {
			return bus.Permanent("poisoned", errors.New("poisoned "+ev))
		}
		if frng.IntN(8) == 0 {
			return errors.New("transient failure at " + ev)
		}
		if r, ok := finishedInRun[ev]; ok && r == run {
			t.Errorf("seed %d: event %s handed over again in the run that finished it", seed, ev)
		}
		finishedInRun[ev] = run
		runHandled = append(runHandled, ev)
		return nil
	}
	want := len(published) - len(poisoned)
	firsts := func() []string {
		st.mu.Lock()
		defer st.mu.Unlock()
		seen := map[string]bool{}
		var out []string
		for _, ev := range st.seen {
			if !seen[ev] {
				seen[ev] = true
				out = append(out, ev)
			}
		}
		return out
	}
	for run = 0; len(firsts()) < want; run++ {
		if run > 50 {
			t.Fatalf("seed %d: %d of %d events finished after 50 runs", seed, len(firsts()), want)
		}
		c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: stream, Durable: "frames", Filter: subject},
			bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: st.handle})
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Most runs end early, as a process that stops would.
		if rng.IntN(3) > 0 {
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		} else {
			waitFor(t, 30*time.Second, func() bool { return len(firsts()) == want }, fmt.Sprintf("seed %d: not every event finished", seed))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	// Per key, first finished in the order published.
	order := func(evs []string) map[string][]string {
		m := map[string][]string{}
		for _, ev := range evs {
			if !poisoned[ev] {
				key, _, _ := strings.Cut(ev, "/")
				m[key] = append(m[key], ev)
			}
		}
		return m
	}
	if got, want := fmt.Sprint(order(firsts())), fmt.Sprint(order(published)); got != want {
		t.Errorf("seed %d: events first finished per key\n%s\nwant\n%s", seed, got, want)
	}
	// Each poisoned event dead-lettered once, alone, with its own bytes.
	dlq, err := js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dlq.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dead := map[string]int{}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := dlq.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		dead[string(m.Data)]++
		if m.Header.Get(bus.HeaderMsgID) == "" || m.Header.Get(bus.HeaderDeadCode) != "poisoned" {
			t.Errorf("seed %d: dead letter %q has id %q code %q", seed, m.Data, m.Header.Get(bus.HeaderMsgID), m.Header.Get(bus.HeaderDeadCode))
		}
	}
	for ev := range poisoned {
		if dead[ev] != 1 {
			t.Errorf("seed %d: poisoned event %s dead-lettered %d times, want once", seed, ev, dead[ev])
		}
	}
	if len(dead) != len(poisoned) {
		t.Errorf("seed %d: %d events dead-lettered, want the %d poisoned", seed, len(dead), len(poisoned))
	}
}

// streamEvents reads every message of stream, and the events they carry.
func streamEvents(t *testing.T, js jetstream.JetStream, stream string) (msgs int, events []bus.Event) {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := bus.Unframe(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, evs...)
	}
	return int(info.State.Msgs), events
}

// relayStage reads ingest and publishes each event on to one of two flow
// subjects, as the mapper does.
func relayStage(js jetstream.JetStream) func(ctx context.Context, msgs []jetstream.Msg) error {
	return relayTo(js, "flow.acme.orders.")
}

// relayTo reads ingest and publishes each event on to one of two subjects
// prefix0 and prefix1.
func relayTo(js jetstream.JetStream, prefix string) func(ctx context.Context, msgs []jetstream.Msg) error {
	pub := bus.NewPublisher(js)
	return func(ctx context.Context, msgs []jetstream.Msg) error {
		out := make([]*nats.Msg, len(msgs))
		for i, m := range msgs {
			out[i] = eventMsg(prefix+strconv.Itoa(i%2), "out-"+string(m.Data()), string(m.Data()))
		}
		return pub.Publish(ctx, out...)
	}
}

// TestRepublishedFrameIsStoredOnce: a stage that published its batch's
// outputs and then failed before acknowledging the batch publishes the same
// frames again on the retry, and the next stream stores each once.
func TestRepublishedFrameIsStoredOnce(t *testing.T) {
	_, js, cfg := setup(t)
	cfg.Backoff = []time.Duration{10 * time.Millisecond}
	publishN(t, js, "ingest.acme.shop.order", 40)
	relay := relayStage(js)
	var mu sync.Mutex
	var attempts, handled int
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "relay", Filter: "ingest.>", Linger: 300 * time.Millisecond},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: func(ctx context.Context, msgs []jetstream.Msg) (int, error) {
			if err := relay(ctx, msgs); err != nil {
				return 0, err
			}
			mu.Lock()
			defer mu.Unlock()
			if attempts++; attempts == 1 {
				return 0, errors.New("the ledger write after the publish failed")
			}
			handled += len(msgs)
			return len(msgs), nil
		}})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return handled == 40 }, "the batch was not handled again")
	if msgs, events := streamEvents(t, js, bus.StreamFlow); msgs != 2 || len(events) != 40 {
		t.Errorf("after the retry the flow stream holds %d events in %d messages, want 40 in 2 frames", len(events), msgs)
	}
}

// diesAfterPublishing runs the stage spec with relay as its handler until
// it has published its first batch's outputs, and stops it before it
// acknowledges the batch, as a process that dies would.
func diesAfterPublishing(t *testing.T, js jetstream.JetStream, cfg bus.Config, spec bus.ConsumerSpec, relay func(context.Context, []jetstream.Msg) error) {
	t.Helper()
	published := make(chan struct{})
	c := bus.NewConsumer(spec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: func(ctx context.Context, msgs []jetstream.Msg) (int, error) {
		if err := relay(ctx, msgs); err != nil {
			return 0, err
		}
		close(published)
		<-ctx.Done() // the process dies before it acknowledges
		return 0, ctx.Err()
	}})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-published
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_ = c.Stop(ctx)
	cancel()
}

// startsAgain runs the stage spec again, as the process that follows one
// that died, and waits until it has handled n events.
func startsAgain(t *testing.T, js jetstream.JetStream, cfg bus.Config, spec bus.ConsumerSpec, relay func(context.Context, []jetstream.Msg) error, n int) {
	t.Helper()
	var mu sync.Mutex
	var handled int
	c := bus.NewConsumer(spec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: func(ctx context.Context, msgs []jetstream.Msg) (int, error) {
		if err := relay(ctx, msgs); err != nil {
			return 0, err
		}
		mu.Lock()
		handled += len(msgs)
		mu.Unlock()
		return len(msgs), nil
	}})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return handled == n }, "the redelivered batch was not handled")
}

// TestEventsPublishedAgainAreHandledOnce: a stage that published its
// batch's outputs and died before acknowledging the batch hands the batch
// over one event at a time when it starts again (see crashes.go), so its
// outputs go out in other frames than the first time; the next stage's
// consumer hands each event over once all the same.
func TestEventsPublishedAgainAreHandledOnce(t *testing.T) {
	_, js, cfg := setup(t)
	publishN(t, js, "ingest.acme.shop.order", 40)
	relay := relayStage(js)
	spec := bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "relay", Filter: "ingest.>", Linger: 300 * time.Millisecond}
	diesAfterPublishing(t, js, cfg, spec, relay)

	next := &recorder{}
	down := bus.NewConsumer(bus.ConsumerSpec{Stage: "next", Stream: bus.StreamFlow, Durable: "next", Filter: "flow.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: next.handle})
	if err := down.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = down.Stop(context.Background()) })
	count := func() int { next.mu.Lock(); defer next.mu.Unlock(); return len(next.seen) }
	waitFor(t, 10*time.Second, func() bool { return count() == 40 }, "the next stage did not get the first run's 40 events")

	startsAgain(t, js, cfg, spec, relay, 40)
	if _, events := streamEvents(t, js, bus.StreamFlow); len(events) <= 40 {
		t.Fatalf("the flow stream holds %d events: the test did not publish any again", len(events))
	}
	waitFor(t, 10*time.Second, func() bool { a, n := pendingOn(t, js, bus.StreamFlow, "next"); return a == 0 && n == 0 }, "the next stage left events unacknowledged")
	next.mu.Lock()
	defer next.mu.Unlock()
	for ev, n := range next.runs {
		if n != 1 {
			t.Errorf("event %s handed to the next stage %d times, want once", ev, n)
		}
	}
	if len(next.seen) != 40 {
		t.Errorf("the next stage handled %d events, want 40", len(next.seen))
	}
}

// TestEventsPublishedAgainAreHandledOnceAcrossARestart: as above, on the
// push stream, but the next stage's process ends too (the all-in-one mode
// killed) after it finished the first frames and before the crashed stage
// publishes their events again one at a time. The next stage's new process
// reads back what its durable finished lately, and hands none of them over
// again.
func TestEventsPublishedAgainAreHandledOnceAcrossARestart(t *testing.T) {
	_, js, cfg := setup(t)
	publishN(t, js, "ingest.acme.shop.order", 40)
	relay := relayTo(js, "push.acme.orders.")
	spec := bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "relay", Filter: "ingest.>", Linger: 300 * time.Millisecond}
	diesAfterPublishing(t, js, cfg, spec, relay)
	if msgs, events := streamEvents(t, js, bus.StreamPush); msgs != 2 || len(events) != 40 {
		t.Fatalf("the push stream holds %d events in %d messages, want 40 in 2 frames", len(events), msgs)
	}

	nextSpec := bus.ConsumerSpec{Stage: "next", Stream: bus.StreamPush, Durable: "next", Filter: "push.>"}
	first := &recorder{}
	down := bus.NewConsumer(nextSpec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: first.handle})
	if err := down.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		a, n := pendingOn(t, js, bus.StreamPush, "next")
		return first.count() == 40 && a == 0 && n == 0
	},
		"the next stage did not finish the first run's 40 events")
	if err := down.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The next stage's new process, then the crashed stage's.
	again := &recorder{}
	down2 := bus.NewConsumer(nextSpec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: again.handle})
	if err := down2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = down2.Stop(context.Background()) })
	startsAgain(t, js, cfg, spec, relay, 40)
	if _, events := streamEvents(t, js, bus.StreamPush); len(events) != 80 {
		t.Fatalf("the push stream holds %d events, want the 40 published again beside the first 40", len(events))
	}
	waitFor(t, 10*time.Second, func() bool { a, n := pendingOn(t, js, bus.StreamPush, "next"); return a == 0 && n == 0 }, "the next stage left events unacknowledged")
	if n := again.count(); n != 0 {
		again.mu.Lock()
		defer again.mu.Unlock()
		t.Errorf("the next stage's new process handled %d events its durable had finished: %v", n, again.seen)
	}
}

// settled reports whether the flow stream's durable has acknowledged
// everything the stream holds: its ack floor is the stream's last message.
// Nothing pending is not enough: a durable that a rewind has just created
// again may report nothing delivered and nothing pending before the server
// has counted what it is to deliver.
func settled(js jetstream.JetStream, durable string) bool {
	st, err := js.Stream(context.Background(), bus.StreamFlow)
	if err != nil {
		return false
	}
	sinfo, err := st.Info(context.Background())
	if err != nil {
		return false
	}
	c, err := js.Consumer(context.Background(), bus.StreamFlow, durable)
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream >= sinfo.State.LastSeq
}

// publishFrame publishes events "<prefix>0".. as one frame on subject.
func publishFrame(t *testing.T, js jetstream.JetStream, subject, prefix string, n int) {
	t.Helper()
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		msgs[i] = eventMsg(subject, prefix+strconv.Itoa(i), prefix+strconv.Itoa(i))
	}
	if err := bus.NewPublisher(js).Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	if n, _ := streamEvents(t, js, bus.StreamFlow); n != 1 {
		t.Fatalf("the flow stream holds %d messages, want the one frame", n)
	}
}

// TestBadEventInAFrameIsDeadLetteredAlone: an event in the middle of a frame
// that fails for good is dead-lettered on its own, with its own bytes and its
// place in the frame, and the frame's other events are handled.
func TestBadEventInAFrameIsDeadLetteredAlone(t *testing.T) {
	_, js, cfg := setup(t)
	publishFrame(t, js, "flow.acme.orders.0", "e", 7)
	st := &recorder{fail: func(ev string, _ int) error {
		if ev == "e3" {
			return bus.Permanent("malformed_event", errors.New("e3 cannot be read"))
		}
		return nil
	}}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamFlow, Durable: "bad", Filter: "flow.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: st.handle})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { return settled(js, "bad") }, "the frame was not acknowledged")
	st.mu.Lock()
	if got := strings.Join(st.seen, ","); got != "e0,e1,e2,e4,e5,e6" {
		t.Errorf("handled %s, want every event but e3, in order", got)
	}
	st.mu.Unlock()
	_, dead := streamEvents(t, js, bus.StreamDeadLetter)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	d := dead[0]
	if string(d.Data) != "e3" || d.Header.Get(bus.HeaderDeadIndex) != "3" || d.Header.Get(bus.HeaderDeadCode) != "malformed_event" ||
		d.Header.Get(bus.HeaderDeadSequence) != "1" || d.Header.Get("traceparent") == "" {
		t.Errorf("dead letter %q index %q code %q sequence %q traceparent %q, want e3's own, index 3 of message 1",
			d.Data, d.Header.Get(bus.HeaderDeadIndex), d.Header.Get(bus.HeaderDeadCode), d.Header.Get(bus.HeaderDeadSequence), d.Header.Get("traceparent"))
	}
}

// TestFrameSplitAcrossARedelivery: a frame whose handling failed part-way is
// delivered again whole; the consumer that finished its first events hands
// over only the rest, and a consumer that starts afresh (another process)
// hands over the whole frame again, in order.
func TestFrameSplitAcrossARedelivery(t *testing.T) {
	_, js, cfg := setup(t)
	cfg.Backoff = []time.Duration{10 * time.Millisecond}
	publishFrame(t, js, "flow.acme.orders.0", "e", 10)
	st := &recorder{fail: func(ev string, attempt int) error {
		if ev == "e6" && attempt == 1 {
			return errors.New("the target timed out at e6")
		}
		return nil
	}}
	spec := bus.ConsumerSpec{Stage: "test", Stream: bus.StreamFlow, Durable: "split", Filter: "flow.>"}
	c := bus.NewConsumer(spec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: st.handle})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return settled(js, "split") }, "the frame was not acknowledged")
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	if got := strings.Join(st.seen, ","); got != "e0,e1,e2,e3,e4,e5,e6,e7,e8,e9" {
		t.Errorf("handled %s, want each event once, in order", got)
	}
	st.mu.Unlock()

	// Another process, on the same durable, before the first acknowledged:
	// it knows nothing of the first's progress and hands the frame over whole.
	publishFrame2 := func() {
		msgs := make([]*nats.Msg, 4)
		for i := range msgs {
			msgs[i] = eventMsg("flow.acme.orders.0", "f"+strconv.Itoa(i), "f"+strconv.Itoa(i))
		}
		if err := bus.NewPublisher(js).Publish(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	publishFrame2()
	first := &recorder{fail: func(ev string, _ int) error {
		if ev == "f2" {
			return errors.New("the process ends here")
		}
		return nil
	}}
	cfg.Backoff = []time.Duration{time.Hour}
	c1 := bus.NewConsumer(spec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: first.handle})
	if err := c1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { first.mu.Lock(); defer first.mu.Unlock(); return first.runs["f2"] == 1 }, "f2 was not handed over")
	if err := c1.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := &recorder{}
	c2 := bus.NewConsumer(spec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: second.handle})
	if err := c2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { return settled(js, "split") }, "the second frame was not acknowledged")
	second.mu.Lock()
	defer second.mu.Unlock()
	if got := strings.Join(second.seen, ","); got != "f0,f1,f2,f3" {
		t.Errorf("the second process handled %s, want the whole frame again, in order", got)
	}
}

// FuzzFrameRoundTrip: whatever headers and bytes events have, Unframe gives
// back what Frame framed.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add("traceparent", "00-abc-01", []byte(`{"a":1}`), []byte{})
	f.Fuzz(func(t *testing.T, key, value string, a, b []byte) {
		msgs := make([]*nats.Msg, 3)
		for i, data := range [][]byte{a, b, a} {
			m := nats.NewMsg("flow.acme.orders.0")
			m.Header[bus.HeaderMsgID] = []string{"id" + strconv.Itoa(i)}
			m.Header[key] = append(m.Header[key], value)
			m.Data = data
			msgs[i] = m
		}
		out := bus.Frame(msgs, 0)
		if len(out) != 1 {
			t.Fatalf("%d messages, want one frame", len(out))
		}
		events, err := bus.Unframe(out[0].Header, out[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 3 {
			t.Fatalf("%d events, want 3", len(events))
		}
		for i, e := range events {
			if string(e.Data) != string(msgs[i].Data) || fmt.Sprint(e.Header) != fmt.Sprint(msgs[i].Header) {
				t.Fatalf("event %d: %q %v, want %q %v", i, e.Data, e.Header, msgs[i].Data, msgs[i].Header)
			}
		}
	})
}

// TestFrameOnIngestIsNotUnframed: frames are internal. A publisher that sends
// a message dressed as a frame to ingest, where its token lets it publish,
// gets it handed to the stage as the one message it is — which the mapper
// refuses as malformed — and never gets events with headers of its choosing
// past ingest's checks.
func TestFrameOnIngestIsNotUnframed(t *testing.T) {
	_, js, cfg := setup(t)
	frame := bus.Frame([]*nats.Msg{eventMsg("flow.acme.orders.0", "a", "a"), eventMsg("flow.acme.orders.0", "b", "b")}, 0)[0]
	forged := nats.NewMsg("ingest.acme.shop.order")
	forged.Header = frame.Header
	forged.Data = frame.Data
	if err := bus.NewPublisher(js).Publish(context.Background(), forged); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "forged", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: rec.handle})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 1 }, "the forged frame was not handed over")
	time.Sleep(50 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) != 1 || rec.seen[0] != string(frame.Data) {
		t.Errorf("the stage got %d messages, want the forged frame as one message", len(rec.seen))
	}
}

// TestRestartRemembersOnlyWhatWasFinished: a consumer that starts reads back
// the events its durable finished (up to its ack floor), and no more. Frame
// A is finished; frame B is in hand when the process dies; then A's events
// are published again one by one, as an upstream stage that crashed would.
// The next process hands over B's events, each once, and none of A's.
func TestRestartRemembersOnlyWhatWasFinished(t *testing.T) {
	_, js, cfg := setup(t)
	const subject = "push.acme.orders.0"
	publish := func(msgs ...*nats.Msg) {
		t.Helper()
		if err := bus.NewPublisher(js).Publish(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	frame := func(prefix string) []*nats.Msg {
		msgs := make([]*nats.Msg, 10)
		for i := range msgs {
			msgs[i] = eventMsg(subject, prefix+strconv.Itoa(i), prefix+strconv.Itoa(i))
		}
		return msgs
	}
	spec := bus.ConsumerSpec{Stage: "connector", Stream: bus.StreamPush, Durable: "next", Filter: "push.>"}

	publish(frame("a")...)
	first := &recorder{}
	inB := make(chan struct{})
	var once sync.Once
	c := bus.NewConsumer(spec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: func(ctx context.Context, msgs []jetstream.Msg) (int, error) {
		if strings.HasPrefix(string(msgs[0].Data()), "b") {
			once.Do(func() { close(inB) })
			<-ctx.Done() // the process dies with frame B in hand
			return 0, ctx.Err()
		}
		return first.handle(ctx, msgs)
	}})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		a, n := pendingOn(t, js, bus.StreamPush, "next")
		return first.count() == 10 && a == 0 && n == 0
	},
		"frame A was not finished")
	publish(frame("b")...)
	<-inB
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_ = c.Stop(ctx)
	cancel()
	for _, m := range frame("a") {
		publish(m)
	}
	if msgs, events := streamEvents(t, js, bus.StreamPush); msgs != 12 || len(events) != 30 {
		t.Fatalf("the push stream holds %d events in %d messages, want 30 in 12", len(events), msgs)
	}

	next := &recorder{}
	c2 := bus.NewConsumer(spec, bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: next.handle})
	if err := c2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { a, n := pendingOn(t, js, bus.StreamPush, "next"); return a == 0 && n == 0 },
		"the next process left events unacknowledged")
	next.mu.Lock()
	defer next.mu.Unlock()
	if got := strings.Join(next.seen, " "); got != "b0 b1 b2 b3 b4 b5 b6 b7 b8 b9" {
		t.Errorf("the next process handled %q, want frame B's events once each and none of A's", got)
	}
}
