package bus_test

import (
	"context"
	"errors"
	"log/slog"
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

func testConfig() bus.Config {
	c := bus.DefaultConfig()
	c.Backoff = []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}
	c.MaxDeliver = 3
	c.MaxBatch = 50
	c.AckWait = 2 * time.Second
	return c
}

func setup(t *testing.T) (*nats.Conn, jetstream.JetStream, bus.Config) {
	t.Helper()
	s := natstest.Run(t)
	nc, js := natstest.Connect(t, s)
	cfg := testConfig()
	if err := bus.EnsureStreams(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	// Creating the streams twice changes nothing and fails nothing.
	if err := bus.EnsureStreams(context.Background(), js, cfg); err != nil {
		t.Fatalf("second EnsureStreams: %v", err)
	}
	return nc, js, cfg
}

func publishN(t *testing.T, js jetstream.JetStream, subject string, n int) {
	t.Helper()
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		m := nats.NewMsg(subject)
		m.Header.Set(bus.HeaderMsgID, subject+"-"+strconv.Itoa(i))
		m.Data = []byte(strconv.Itoa(i))
		msgs[i] = m
	}
	if err := bus.NewPublisher(js).Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder is a handler that records what it was given, in order.
type recorder struct {
	mu   sync.Mutex
	seen []string
	fail func(data string, attempt int) error
	runs map[string]int
}

func (r *recorder) handle(_ context.Context, msgs []jetstream.Msg) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = map[string]int{}
	}
	for i, m := range msgs {
		d := string(m.Data())
		r.runs[d]++
		if r.fail != nil {
			if err := r.fail(d, r.runs[d]); err != nil {
				return i, err
			}
		}
		r.seen = append(r.seen, d)
	}
	return len(msgs), nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func pending(t *testing.T, js jetstream.JetStream, durable string) (ackPending int, numPending uint64) {
	t.Helper()
	return pendingOn(t, js, bus.StreamIngest, durable)
}

func pendingOn(t *testing.T, js jetstream.JetStream, stream, durable string) (ackPending int, numPending uint64) {
	t.Helper()
	c, err := js.Consumer(context.Background(), stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending, info.NumPending
}

func TestConsumerHandlesInOrderAndAcks(t *testing.T) {
	_, js, cfg := setup(t)
	publishN(t, js, "ingest.acme.shop.order", 200)
	rec := &recorder{}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "ordered", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: rec.handle})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 200 }, "not all 200 messages handled")
	for i, d := range rec.seen {
		if d != strconv.Itoa(i) {
			t.Fatalf("message %d handled as %q: out of order", i, d)
		}
	}
	waitFor(t, 5*time.Second, func() bool { a, n := pending(t, js, "ordered"); return a == 0 && n == 0 }, "messages left unacknowledged")
}

func TestConsumerRetriesThenSucceeds(t *testing.T) {
	_, js, cfg := setup(t)
	publishN(t, js, "ingest.acme.shop.order", 10)
	rec := &recorder{fail: func(d string, attempt int) error {
		if d == "4" && attempt < 2 {
			return errors.New("store briefly down")
		}
		return nil
	}}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "retry", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: rec.handle})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 10 }, "not all messages handled after a retry")
	// Nothing overtook the failed message: the order is intact.
	for i, d := range rec.seen {
		if d != strconv.Itoa(i) {
			t.Fatalf("after a retry, message %d handled as %q", i, d)
		}
	}
}

