package flowstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/flowstate"
	"github.com/syncline/syncline/pkg/natstest"
)

func hold(t *testing.T, js jetstream.JetStream, subject string, n int) {
	t.Helper()
	for range n {
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStates: a flow's state follows its integrator's stage, what waits in
// the hold stream, and what the connector told of a pause; one tenant's
// read sees nothing of another's, and a tenant's erase forgets its pauses.
func TestStates(t *testing.T) {
	ctx := context.Background()
	_, js := natstest.Connect(t, natstest.Run(t))
	flows := []flowstate.Flow{
		{Tenant: "acme", Name: "orders", IntegratorStage: "active"},
		{Tenant: "acme", Name: "products", IntegratorStage: "inactive"},
		{Tenant: "acme", Name: "stock", IntegratorStage: "active"},
		{Tenant: "acme", Name: "gone", IntegratorStage: "deleted"},
	}
	// Before any data plane ran: no stream, no bucket, everything active.
	got, err := flowstate.Read(ctx, js, "acme", flows[:1])
	if err != nil || got[0].State != flowstate.Active || got[0].Waiting != 0 {
		t.Fatalf("state without a hold stream: %+v, %v; want active", got, err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	hold(t, js, bus.HoldSubject("acme", "products", 0), 1)
	hold(t, js, bus.LegacyHoldSubject("acme", "products"), 1)
	hold(t, js, bus.PausedSubject("acme", "stock", 0), 3)
	hold(t, js, bus.PausedSubject("acme", "stock", 1), 1)
	hold(t, js, bus.PausedSubject("globex", "stock", 0), 5)

	// Paused, but the connector has not told yet.
	got, err = flowstate.Read(ctx, js, "acme", flows)
	if err != nil {
		t.Fatal(err)
	}
	want := []flowstate.State{
		{State: flowstate.Active},
		{State: flowstate.Held, Waiting: 2},
		{State: flowstate.Paused, Waiting: 4},
		{State: flowstate.Stopped},
	}
	for i := range want {
		if got[i].State != want[i].State || got[i].Waiting != want[i].Waiting || got[i].Pause != nil {
			t.Errorf("flow %s: %+v, want %+v", flows[i].Name, got[i], want[i])
		}
	}

	w := flowstate.NewWriter(js, 1)
	since := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := w.Paused(ctx, "acme", "stock", flowstate.Pause{LastError: "connection refused", Since: since, Failures: 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.Paused(ctx, "globex", "stock", flowstate.Pause{LastError: "globex's", Since: since, Failures: 9}); err != nil {
		t.Fatal(err)
	}
	got, err = flowstate.Read(ctx, js, "acme", flows[2:3])
	if err != nil {
		t.Fatal(err)
	}
	if p := got[0].Pause; p == nil || p.LastError != "connection refused" || !p.Since.Equal(since) || p.Failures != 3 {
		t.Errorf("pause of acme's stock flow: %+v, want the connector's word", got[0].Pause)
	}

	// Resumed: the connector's word goes; what waits still says paused
	// until it is released.
	if err := w.Resumed(ctx, "acme", "stock"); err != nil {
		t.Fatal(err)
	}
	if err := w.Resumed(ctx, "acme", "never-paused"); err != nil {
		t.Errorf("resuming a flow that never paused: %v", err)
	}
	got, err = flowstate.Read(ctx, js, "acme", flows[2:3])
	if err != nil || got[0].Pause != nil {
		t.Errorf("pause after the resume: %+v, %v; want none", got, err)
	}

	if err := flowstate.Forget(ctx, js, "globex"); err != nil {
		t.Fatal(err)
	}
	got, err = flowstate.Read(ctx, js, "", []flowstate.Flow{{Tenant: "globex", Name: "stock", IntegratorStage: "active"}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].State != flowstate.Paused || got[0].Waiting != 5 || got[0].Pause != nil {
		t.Errorf("globex's stock flow after its pause was forgotten: %+v, want paused with 5 waiting and no pause details", got[0])
	}
}

// TestWriterRecreatesTheBucket: a bucket lost with a NATS server's state is
// made again by the next write.
func TestWriterRecreatesTheBucket(t *testing.T) {
	ctx := context.Background()
	_, js := natstest.Connect(t, natstest.Run(t))
	w := flowstate.NewWriter(js, 1)
	if err := w.Paused(ctx, "acme", "orders", flowstate.Pause{LastError: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, flowstate.Bucket); err != nil {
		t.Fatal(err)
	}
	if err := w.Paused(ctx, "acme", "orders", flowstate.Pause{LastError: "second"}); err != nil {
		t.Fatalf("writing after the bucket was lost: %v", err)
	}
	kv, err := js.KeyValue(ctx, flowstate.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "acme.orders"); err != nil {
		t.Errorf("the pause written after the loss: %v", err)
	}
}
