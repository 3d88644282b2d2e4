package connector_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/poll"
	"github.com/syncline/syncline/services/connector/connector"
)

var pollSeed = flag.Uint64("poll.seed", 0, "seed of TestPollingAgainstModel (0: a new one)")

// watchedSource is a memory source that counts its readers, so a test sees two replicas
// reading one source at once.
type watchedSource struct {
	*connectortest.MemorySource
	inflight, most, reads atomic.Int64
	// delay slows each read, so that stops fall inside polls.
	delay time.Duration
}

func (w *watchedSource) Read(ctx context.Context, entity, cursor string) (sdk.Page, error) {
	n := w.inflight.Add(1)
	defer w.inflight.Add(-1)
	for {
		m := w.most.Load()
		if n <= m || w.most.CompareAndSwap(m, n) {
			break
		}
	}
	w.reads.Add(1)
	if w.delay > 0 {
		time.Sleep(w.delay)
	}
	return w.MemorySource.Read(ctx, entity, cursor)
}

func (w *watchedSource) Close() error { return nil }

var shopSource = poll.Source{Tenant: "acme", Endpoint: "shop", Entity: "order"}

// pollRig is a rig whose flow reads a memory source every second.
func pollRig(t *testing.T, src *watchedSource) *rig {
	t.Helper()
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	r := newRig(t, cfg)
	err := r.reg.RegisterSource(sdk.Spec{Type: "memory", Kind: sdk.KindSource, Summary: "a source in memory",
		Fields: []sdk.Field{{Name: "name", Type: sdk.TypeString, Summary: "which"}}})
	if err == nil {
		err = r.reg.RegisterPolling("memory", func(context.Context, map[string]any, sdk.Env) (sdk.Source, error) { return src, nil },
			func(map[string]any) ([]string, error) { return []string{sdk.AnyEntity}, nil })
	}
	if err != nil {
		t.Fatal(err)
	}
	f := &flowconfig.Flow{Tenant: "acme", Name: "orders", Generation: 1, Entity: "order", Integrator: "sync",
		Source:   flowconfig.Endpoint{Name: "shop", Type: "memory", Settings: map[string]any{"name": "shop"}},
		Target:   flowconfig.Endpoint{Name: "orders", Type: "flaky", Settings: map[string]any{"name": "orders"}},
		Mapping:  mapping.Spec{Fields: map[string]string{"n": "source.n"}},
		Schedule: &poll.Spec{Mode: poll.ModeInterval, Every: "1s", Jitter: "0s"}, Stage: flowconfig.StageActive}
	b, err := flowconfig.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.kv.Put(context.Background(), f.Key(), b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the index never saw the polled flow", func() bool { return r.flows.Get("acme", "orders") != nil })
	return r
}

// metricValue returns the value of the counter or gauge name with labels in reg, 0 if none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels prometheus.Labels) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// ingested returns the changes on the ingest stream, by event id, failing on an event id
// stored twice.
type ingestedChange struct {
	key     string
	version int64
	delete  bool
	payload string
}

func (r *rig) ingested() map[string]ingestedChange {
	r.t.Helper()
	ctx := context.Background()
	st, err := r.js.Stream(ctx, bus.StreamIngest)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]ingestedChange{}
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("ingest.>"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			r.t.Fatal(err)
		}
		seq = m.Sequence + 1
		e, err := envelope.Decode(m.Data)
		if err != nil {
			r.t.Fatal(err)
		}
		if _, dup := out[e.EventId]; dup {
			r.t.Fatalf("event %s (record %s) is stored twice", e.EventId, e.SourceKey)
		}
		out[e.EventId] = ingestedChange{key: e.SourceKey, version: e.SourceVersion, delete: e.Operation.String() == "OPERATION_DELETE", payload: string(e.Payload)}
	}
}

