package allinone_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestMappingChangeUnderLoad changes a flow's mapping while events stream
// in: every event is mapped by exactly one version, in each of the mapper's
// partitions the events mapped by the old one all come before those mapped
// by the new one (the partitions map side by side, each switching when it
// next maps), and every event published a second after the change gets the
// new one. Nothing restarts.
func TestMappingChangeUnderLoad(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	apply := func(version string) {
		t.Helper()
		_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
			resourceOf(t, "Flow", "acme", "orders", map[string]any{
				"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "order",
				"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number", "mapped_by": "'" + version + "'"}, "exclude": []any{"*"}},
			}),
		}})
		if err != nil {
			t.Fatalf("applying mapping %s: %v", version, err)
		}
	}
	e.applyOrders("acme", "orders") // the tenant, endpoints and integrator
	apply("v1")

	const n, batch = 6000, 100
	var published atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for from := 0; from < n; from += batch {
			changes := make([]ingest.Change, 0, batch)
			for i := from; i < from+batch; i++ {
				changes = append(changes, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: strconv.Itoa(i), Version: 1, Payload: order(i, "paid")})
			}
			if _, err := e.pub.Publish(context.Background(), changes...); err != nil {
				t.Errorf("publishing: %v", err)
				return
			}
			published.Store(int64(from + batch))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	for published.Load() < n/6 {
		time.Sleep(5 * time.Millisecond)
	}
	apply("v2")
	time.Sleep(time.Second)
	surelyNew := published.Load() // published a second after the change
	<-done
	if surelyNew >= n {
		t.Fatalf("all %d events were published within a second of the change; the test needs a slower stream", n)
	}

	var labels map[string]string
	eventually(t, 60*time.Second, func() string {
		labels = e.column("orders", "mapped_by")
		if len(labels) != n {
			return fmt.Sprintf("%d of %d events in the target", len(labels), n)
		}
		return ""
	})
	partitions := ingestPartitions(t, e, n)
	switchAt := map[string]int{}
	first, last := n, -1
	for i := range n {
		p := partitions[strconv.Itoa(i)]
		at, switched := switchAt[p]
		switch l := labels[strconv.Itoa(i)]; {
		case l == "v2" && !switched:
			switchAt[p] = i
			first, last = min(first, i), max(last, i)
		case l == "v1" && switched:
			t.Fatalf("event %d was mapped by v1 after event %d of its partition (%s) was mapped by v2", i, at, p)
		case l != "v1" && l != "v2":
			t.Fatalf("event %d was mapped by %q", i, l)
		}
	}
	if first <= 0 || int64(last) > surelyNew {
		t.Errorf("the partitions switched to v2 at events %v: want some events on v1 and every event from %d (published a second after the change) on v2", switchAt, surelyNew)
	}
	t.Logf("the partitions switched to v2 at events %v; the change was applied after event %d was published", switchAt, n/6)
}

// ingestPartitions reads the ingest stream: the partition each of the n
// events (keys 0 to n-1) was stored in.
func ingestPartitions(t *testing.T, e *env, n int) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := e.js.OrderedConsumer(ctx, bus.StreamIngest, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for len(out) < n {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading the ingest stream after %d events: %v", len(out), err)
		}
		ev, err := envelope.Decode(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out[ev.SourceKey] = m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:]
	}
	return out
}