func TestConsumerDeadLettersAfterMaxDeliver(t *testing.T) {
	_, js, cfg := setup(t)
	publishN(t, js, "ingest.acme.shop.order", 5)
	rec := &recorder{fail: func(d string, _ int) error {
		if d == "2" {
			return errors.New("target refuses record 2")
		}
		return nil
	}}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "dead", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: rec.handle})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 4 }, "the messages after the bad one were not handled")
	dlq, err := js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	// Published without a bucket, the event was in partition 0.
	if string(m.Data) != "2" || m.Subject != "dlq.acme.test.0" {
		t.Errorf("dead letter = %s %q, want dlq.acme.test.0 \"2\"", m.Subject, m.Data)
	}
	want := map[string]string{
		bus.HeaderDeadCode:     bus.CodeRetriesExhausted,
		bus.HeaderDeadReason:   "gave up after 3 attempts: target refuses record 2",
		bus.HeaderDeadSubject:  "ingest.acme.shop.order",
		bus.HeaderDeadStream:   bus.StreamIngest,
		bus.HeaderDeadSequence: "3",
		bus.HeaderDeadStage:    "test",
	}
	for k, v := range want {
		if got := m.Header.Get(k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	waitFor(t, 5*time.Second, func() bool { a, n := pending(t, js, "dead"); return a == 0 && n == 0 }, "messages left unacknowledged")
}

// TestStopLeavesUnfinishedForNextStart stops a consumer while its handler is
// busy: the batch in hand finishes, nothing unfinished is acknowledged, and a
// new consumer on the same durable gets every remaining message at once.
func TestStopLeavesUnfinishedForNextStart(t *testing.T) {
	_, js, cfg := setup(t)
	// Far longer than the wait below: only a rewind at the start delivers
	// the unfinished messages in time.
	cfg.AckWait = time.Minute
	publishN(t, js, "ingest.acme.shop.order", 100)
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	first := &recorder{}
	slow := func(ctx context.Context, msgs []jetstream.Msg) (int, error) {
		once.Do(func() { close(started) })
		<-release
		n, err := first.handle(ctx, msgs[:1])
		return n, err
	}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "stop", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: slow})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-started
	stopped := make(chan error)
	go func() { stopped <- c.Stop(context.Background()) }()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	handled := first.count()
	if handled != 1 {
		t.Fatalf("first consumer finished %d messages, want 1", handled)
	}

	second := &recorder{}
	c2 := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "stop", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: second.handle})
	if err := c2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Stop(context.Background()) })
	// Well within AckWait: the start rewinds to the ack floor instead of
	// waiting for the unfinished messages to time out.
	waitFor(t, 15*time.Second, func() bool { return second.count() >= 99 }, "the second consumer did not get the 99 remaining messages")
	time.Sleep(50 * time.Millisecond)
	if n := second.count(); n != 99 {
		t.Errorf("second consumer handled %d messages, want the 99 the first did not finish", n)
	}
	if second.seen[0] != "1" {
		t.Errorf("second consumer started at %q, want \"1\"", second.seen[0])
	}
}

func TestPublishIsDeduplicatedByMsgID(t *testing.T) {
	_, js, _ := setup(t)
	publishN(t, js, "ingest.acme.shop.order", 10)
	publishN(t, js, "ingest.acme.shop.order", 10)
	s, err := js.Stream(context.Background(), bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 10 {
		t.Errorf("stream holds %d messages after publishing 10 twice, want 10", info.State.Msgs)
	}
}

// TestLingerGathersABatch: a consumer with a linger hands over what arrived
// within it as one batch; without one, it hands over at once.
func TestLingerGathersABatch(t *testing.T) {
	for _, tt := range []struct {
		linger    time.Duration
		wantFirst int // size of the first batch
	}{{0, 1}, {300 * time.Millisecond, 5}} {
		t.Run(tt.linger.String(), func(t *testing.T) {
			_, js, cfg := setup(t)
			var mu sync.Mutex
			var batches []int
			handle := func(_ context.Context, msgs []jetstream.Msg) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				batches = append(batches, len(msgs))
				return len(msgs), nil
			}
			c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "linger", Filter: "ingest.>", Linger: tt.linger},
				bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: handle})
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Stop(context.Background()) })
			publishN(t, js, "ingest.acme.shop.order", 1)
			time.Sleep(100 * time.Millisecond) // the second message comes later on purpose
			publishN(t, js, "ingest.acme.shop.other", 4)
			waitFor(t, 5*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, b := range batches {
					n += b
				}
				return n == 5
			}, "not all five messages handled")
			mu.Lock()
			defer mu.Unlock()
			if batches[0] != tt.wantFirst {
				t.Errorf("linger %s: batches %v, want a first batch of %d", tt.linger, batches, tt.wantFirst)
			}
		})
	}
}

// TestConsumerDeadLettersAnEventThatKillsItsProcess runs a consumer whose
// process dies on one event each time — its connection goes and its handler
// never returns — or hangs on it until it is stopped, and starts a new one on
// the same durable after each run, as a restarted process would: the event
// ends as a dead letter after MaxDeliver such runs, and every other event is
// handled.
func TestConsumerDeadLettersAnEventThatKillsItsProcess(t *testing.T) {
	for _, kill := range []bool{true, false} {
		name := "hung"
		if kill {
			name = "killed"
		}
		t.Run(name, func(t *testing.T) { testPoison(t, kill) })
	}
}

