package connector_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/services/connector/connector"
)

// memTarget records what it was given and whether it was closed.
type memTarget struct {
	mu     sync.Mutex
	keys   []string
	closed bool
}

func (m *memTarget) Push(_ context.Context, _ string, records []sdk.Record) ([]sdk.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]sdk.Result, len(records))
	for i, r := range records {
		m.keys = append(m.keys, r.Key)
		out[i] = sdk.Result{TargetID: r.Key}
	}
	return out, nil
}

func (m *memTarget) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memTarget) state() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys), m.closed
}

// TestTargetsOfRemovedFlowsAreClosed: once no flow writes to a target, the
// connector closes it (at its next use of any target) instead of keeping its
// connections open until a restart.
func TestTargetsOfRemovedFlowsAreClosed(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	cfg := bus.DefaultConfig()
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	targets := map[string]*memTarget{}
	var mu sync.Mutex
	reg := sdk.NewRegistry()
	err := reg.RegisterTarget(sdk.Spec{Type: "mem", Kind: sdk.KindTarget, Summary: "test target",
		Fields: []sdk.Field{{Name: "name", Type: sdk.TypeString, Required: true, Summary: "which"}}},
		func(_ context.Context, settings map[string]any) (sdk.Target, error) {
			mu.Lock()
			defer mu.Unlock()
			m := &memTarget{}
			targets[settings["name"].(string)] = m
			return m, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	flow := func(name, target string) *flowconfig.Flow {
		return &flowconfig.Flow{Tenant: "acme", Name: name, Generation: 1, Entity: "order",
			Source:  flowconfig.Endpoint{Name: "shop", Type: "nats"},
			Target:  flowconfig.Endpoint{Name: target, Type: "mem", Settings: map[string]any{"name": target}},
			Mapping: mapping.Spec{Fields: map[string]string{"n": "source.n"}}, Duplicates: flowconfig.DuplicateUpdate}
	}
	for _, f := range []*flowconfig.Flow{flow("a", "t1"), flow("b", "t2")} {
		b, err := flowconfig.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, f.Key(), b); err != nil {
			t.Fatal(err)
		}
	}
	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	svc, err := connector.New(connector.Deps{JetStream: js, Flows: w.Index(), Connectors: reg, Bus: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })

	push := func(flowName, key string) {
		t.Helper()
		e := &eventv1.Envelope{SchemaVersion: envelope.SchemaVersion, EventId: envelope.NewEventID(), Tenant: "acme",
			SourceEndpoint: "shop", Flow: flowName, Entity: "order", Operation: eventv1.Operation_OPERATION_UPSERT,
			SourceKey: key, SourceVersion: 1, Payload: []byte(`{"n":1}`),
			Result: &eventv1.Result{Stage: "dedup", Action: eventv1.Action_ACTION_CREATED}}
		data, err := envelope.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(bus.PushSubject("acme", flowName, bus.Partition(key, cfg.Partitions)))
		m.Header.Set(bus.HeaderMsgID, e.EventId)
		m.Data = data
		if err := bus.NewPublisher(js).Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	target := func(name string) *memTarget {
		mu.Lock()
		defer mu.Unlock()
		return targets[name]
	}
	pushed := func(name string) int {
		m := target(name)
		if m == nil {
			return 0
		}
		n, _ := m.state()
		return n
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	push("a", "k1")
	wait("flow a's record never reached target t1", func() bool { return pushed("t1") == 1 })
	if err := kv.Delete(ctx, flowconfig.Key("acme", "a")); err != nil {
		t.Fatal(err)
	}
	wait("the watcher never saw flow a go", func() bool { return w.Index().Get("acme", "a") == nil })
	push("b", "k2")
	wait("flow b's record never reached target t2", func() bool { return pushed("t2") == 1 })
	if _, closed := target("t1").state(); !closed {
		t.Error("target t1, which no flow uses any more, is still open")
	}
	if _, closed := target("t2").state(); closed {
		t.Error("target t2, which flow b uses, was closed")
	}
}
