package flowconfig_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
)

func TestWatcherFollowsTheBucket(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	put := func(f *flowconfig.Flow) {
		t.Helper()
		b, err := flowconfig.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, f.Key(), b); err != nil {
			t.Fatal(err)
		}
	}
	orders := &flowconfig.Flow{Tenant: "acme", Name: "orders", Generation: 1, Entity: "order",
		Source: flowconfig.Endpoint{Name: "shop"}, Target: flowconfig.Endpoint{Name: "erp"},
		Mapping: mapping.Spec{Fields: map[string]string{"n": "source.n"}}}
	put(orders)
	if _, err := kv.Put(ctx, flowconfig.TenantKey("acme"), []byte("{}")); err != nil {
		t.Fatal(err)
	}

	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	x := w.Index()
	// What was in the bucket is loaded before Start returns.
	if f := x.Get("acme", "orders"); f == nil || f.Generation != 1 {
		t.Fatalf("after Start, Get = %+v, want generation 1", f)
	}
	if m := x.Match("acme", "shop", "order"); len(m) != 1 || !x.KnowsTenant("acme") || x.KnowsTenant("other") {
		t.Fatalf("Match = %v, KnowsTenant(acme) = %v", m, x.KnowsTenant("acme"))
	}

	// Route says what a change would go nowhere for, and what does exist.
	if err := x.Route("acme", "shop", "order"); err != nil {
		t.Errorf("Route(acme, shop, order) = %v, want nil", err)
	}
	if err := x.Route("acme", "shop", "invoice"); !errors.Is(err, flowconfig.ErrNoFlow) || !strings.Contains(err.Error(), "its flows read order from shop") {
		t.Errorf("Route(acme, shop, invoice) = %v, want ErrNoFlow naming what the flows read", err)
	}
	if err := x.Route("other", "shop", "order"); !errors.Is(err, flowconfig.ErrUnknownTenant) {
		t.Errorf("Route(other, shop, order) = %v, want ErrUnknownTenant", err)
	}

	v := x.Version()
	orders.Generation = 2
	orders.Source.Name = "shop2"
	put(orders)
	waitFor(t, func() bool { f := x.Get("acme", "orders"); return f != nil && f.Generation == 2 })
	if x.Version() == v {
		t.Error("the index version did not change with the flow")
	}
	if len(x.Match("acme", "shop", "order")) != 0 || len(x.Match("acme", "shop2", "order")) != 1 {
		t.Error("a changed source endpoint left the old match in place")
	}

	if err := kv.Delete(ctx, orders.Key()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return x.Get("acme", "orders") == nil })
	if len(x.Flows()) != 0 || len(x.Match("acme", "shop2", "order")) != 0 {
		t.Errorf("a deleted flow is still indexed: %v", x.Flows())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("the index did not follow the bucket within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCatchUpWaitsForTheWatch: a flow stored a moment ago is in the index once
// CatchUp returns, however far behind the watch was; a current index returns
// at once.
func TestCatchUpWaitsForTheWatch(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	x := w.Index()
	// Many changes at once, so that the watch is behind when the last is stored.
	const n = 2000
	for g := range n {
		f := &flowconfig.Flow{Tenant: "acme", Name: "orders", Generation: int64(g + 1), Entity: "order",
			Source: flowconfig.Endpoint{Name: "shop"}, Target: flowconfig.Endpoint{Name: "erp"},
			Mapping: mapping.Spec{Fields: map[string]string{"n": "source.n"}}}
		b, err := flowconfig.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync("$KV."+flowconfig.Bucket+"."+f.Key(), b); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("the changes were not stored in time")
	}
	x.CatchUp(ctx)
	if f := x.Get("acme", "orders"); f == nil || f.Generation != n {
		t.Fatalf("after CatchUp, Get = %+v, want generation %d", f, n)
	}
	if x.CatchUp(ctx) {
		t.Error("CatchUp of a current index waited")
	}
}