func testPoison(t *testing.T, kill bool) {
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	cfg := testConfig()
	if err := bus.EnsureStreams(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, "ingest.acme.shop.order", 10)
	var mu sync.Mutex
	seen := map[string]int{}
	others := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	deaths := 0
	for run := 1; ; run++ {
		if run > 2*cfg.MaxDeliver+2 {
			t.Fatalf("after %d runs that died on event 4, it is still handed to the stage", deaths)
		}
		nc, pjs := natstest.Connect(t, s)
		died := make(chan struct{})
		handle := func(ctx context.Context, msgs []jetstream.Msg) (int, error) {
			for _, m := range msgs {
				d := string(m.Data())
				if d == "4" {
					// The process dies (nothing more reaches the server)
					// or hangs: the handler never finishes.
					if kill {
						nc.Close()
					}
					close(died)
					<-ctx.Done()
					return 0, ctx.Err()
				}
				mu.Lock()
				seen[d]++
				mu.Unlock()
			}
			return len(msgs), nil
		}
		c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "poison", Filter: "ingest.>"},
			bus.ConsumerDeps{JetStream: pjs, Config: cfg, Handler: handle})
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			for others() < 9 {
				select {
				case <-died:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d neither died nor handled the other events", run)
		}
		select {
		case <-died:
			deaths++
			expired, cancel := context.WithTimeout(context.Background(), 0)
			_ = c.Stop(expired)
			cancel()
			continue
		default:
		}
		t.Cleanup(func() { _ = c.Stop(context.Background()) })
		break
	}
	// The first death was on a batch, which does not say which event killed
	// the process; each one after it was on event 4 alone. The run that
	// finishes events 0 to 3 one at a time and dies on 4 moves the ack
	// floor, which starts the count afresh; its last acknowledgement may
	// reach the server only after the next run has read the floor (a dying
	// process does not wait for its acknowledgements), and the floor then
	// moves once more: one more run at most.
	if deaths > cfg.MaxDeliver+2 {
		t.Errorf("the process died %d times on event 4, want at most %d", deaths, cfg.MaxDeliver+2)
	}
	dlq, err := js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if string(m.Data) != "4" || m.Header.Get(bus.HeaderDeadCode) != bus.CodeMaxDeliveries || m.Header.Get(bus.HeaderDeadSequence) != "5" {
		t.Errorf("dead letter = %q code %q sequence %q, want \"4\" %s 5", m.Data, m.Header.Get(bus.HeaderDeadCode), m.Header.Get(bus.HeaderDeadSequence), bus.CodeMaxDeliveries)
	}
	if _, err := dlq.GetMsg(context.Background(), 2); err == nil {
		t.Errorf("more than one dead letter")
	}
	waitFor(t, 5*time.Second, func() bool { a, n := pending(t, js, "poison"); return a == 0 && n == 0 }, "messages left unacknowledged")
}