func (r *rig) pollState() poll.State {
	r.t.Helper()
	st, _, err := poll.NewStore(r.js, 1).Get(context.Background(), shopSource)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// syncNow asks for a poll now and waits until one that began at or after the request has
// ended.
func (r *rig) syncNow() poll.State {
	r.t.Helper()
	at := time.Now()
	if err := poll.NewStore(r.js, 1).RequestSync(context.Background(), shopSource, poll.Request{At: at}); err != nil {
		r.t.Fatal(err)
	}
	var st poll.State
	waitFor(r.t, "no poll ended after the request", func() bool {
		st = r.pollState()
		return !st.Started.Before(at) && st.Outcome != poll.OutcomeRunning && st.Outcome != ""
	})
	return st
}

// TestPolledSourceReachesIngestOnce: a flow's schedule polls its source; every change is
// published once, with the event id of its source, key and version, the cursor is stored,
// and a poll asked for (`syncline flow sync`) reads what changed since.
func TestPolledSourceReachesIngestOnce(t *testing.T) {
	src := &watchedSource{MemorySource: connectortest.NewMemorySource(4)}
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	for i := 1; i <= 23; i++ {
		src.Put(strconv.Itoa(i), map[string]string{"n": strconv.Itoa(i)}, at.Add(time.Duration(i/3)*time.Second))
	}
	r := pollRig(t, src)
	reg := prometheus.NewRegistry()
	var err error
	if r.pollMetrics, err = connector.NewPollMetrics(reg); err != nil {
		t.Fatal(err)
	}
	r.start(connector.BreakerConfig{})
	var st poll.State
	waitFor(t, "the first poll never ended", func() bool { st = r.pollState(); return st.Outcome == poll.OutcomeOK })
	labels := prometheus.Labels{"tenant": "acme", "endpoint": "shop", "entity": "order"}
	if n := metricValue(t, reg, "syncline_source_changes_total", labels); n != 23 {
		t.Errorf("syncline_source_changes_total = %v, want 23", n)
	}
	labels["outcome"] = "ok"
	if n := metricValue(t, reg, "syncline_source_polls_total", labels); n < 1 {
		t.Errorf("syncline_source_polls_total{outcome=ok} = %v, want the poll", n)
	}
	if st.Changes != 23 || st.Total != 23 || st.Cursor == "" || st.Error != "" || st.Next.IsZero() {
		t.Fatalf("state after the first poll = %+v, want 23 changes, a cursor and the next poll", st)
	}
	got := r.ingested()
	if len(got) != 23 {
		t.Fatalf("ingest holds %d changes, want 23", len(got))
	}
	for id, c := range got {
		if want := poll.EventID(shopSource, c.key, c.version); id != want {
			t.Errorf("record %s version %d has event id %s, want %s", c.key, c.version, id, want)
		}
	}
	src.Put("5", map[string]string{"n": "five"}, at.Add(time.Hour))
	src.Delete("6", at.Add(time.Hour))
	st = r.syncNow()
	if st.Outcome != poll.OutcomeOK || st.Changes != 2 || st.Total != 25 {
		t.Fatalf("state after the asked-for poll = %+v, want 2 changes of 25", st)
	}
	got = r.ingested()
	var five, six bool
	for _, c := range got {
		five = five || c.key == "5" && c.payload == `{"id":"5","n":"five"}`
		six = six || c.key == "6" && c.delete
	}
	if len(got) != 25 || !five || !six {
		t.Fatalf("after the second poll ingest holds %d changes (record 5 changed: %v, 6 deleted: %v), want 25", len(got), five, six)
	}
	// From the start: every record is read again, and none is stored twice.
	at2 := time.Now()
	if err := poll.NewStore(r.js, 1).RequestSync(context.Background(), shopSource, poll.Request{At: at2, FromStart: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no poll from the start ended", func() bool {
		st = r.pollState()
		return !st.Started.Before(at2) && st.Outcome == poll.OutcomeOK
	})
	if st.Changes != 23 || st.Total != 48 {
		t.Fatalf("state after a poll from the start = %+v, want all 23 records read again", st)
	}
	if got := r.ingested(); len(got) != 25 {
		t.Fatalf("after reading from the start ingest holds %d changes, want the same 25", len(got))
	}
}

// TestFailedPollKeepsItsCursor: a source that fails leaves the cursor where it was and says
// why in the state; the next poll reads on from it.
func TestFailedPollKeepsItsCursor(t *testing.T) {
	src := &watchedSource{MemorySource: connectortest.NewMemorySource(4)}
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	src.Put("1", map[string]string{"n": "1"}, at)
	r := pollRig(t, src)
	r.start(connector.BreakerConfig{})
	waitFor(t, "the first poll never ended", func() bool { return r.pollState().Outcome == poll.OutcomeOK })
	before := r.pollState().Cursor
	src.Put("2", map[string]string{"n": "2"}, at.Add(time.Second))
	src.Fail(errors.New("shop answered 502 Bad Gateway"))
	st := r.syncNow()
	if st.Outcome != poll.OutcomeFailed || st.Cursor != before || st.Error == "" {
		t.Fatalf("state after a failed poll = %+v, want failed at cursor %q with the error", st, before)
	}
	src.Fail(nil)
	st = r.syncNow()
	if st.Outcome != poll.OutcomeOK || st.Changes != 1 || st.Error != "" {
		t.Fatalf("state after the source came back = %+v, want ok with record 2 read", st)
	}
}

// TestPollingAgainstModel changes the source at random while two replicas poll it, stops
// and starts them at random (cutting polls off mid-page), and asks for polls; then checks,
// against the source as it ends, that the last version of every record is on the ingest
// stream, no event is stored twice, and never did two replicas read the source at once.
func TestPollingAgainstModel(t *testing.T) {
	seed := *pollSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -poll.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	src := &watchedSource{MemorySource: connectortest.NewMemorySource(3), delay: 20 * time.Millisecond}
	r := pollRig(t, src)

	type version struct {
		at      time.Time
		deleted bool
	}
	latest := map[string]version{}
	clock := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	// Every change is later than the one before: the replicas read while changes are
	// made, and a change stamped no later than what a read saw is one committed out of
	// order, which a source must read back for (the source conformance suite's ties are
	// made between reads).
	change := func() {
		clock = clock.Add(time.Millisecond)
		key := strconv.Itoa(1 + rng.IntN(40))
		if _, ok := latest[key]; ok && rng.IntN(5) == 0 {
			src.Delete(key, clock)
			latest[key] = version{at: clock, deleted: true}
			return
		}
		src.Put(key, map[string]string{"n": fmt.Sprint(rng.IntN(1000))}, clock)
		latest[key] = version{at: clock}
	}
	replicas := []*connector.Service{r.start(connector.BreakerConfig{}), nil}
	var mu sync.Mutex
	for step := range 40 {
		for range rng.IntN(6) {
			change()
		}
		switch rng.IntN(5) {
		case 0:
			i := rng.IntN(2)
			mu.Lock()
			if replicas[i] != nil {
				if err := replicas[i].Stop(context.Background()); err != nil {
					t.Fatalf("step %d: stopping replica %d: %v", step, i, err)
				}
				replicas[i] = nil
			} else {
				replicas[i] = r.start(connector.BreakerConfig{})
			}
			mu.Unlock()
		case 1:
			if err := poll.NewStore(r.js, 1).RequestSync(context.Background(), shopSource, poll.Request{At: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
	}
	if replicas[0] == nil && replicas[1] == nil {
		replicas[0] = r.start(connector.BreakerConfig{})
	}
	// A poll that begins after the last change reads to the end.
	waitFor(t, "no poll read the source to its end", func() bool {
		st := r.syncNow()
		return st.Outcome == poll.OutcomeOK && st.Changes == 0
	})
	got := r.ingested()
	have := map[string]bool{}
	for _, c := range got {
		have[c.key+"/"+strconv.FormatInt(c.version, 10)] = true
	}
	for key, v := range latest {
		if !have[key+"/"+strconv.FormatInt(v.at.UnixMicro(), 10)] {
			t.Errorf("seed %d: the last change of record %s (at %s, deleted %v) is not on the ingest stream", seed, key, v.at.Format(time.RFC3339Nano), v.deleted)
		}
	}
	if m := src.most.Load(); m > 1 {
		t.Errorf("seed %d: %d replicas read the source at once", seed, m)
	}
}
