package dedup

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/services/dedup/ledger"
)

// writes records the keys of each Insert and Put, in order.
type writes struct {
	ledger.Store
	mu    sync.Mutex
	calls []call
}

type call struct {
	op      string
	entries []ledger.Entry
}

func (w *writes) Insert(ctx context.Context, es []ledger.Entry) error {
	w.mu.Lock()
	w.calls = append(w.calls, call{"insert", slices.Clone(es)})
	w.mu.Unlock()
	return w.Store.Insert(ctx, es)
}

func (w *writes) Put(ctx context.Context, es []ledger.Entry) error {
	w.mu.Lock()
	w.calls = append(w.calls, call{"put", slices.Clone(es)})
	w.mu.Unlock()
	return w.Store.Put(ctx, es)
}

// TestABatchWritesEachKeyOnce: a batch that decides a key more than once (a new order and
// its delete, one after the other) writes the key's entry once, as its last decision: a
// new key is inserted as it ends the batch. Were it inserted at its first decision and put
// at its last, the target's answer to the last push, coming between the two writes, would
// find the first entry and be given up, and the entry would stay pending.
func TestABatchWritesEachKeyOnce(t *testing.T) {
	ctx := context.Background()
	_, js := natstest.Connect(t, natstest.Run(t))
	cfg := bus.DefaultConfig()
	cfg.Partitions = 1
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := &flowconfig.Flow{Tenant: "acme", Name: "orders", Generation: 1, Entity: "order", Integrator: "sync",
		Source: flowconfig.Endpoint{Name: "shop", Type: "nats"}, Target: flowconfig.Endpoint{Name: "erp", Type: "sql"},
		Mapping: mapping.Spec{Fields: map[string]string{"n": "source.n"}}, Duplicates: flowconfig.DuplicateUpdate, Stage: flowconfig.StageActive}
	b, err := flowconfig.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, f.Key(), b); err != nil {
		t.Fatal(err)
	}
	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	store, err := ledger.New(ctx, sqlstoretest.OpenSQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := &writes{Store: store}
	s, err := New(Deps{JetStream: js, Flows: w.Index(), Ledger: rec, Bus: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	// Two new keys decided twice each, and a known key decided twice.
	if err := store.Put(ctx, []ledger.Entry{{Key: ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: "K0"}, ContentHash: "old",
		SourceVersion: 1, State: ledger.StateApplied, LastEventID: "ev-K0-old", LastAction: "created", TargetID: "K0"}}); err != nil {
		t.Fatal(err)
	}
	events := []struct {
		key     string
		version int64
		del     bool
		hash    string
	}{{"K1", 3, false, "a"}, {"K0", 2, false, "b"}, {"K2", 5, false, "c"}, {"K1", 4, true, ""}, {"K0", 3, false, "d"}, {"K2", 6, false, "e"}}
	pub := bus.NewPublisher(js)
	for _, ev := range events {
		e := &eventv1.Envelope{SchemaVersion: envelope.SchemaVersion, EventId: envelope.NewEventID(), Tenant: "acme", Integrator: "sync",
			SourceEndpoint: "shop", Flow: "orders", Entity: "order", Operation: eventv1.Operation_OPERATION_UPSERT,
			SourceKey: ev.key, SourceVersion: ev.version, Payload: []byte(`{"n":1}`),
			Result: &eventv1.Result{Stage: stage.Mapper, Action: eventv1.Action_ACTION_UPDATED, ContentHash: ev.hash}}
		if ev.del {
			e.Operation, e.Payload = eventv1.Operation_OPERATION_DELETE, nil
		}
		data, err := envelope.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(bus.FlowSubject("acme", "orders", 0))
		m.Header.Set(bus.HeaderMsgID, stage.MsgID(e))
		m.Data = data
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	c, err := js.CreateOrUpdateConsumer(ctx, bus.StreamFlow, jetstream.ConsumerConfig{Durable: "batch-test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := c.Fetch(len(events), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != len(events) {
		t.Fatalf("fetched %d messages, want %d", len(msgs), len(events))
	}
	if n, err := s.decideBatch(ctx, msgs); err != nil || n != len(msgs) {
		t.Fatalf("decideBatch = %d, %v", n, err)
	}

	last := map[string]string{}
	for _, m := range msgs {
		e, _ := envelope.Decode(m.Data())
		last[e.SourceKey] = e.EventId
	}
	seen := map[string]string{}
	for _, c := range rec.calls {
		for _, e := range c.entries {
			if prev, ok := seen[e.Key.SourceKey]; ok {
				t.Errorf("key %s was written twice in one batch: %s, then %s", e.Key.SourceKey, prev, c.op)
			}
			seen[e.Key.SourceKey] = c.op
			if e.LastEventID != last[e.Key.SourceKey] {
				t.Errorf("key %s was written (%s) as event %s, want its last event %s", e.Key.SourceKey, c.op, e.LastEventID, last[e.Key.SourceKey])
			}
		}
	}
	if seen["K1"] != "insert" || seen["K2"] != "insert" || seen["K0"] != "put" {
		t.Errorf("writes %v: want the new keys inserted and the known one put", seen)
	}
}