// TestConsumerDeadLettersAGrownEventAtOnce runs a stage that, like the
// mapper, adds to every event and publishes a batch's outputs in one call,
// failing the batch as a whole when that fails. One event fits the server
// only as it arrived: it is dead-lettered at once (no back-off: the test's
// back-off is longer than it waits), its dead letter fits, and every other
// event of its batch goes on.
func TestConsumerDeadLettersAGrownEventAtOnce(t *testing.T) {
	nc, js, cfg := setup(t)
	cfg.Backoff = []time.Duration{time.Hour}
	ctx := context.Background()
	msgs := make([]*nats.Msg, 10)
	for i := range msgs {
		m := nats.NewMsg("ingest.acme.shop.order")
		m.Header.Set(bus.HeaderMsgID, "grown-"+strconv.Itoa(i))
		m.Data = []byte(strconv.Itoa(i))
		if i == 5 {
			m.Data = make([]byte, nc.MaxPayload()-200)
		}
		msgs[i] = m
	}
	pub := bus.NewPublisher(js)
	if err := pub.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	withOthers := false // the grown event was handed over with others
	grow := func(ctx context.Context, in []jetstream.Msg) (int, error) {
		out := make([]*nats.Msg, len(in))
		for i, m := range in {
			if len(in) > 1 && m.Headers().Get(bus.HeaderMsgID) == "grown-5" {
				mu.Lock()
				withOthers = true
				mu.Unlock()
			}
			o := nats.NewMsg(bus.FlowSubject("acme", "orders", i%4))
			o.Header.Set(bus.HeaderMsgID, m.Headers().Get(bus.HeaderMsgID)+":orders")
			o.Data = append(slices.Clone(m.Data()), make([]byte, 1024)...)
			out[i] = o
		}
		if err := pub.Publish(ctx, out...); err != nil {
			return 0, err
		}
		return len(in), nil
	}
	// The linger gathers the ten events into one batch.
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "grow", Filter: "ingest.>", Linger: 500 * time.Millisecond},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: grow})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { a, n := pending(t, js, "grow"); return a == 0 && n == 0 },
		"the events after the grown one were held back")
	if _, events := streamEvents(t, js, bus.StreamFlow); len(events) != 9 {
		t.Errorf("the stage published %d outputs, want the 9 of the events that fit", len(events))
	}
	dlq, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := dlq.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if dl.Header.Get(bus.HeaderDeadCode) != bus.CodeTooLarge || dl.Header.Get(bus.HeaderDeadSequence) != "6" {
		t.Errorf("dead letter code %q sequence %q, want %s 6", dl.Header.Get(bus.HeaderDeadCode), dl.Header.Get(bus.HeaderDeadSequence), bus.CodeTooLarge)
	}
	if !strings.Contains(dl.Header.Get(bus.HeaderDeadReason), "grown-5:orders") {
		t.Errorf("dead letter reason %q does not name the output that did not fit", dl.Header.Get(bus.HeaderDeadReason))
	}
	if dl.Header.Get(bus.HeaderDeadOmitted) == "" {
		t.Errorf("the dead letter of an event near the limit does not say what it left out")
	}
	mu.Lock()
	defer mu.Unlock()
	if !withOthers {
		t.Errorf("the grown event never came in a batch with others: the test did not try a batch that fails as a whole")
	}
}

// TestConsumerRecreatesWhatARestartedServerLost restarts the server on an
// empty folder (a server that lost its files): the consumer notices that
// its durable is gone, creates the streams and the durable again, and
// handles what is published afterwards.
func TestConsumerRecreatesWhatARestartedServerLost(t *testing.T) {
	s := natstest.RunIn(t, t.TempDir())
	_, js := natstest.Dial(t, s)
	cfg := testConfig()
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "lost", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: rec.handle})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, "ingest.acme.shop.before", 3)
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 3 }, "not all messages handled before the restart")

	natstest.Restart(t, s, t.TempDir())
	waitFor(t, 30*time.Second, func() bool {
		_, err := js.Consumer(ctx, bus.StreamIngest, "lost")
		return err == nil
	}, "the consumer did not create its stream and durable again")
	publishN(t, js, "ingest.acme.shop.after", 3)
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 6 }, "messages published after the restart were not handled")
	if err := c.Stop(ctx); err != nil {
		t.Errorf("stopping: %v", err)
	}
}

// TestConsumerDeadLettersAPermanentFailureAtOnce: a handler that reports a
// permanent failure of one record has that record dead-lettered at once with
// the handler's code (the test's back-off is longer than it waits), and the
// records after it go on.
func TestConsumerDeadLettersAPermanentFailureAtOnce(t *testing.T) {
	_, js, cfg := setup(t)
	cfg.Backoff = []time.Duration{time.Hour}
	publishN(t, js, "ingest.acme.shop.order", 6)
	rec := &recorder{fail: func(d string, _ int) error {
		if d == "3" {
			return bus.Permanent("malformed", errors.New("record 3 has no key"))
		}
		return nil
	}}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "permanent", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: rec.handle})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { a, n := pending(t, js, "permanent"); return a == 0 && n == 0 },
		"the records after the permanent failure were held back")
	if n := rec.count(); n != 5 {
		t.Errorf("handled %d records, want the 5 without a failure", n)
	}
	dlq, err := js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if string(m.Data) != "3" || m.Header.Get(bus.HeaderDeadCode) != "malformed" || m.Header.Get(bus.HeaderDeadReason) != "record 3 has no key" {
		t.Errorf("dead letter %q code %q reason %q, want \"3\" malformed \"record 3 has no key\"", m.Data, m.Header.Get(bus.HeaderDeadCode), m.Header.Get(bus.HeaderDeadReason))
	}
}

