package mapper_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
)

// TestEventsHeldByAnEarlierVersionAreReleased starts the partitioned mapper
// on a hold stream where an earlier version, with one consumer, held a
// flow's events under hold.<tenant>.<flow>. The flow is active again: its
// held events are mapped, oldest first, and removed from the hold stream.
func TestEventsHeldByAnEarlierVersionAreReleased(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	cfg := bus.DefaultConfig()
	cfg.Partitions = 3
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	const held = 5
	for i := range held {
		e := &eventv1.Envelope{SchemaVersion: 1, EventId: fmt.Sprintf("0190b0f0-0000-7000-8000-00000000000%d", i), Tenant: "acme", SourceEndpoint: "shop",
			Entity: "order", Operation: eventv1.Operation_OPERATION_UPSERT, SourceKey: fmt.Sprintf("SO-%d", i), SourceVersion: int64(i + 1),
			Payload: fmt.Appendf(nil, `{"number":"SO-%d"}`, i)}
		data, err := envelope.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(bus.LegacyHoldSubject("acme", "orders"))
		m.Data = data
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	run(t, js, cfg.Partitions, &flowconfig.Flow{Tenant: "acme", Name: "orders", Integrator: "shop-sync", Generation: 1, Entity: "order",
		Source: flowconfig.Endpoint{Name: "shop", Type: "nats"}, Target: flowconfig.Endpoint{Name: "erp", Type: "test"},
		Mapping: mapping.Spec{Fields: map[string]string{"number": "source.number"}}, Duplicates: flowconfig.DuplicateUpdate, Stage: flowconfig.StageActive})

	out := messages(t, js, bus.StreamFlow, held)
	versions := map[string]int64{}
	for _, m := range out {
		e, err := envelope.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		versions[e.SourceKey] = e.SourceVersion
	}
	for i := range held {
		if v := versions[fmt.Sprintf("SO-%d", i)]; v != int64(i+1) {
			t.Errorf("held event SO-%d mapped at version %d, want %d", i, v, i+1)
		}
	}
	st, err := js.Stream(ctx, bus.StreamHold)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := st.Info(ctx)
		if err == nil && info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the released events are still in the hold stream: %v, %v", info, err)
		}
	}
}
