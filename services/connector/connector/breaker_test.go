package connector_test

import (
	"context"
	"errors"
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

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/services/connector/connector"
)

// flakyTarget is a target that can be taken down: while down, every push
// fails as a whole, as when its server cannot be reached.
type flakyTarget struct {
	mu        sync.Mutex
	down      bool
	hang      bool          // while down, hang until the push's context ends
	perRecord time.Duration // how long each record takes to write
	attempts  []int         // records per push tried while down
	applied   []string      // "key@version", in the order written
	closed    bool
}

// Find finds nothing when it is up: the rig's flows never create a key twice.
// While down it fails like a push.
func (f *flakyTarget) Find(ctx context.Context, _, _ string, values []string) ([]sdk.Found, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, f.fail(ctx, len(values))
	}
	return nil, ctx.Err()
}

// fail is a call while down, for n records; f.mu is held.
func (f *flakyTarget) fail(ctx context.Context, n int) error {
	f.attempts = append(f.attempts, n)
	if f.hang {
		f.mu.Unlock()
		<-ctx.Done()
		f.mu.Lock()
		return ctx.Err()
	}
	return errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func (f *flakyTarget) Check(context.Context) error { return nil }

func (f *flakyTarget) Write(ctx context.Context, _ string, records []sdk.Write) ([]sdk.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, f.fail(ctx, len(records))
	}
	if f.perRecord > 0 {
		// A slow target: the batch is written whole, or not at all when
		// the push's time runs out first.
		select {
		case <-time.After(time.Duration(len(records)) * f.perRecord):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]sdk.Result, len(records))
	for i, r := range records {
		f.applied = append(f.applied, fmt.Sprintf("%s@%d", r.Key, r.Version))
		out[i] = sdk.Result{TargetID: r.Key}
	}
	return out, nil
}

func (f *flakyTarget) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *flakyTarget) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *flakyTarget) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *flakyTarget) state() (applied []string, attempts []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied), slices.Clone(f.attempts)
}

// rig is a connector on an embedded NATS server, with flaky targets by name
// that outlive the connector (a restarted one finds the same target).
type rig struct {
	t       *testing.T
	js      jetstream.JetStream
	cfg     bus.Config
	kv      jetstream.KeyValue
	flows   *flowconfig.Index
	reg     *sdk.Registry
	mu      sync.Mutex
	targets map[string]*flakyTarget
	// gates hold up the opening of a target: it sends on its gate when it
	// starts opening, and opens when it receives.
	gates map[string]chan struct{}
	// pollMetrics, when set, are the started connectors'.
	pollMetrics *connector.PollMetrics
}