// warnings is a log handler that keeps warnings and errors, each as its
// message and its attributes (key=value).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	w.msgs = append(w.msgs, line)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// TestASlowBatchIsNotALostServer: a stage that takes longer over a batch
// than the server's heartbeats and pull expiry, while ten times its batch
// waits, goes on where it was once the batch is done: the server's
// heartbeats and the ends of its pull requests, which arrive meanwhile,
// are not mistaken for a lost server, no consumer is rewound, and every
// message is handled once.
func TestASlowBatchIsNotALostServer(t *testing.T) {
	nc, js, cfg := setup(t)
	var dropped []string
	var droppedMu sync.Mutex
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		droppedMu.Lock()
		defer droppedMu.Unlock()
		dropped = append(dropped, err.Error())
	})
	cfg.MaxBatch = 4
	cfg.AckWait = time.Minute
	publishN(t, js, "ingest.acme.shop.order", 40)
	release := make(chan struct{})
	var once sync.Once
	rec := &recorder{}
	handler := func(ctx context.Context, msgs []jetstream.Msg) (int, error) {
		// The first batch takes longer than a pull request lives (5s).
		once.Do(func() { <-release })
		return rec.handle(ctx, msgs)
	}
	logs := &warnings{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("warnings: %q; handled: %q", logs.all(), rec.seen)
		}
	})
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "slow", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: handler, Logger: slog.New(logs)})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	time.Sleep(7 * time.Second)
	close(release)
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 40 }, "not all 40 messages handled")
	later := make([]*nats.Msg, 3)
	for i := range later {
		later[i] = nats.NewMsg("ingest.acme.shop.order")
		later[i].Header.Set(bus.HeaderMsgID, "later-"+strconv.Itoa(i))
		later[i].Data = []byte("later " + strconv.Itoa(i))
	}
	if err := bus.NewPublisher(js).Publish(context.Background(), later...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 43 }, "the messages published after the slow batch were not handled")
	time.Sleep(3 * time.Second) // what a rewind would deliver again
	for d, n := range rec.runs {
		if n != 1 {
			t.Errorf("message %q handled %d times, want once", d, n)
		}
	}
	if w := logs.all(); len(w) > 0 {
		t.Errorf("the consumer warned %q; want no warnings: a slow batch is not a failure", w)
	}
	droppedMu.Lock()
	defer droppedMu.Unlock()
	if len(dropped) > 0 {
		// A status the server sent and the client dropped (the end of
		// a pull request, with the count of what it did not deliver)
		// leaves the client waiting for messages it will never get.
		t.Errorf("the client dropped what the server sent: %q", dropped)
	}
}

// TestAckPendingOfOneBatch: a consumer that may hold no more than one batch
// unacknowledged still goes through everything: the server sends the next
// batch once the stage acknowledges the one before.
func TestAckPendingOfOneBatch(t *testing.T) {
	_, js, cfg := setup(t)
	cfg.MaxBatch = 4
	cfg.MaxAckPending = 4
	publishN(t, js, "ingest.acme.shop.order", 41)
	rec := &recorder{}
	logs := &warnings{}
	c := bus.NewConsumer(bus.ConsumerSpec{Stage: "test", Stream: bus.StreamIngest, Durable: "tight", Filter: "ingest.>"},
		bus.ConsumerDeps{JetStream: js, Config: cfg, Handler: rec.handle, Logger: slog.New(logs)})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, 10*time.Second, func() bool { return rec.count() == 41 }, "not all 41 messages handled")
	for d, n := range rec.runs {
		if n != 1 {
			t.Errorf("message %q handled %d times, want once", d, n)
		}
	}
	if w := logs.all(); len(w) > 0 {
		t.Errorf("the consumer warned %q; want no warnings", w)
	}
}

// TestClientErrorsAreLogged: what the NATS client drops from a
// subscription that fell behind is a warning on the service's log, with
// the connection and the subject, not a line of its own on stderr.
func TestClientErrorsAreLogged(t *testing.T) {
	s := natstest.Run(t)
	logs := &warnings{}
	nc, err := nats.Connect(s.ClientURL(), nats.Name("syncline-test"), bus.LogClientErrors(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 1)
	if _, err := nc.ChanSubscribe("behind", ch); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := nc.Publish("behind", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(logs.all()) > 0 }, "no warning for the messages the client dropped")
	want := "NATS client error error=nats: slow consumer, messages dropped connection=syncline-test subject=behind"
	if got := logs.all()[0]; got != want {
		t.Errorf("warning %q, want %q", got, want)
	}
}