func newRig(t *testing.T, cfg bus.Config) *rig {
	t.Helper()
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, js: js, cfg: cfg, reg: sdk.NewRegistry(), targets: map[string]*flakyTarget{}, gates: map[string]chan struct{}{}}
	err := r.reg.RegisterTarget(sdk.Spec{Type: "flaky", Kind: sdk.KindTarget, Summary: "test target",
		Reaches: func(map[string]any) ([]sdk.Destination, error) { return nil, nil },
		Entities: func(map[string]any) ([]sdk.Capabilities, error) {
			return []sdk.Capabilities{{Entity: sdk.AnyEntity, FindBy: []string{sdk.FieldExternalRef}, Create: true, Update: true, Delete: true}}, nil
		},
		Fields: []sdk.Field{{Name: "name", Type: sdk.TypeString, Required: true, Summary: "which"},
			{Name: "note", Type: sdk.TypeString, Summary: "anything, to change the settings"}}},
		func(ctx context.Context, settings map[string]any, _ sdk.Env) (sdk.Target, error) {
			name := settings["name"].(string)
			r.mu.Lock()
			gate := r.gates[name]
			r.mu.Unlock()
			if gate != nil {
				gate <- struct{}{} // entered
				select {
				case <-gate:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return r.target(name), nil
		})
	if err != nil {
		t.Fatal(err)
	}
	r.kv, err = flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := flowconfig.NewWatcher(r.kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	r.flows = w.Index()
	return r
}

func (r *rig) target(name string) *flakyTarget {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.targets[name] == nil {
		r.targets[name] = &flakyTarget{}
	}
	return r.targets[name]
}

// addFlow puts a flow of tenant acme writing to the flaky target of the
// same name, and waits until the index has it.
func (r *rig) addFlow(name string) {
	r.t.Helper()
	r.putFlow(name, 1, nil)
}

// putFlow puts generation gen of a flow, its target's settings with extra.
func (r *rig) putFlow(name string, gen int64, extra map[string]any) {
	r.t.Helper()
	settings := map[string]any{"name": name}
	maps.Copy(settings, extra)
	f := &flowconfig.Flow{Tenant: "acme", Name: name, Generation: gen, Entity: "order", Integrator: "sync",
		Source:  flowconfig.Endpoint{Name: "shop", Type: "nats"},
		Target:  flowconfig.Endpoint{Name: name, Type: "flaky", Settings: settings},
		Mapping: mapping.Spec{Fields: map[string]string{"n": "source.n"}}, Duplicates: flowconfig.DuplicateUpdate}
	b, err := flowconfig.Encode(f)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.kv.Put(context.Background(), f.Key(), b); err != nil {
		r.t.Fatal(err)
	}
	waitFor(r.t, "the index never saw flow "+name, func() bool {
		f := r.flows.Get("acme", name)
		return f != nil && f.Generation == gen && len(f.Target.Settings) == len(settings)
	})
}

func (r *rig) start(breaker connector.BreakerConfig) *connector.Service {
	r.t.Helper()
	egress, err := sdk.NewEgress(sdk.EgressConfig{})
	if err != nil {
		r.t.Fatal(err)
	}
	svc, err := connector.New(connector.Deps{JetStream: r.js, Flows: r.flows, Connectors: r.reg, Bus: r.cfg, Breaker: breaker, Egress: egress, PollMetrics: r.pollMetrics})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	return svc
}

// push publishes an event of flow onto the push stream, as the dedup stage
// does.
func (r *rig) push(flow, key string, version int64) {
	r.t.Helper()
	e := &eventv1.Envelope{SchemaVersion: envelope.SchemaVersion, EventId: envelope.NewEventID(), Tenant: "acme", Integrator: "sync",
		SourceEndpoint: "shop", Flow: flow, Entity: "order", Operation: eventv1.Operation_OPERATION_UPSERT,
		SourceKey: key, SourceVersion: version, Payload: []byte(`{"n":1}`),
		Result: &eventv1.Result{Stage: "dedup", Action: eventv1.Action_ACTION_UPDATED}}
	data, err := envelope.Encode(e)
	if err != nil {
		r.t.Fatal(err)
	}
	m := nats.NewMsg(bus.PushSubject("acme", flow, bus.Partition(key, r.cfg.Partitions)))
	m.Header.Set(bus.HeaderMsgID, stage.MsgID(e))
	m.Data = data
	if err := bus.NewPublisher(r.js).Publish(context.Background(), m); err != nil {
		r.t.Fatal(err)
	}
}

// notices returns the flow notices on the audit stream, oldest first.
func (r *rig) notices() []*stage.FlowNotice {
	r.t.Helper()
	ctx := context.Background()
	st, err := r.js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []*stage.FlowNotice
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("audit.>"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			r.t.Fatal(err)
		}
		seq = m.Sequence + 1
		events, err := bus.Unframe(m.Header, m.Data)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, e := range events {
			if kind := e.Header.Get(stage.HeaderNotice); kind != "" {
				n, err := stage.ParseNotice(kind, e.Data)
				if err != nil {
					r.t.Fatal(err)
				}
				out = append(out, n)
			}
		}
	}
}

// count returns how many messages a stream holds under subject.
func (r *rig) count(stream, subject string) uint64 {
	r.t.Helper()
	st, err := r.js.Stream(context.Background(), stream)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		r.t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDownTargetPausesOnlyItsFlow: in one partition, a flow whose target is
// down is paused: its events are held in order, nothing is dead-lettered,
// and the other flow's events, published among them, go through while it
// is down. After a few failed probes (of one event each) the tenant is told
// the flow is paused; once the target is back, the held events are pushed
// in the order they were published, the tenant is told it resumed, and the
// hold stream is empty again.
func TestDownTargetPausesOnlyItsFlow(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	r := newRig(t, cfg)
	r.addFlow("down")
	r.addFlow("up")
	r.target("down").setDown(true)
	r.start(connector.BreakerConfig{Cooldown: 20 * time.Millisecond, MaxCooldown: 100 * time.Millisecond, PauseAfter: 3})

	var want []string
	for i := range 30 {
		key := fmt.Sprintf("d%d", i%10)
		version := int64(i/10 + 1)
		r.push("down", key, version)
		want = append(want, fmt.Sprintf("%s@%d", key, version))
		r.push("up", fmt.Sprintf("u%d", i), 1)
	}
	// With the old behaviour the up flow's events would wait behind the
	// down flow's retries, and those would end dead-lettered.
	waitFor(t, "the up flow's events did not all go through while the other flow's target was down", func() bool {
		applied, _ := r.target("up").state()
		return len(applied) == 30
	})
	waitFor(t, "no notice that the flow is paused", func() bool { return len(r.notices()) > 0 })
	n := r.notices()[0]
	if n.Kind != stage.NoticeFlowPaused || n.Tenant != "acme" || n.Flow != "down" || n.Endpoint != "down" || n.Integrator != "sync" ||
		n.Failures != 3 || !strings.Contains(n.Reason, "connection refused") {
		t.Errorf("pause notice %+v, want flow_paused of acme/down after 3 failures, with the target's error", n)
	}
	if applied, _ := r.target("down").state(); len(applied) != 0 {
		t.Fatalf("a down target was written: %v", applied)
	}
	if held := r.count(bus.StreamHold, "hold.acme.down.0"); held != 30 {
		t.Errorf("%d events held, want all 30 of the down flow", held)
	}

	r.target("down").setDown(false)
	waitFor(t, "the held events never reached the target once it was back", func() bool {
		applied, _ := r.target("down").state()
		return len(applied) >= len(want)
	})
	applied, attempts := r.target("down").state()
	if !slices.Equal(applied, want) {
		t.Errorf("held events applied as\n%v\nwant the order they were published in\n%v", applied, want)
	}
	// The first attempt was the batch; each probe after it tries one event.
	for i, n := range attempts[1:] {
		if n != 1 {
			t.Errorf("probe %d pushed %d records, want 1", i+1, n)
		}
	}
	waitFor(t, "no notice that the flow resumed", func() bool { return len(r.notices()) == 2 })
	if n := r.notices()[1]; n.Kind != stage.NoticeFlowResumed || n.Flow != "down" || n.Failures < 3 {
		t.Errorf("resume notice %+v, want flow_resumed of acme/down", n)
	}
	waitFor(t, "released events are still in the hold stream", func() bool { return r.count(bus.StreamHold, "hold.>") == 0 })
	if dead := r.count(bus.StreamDeadLetter, "dlq.>"); dead != 0 {
		t.Errorf("%d dead letters; a down target's events are held, not dead-lettered", dead)
	}
	// New events of the flow go straight through again.
	r.push("down", "d0", 9)
	waitFor(t, "a new event after the resume never arrived", func() bool {
		applied, _ := r.target("down").state()
		return len(applied) == len(want)+1 && applied[len(want)] == "d0@9"
	})
}

// TestHeldEventsSurviveARestart: events held by one connector are released
// by the next one to run the partition, before the flow's newer events.
func TestHeldEventsSurviveARestart(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	r := newRig(t, cfg)
	r.addFlow("erp")
	r.target("erp").setDown(true)
	breaker := connector.BreakerConfig{Cooldown: time.Hour}
	first := r.start(breaker)
	r.push("erp", "k1", 1)
	r.push("erp", "k2", 1)
	waitFor(t, "the events were never held", func() bool { return r.count(bus.StreamHold, "hold.acme.erp.0") == 2 })
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	r.target("erp").setDown(false)
	r.push("erp", "k1", 2)
	r.start(breaker)
	waitFor(t, "the held events never went through after the restart", func() bool {
		applied, _ := r.target("erp").state()
		return len(applied) == 3
	})
	if applied, _ := r.target("erp").state(); !slices.Equal(applied, []string{"k1@1", "k2@1", "k1@2"}) {
		t.Errorf("applied %v, want the held events first, then the newer one", applied)
	}
	// The process that paused the flow is gone; the one that released its
	// events tells the tenant it resumed.
	waitFor(t, "no notice that the flow resumed after the restart", func() bool {
		ns := r.notices()
		return len(ns) == 1 && ns[0].Kind == stage.NoticeFlowResumed && ns[0].Flow == "erp" && !ns[0].Since.IsZero()
	})
}

// TestHeldEventsOfADeletedFlowAreDeadLettered: a flow deleted while its
// events are held has them dead-lettered with the reason, not lost.
func TestHeldEventsOfADeletedFlowAreDeadLettered(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	r := newRig(t, cfg)
	r.addFlow("erp")
	r.target("erp").setDown(true)
	r.start(connector.BreakerConfig{Cooldown: time.Hour})
	r.push("erp", "k1", 1)
	r.push("erp", "k2", 1)
	waitFor(t, "the events were never held", func() bool { return r.count(bus.StreamHold, "hold.acme.erp.0") == 2 })
	if err := r.kv.Delete(context.Background(), flowconfig.Key("acme", "erp")); err != nil {
		t.Fatal(err)
	}
	// The dead letters are stored first and the hold is emptied after
	// them, so a crash in between dead-letters them again (stored once), never
	// loses them: wait for both.
	waitFor(t, "the held events of the deleted flow were never dead-lettered and removed from the hold", func() bool {
		return r.count(bus.StreamDeadLetter, "dlq.acme.connector.*") == 2 && r.count(bus.StreamHold, "hold.>") == 0
	})
	st, err := r.js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(context.Background(), 1, jetstream.WithGetMsgSubject("dlq.>"))
	if err != nil {
		t.Fatal(err)
	}
	if code, subject := m.Header.Get(bus.HeaderDeadCode), m.Header.Get(bus.HeaderDeadSubject); code != stage.CodeFlowGone || subject != "push.acme.erp.0" {
		t.Errorf("dead letter with code %q from %q, want %q from the push subject", code, subject, stage.CodeFlowGone)
	}
}

// TestHangingTargetIsPaused: a target that never answers fails its push
// when the push's time is up (half the ack wait), and the flow is paused
// like one whose target refuses the connection.
func TestHangingTargetIsPaused(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	cfg.AckWait = 2 * time.Second
	r := newRig(t, cfg)
	r.addFlow("hang")
	r.addFlow("up")
	hang := r.target("hang")
	hang.mu.Lock()
	hang.down, hang.hang = true, true
	hang.mu.Unlock()
	r.start(connector.BreakerConfig{Cooldown: time.Hour})
	r.push("hang", "h1", 1)
	r.push("up", "u1", 1)
	waitFor(t, "the other flow's event never went through", func() bool {
		applied, _ := r.target("up").state()
		return len(applied) == 1
	})
	if held := r.count(bus.StreamHold, "hold.acme.hang.0"); held != 1 {
		t.Errorf("%d events held, want the hanging target's one", held)
	}
}

// TestChangedFlowIsProbedAtOnce: once a paused flow's endpoint is changed
// (the fix, usually), the target is tried at once, not after the cool-down.
func TestChangedFlowIsProbedAtOnce(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	r := newRig(t, cfg)
	r.addFlow("erp")
	r.target("erp").setDown(true)
	r.start(connector.BreakerConfig{Cooldown: time.Hour})
	r.push("erp", "k1", 1)
	waitFor(t, "the event was never held", func() bool { return r.count(bus.StreamHold, "hold.acme.erp.0") == 1 })
	r.target("erp").setDown(false)
	// Within the hour's cool-down nothing is tried.
	time.Sleep(3 * 250 * time.Millisecond)
	if applied, _ := r.target("erp").state(); len(applied) != 0 {
		t.Fatalf("the target was tried during the cool-down: %v", applied)
	}
	// Only the endpoint's settings change: the flow's generation is not
	// what tells.
	r.putFlow("erp", 1, map[string]any{"note": "corrected"})
	waitFor(t, "the changed flow's held event never went through", func() bool {
		applied, _ := r.target("erp").state()
		return len(applied) == 1
	})
}

// TestSlowTargetGetsSmallerBatches: a target that works, but too slowly to
// write a full batch within the push's time, gets its held events in
// batches it can take, in order, instead of failing every full batch.
func TestSlowTargetGetsSmallerBatches(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	cfg.AckWait = 2 * time.Second // a push's time is 1 s
	r := newRig(t, cfg)
	r.addFlow("slow")
	slow := r.target("slow")
	slow.setDown(true)
	r.start(connector.BreakerConfig{Cooldown: 20 * time.Millisecond, MaxCooldown: 100 * time.Millisecond})
	var want []string
	for i := range 300 {
		key := fmt.Sprintf("s%d", i%50)
		r.push("slow", key, int64(i/50+1))
		want = append(want, fmt.Sprintf("%s@%d", key, i/50+1))
	}
	waitFor(t, "the events were never held", func() bool { return r.count(bus.StreamHold, "hold.acme.slow.0") == 300 })
	// Up again, but 300 records take 3 s, 500 would take 5.
	slow.mu.Lock()
	slow.down, slow.perRecord = false, 10*time.Millisecond
	slow.mu.Unlock()
	waitFor(t, "the slow target never got every held event", func() bool {
		applied, _ := slow.state()
		for _, w := range want {
			if !slices.Contains(applied, w) {
				return false
			}
		}
		return true
	})
	// A push whose time runs out part-way has written some of its records;
	// they are written again with the rest (writes are idempotent), so a
	// version may repeat, but each key's versions arrive in order and none
	// is missing.
	applied, _ := slow.state()
	last := map[string]int64{}
	for _, a := range applied {
		key, v, _ := strings.Cut(a, "@")
		version, _ := strconv.ParseInt(v, 10, 64)
		if version < last[key] {
			t.Fatalf("%s was applied after version %d of its key: %v", a, last[key], applied)
		}
		last[key] = version
	}
	for _, w := range want {
		if !slices.Contains(applied, w) {
			t.Errorf("%s was never applied", w)
		}
	}
}

// TestSimultaneousFailuresAreOne: pushes of several partitions that fail at
// the same moment count as one failure, so a blip that the first probe
// clears is not alerted.
func TestSimultaneousFailuresAreOne(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.Partitions = 4
	r := newRig(t, cfg)
	r.addFlow("erp")
	r.target("erp").setDown(true)
	r.start(connector.BreakerConfig{Cooldown: 300 * time.Millisecond, PauseAfter: 3})
	for i := range 40 {
		r.push("erp", fmt.Sprintf("k%d", i), 1)
	}
	waitFor(t, "the events were never all held", func() bool { return r.count(bus.StreamHold, "hold.acme.erp.*") == 40 })
	r.target("erp").setDown(false)
	waitFor(t, "the held events never went through", func() bool {
		applied, _ := r.target("erp").state()
		return len(applied) == 40
	})
	if ns := r.notices(); len(ns) != 0 {
		t.Errorf("notices %+v for a blip the first probe cleared", ns)
	}
}

// TestSlowOpeningTargetHoldsUpNoOneElse: while one tenant's target takes its
// time to connect, other partitions push to their targets.
func TestSlowOpeningTargetHoldsUpNoOneElse(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.Partitions = 2
	// A push's time (half of it) outlasts the test's wait, so only not
	// waiting for the slow target gets the other push through.
	cfg.AckWait = 2 * time.Minute
	r := newRig(t, cfg)
	r.addFlow("slowopen")
	r.addFlow("up")
	gate := make(chan struct{})
	r.mu.Lock()
	r.gates["slowopen"] = gate
	r.mu.Unlock()
	r.start(connector.BreakerConfig{})
	key := func(partition int) string {
		for i := 0; ; i++ {
			if k := fmt.Sprintf("k%d", i); bus.Partition(k, cfg.Partitions) == partition {
				return k
			}
		}
	}
	r.push("slowopen", key(0), 1)
	select {
	case <-gate:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow target never started opening")
	}
	r.push("up", key(1), 1)
	waitFor(t, "the other partition's push waited for the slow target to open", func() bool {
		applied, _ := r.target("up").state()
		return len(applied) == 1
	})
	gate <- struct{}{}
	waitFor(t, "the slow target's event never arrived once it opened", func() bool {
		applied, _ := r.target("slowopen").state()
		return len(applied) == 1
	})
}
