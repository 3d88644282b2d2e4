package allinone_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/tools/allinone"
)

// TestPartitionsChosenAtStart: a new deployment that leaves the partition
// count open gets the machine's default; one that already runs with a count
// keeps it when it starts again without one, so no partition's events are
// left to a consumer that no longer runs.
func TestPartitionsChosenAtStart(t *testing.T) {
	run := func(dir string, partitions int) int {
		t.Helper()
		cfg := allinone.Config{DataDir: dir, NATSPort: -1, HTTPAddr: "127.0.0.1:0", AdminToken: "test-admin-token-0123456789"}
		if partitions > 0 {
			cfg.Bus = bus.DefaultConfig()
			cfg.Bus.Partitions = partitions
		}
		in, err := allinone.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := in.Start(ctx); err != nil {
			t.Fatalf("starting: %v", err)
		}
		if err := in.Stop(ctx); err != nil {
			t.Fatalf("stopping: %v", err)
		}
		return in.Partitions()
	}

	if got, want := run(t.TempDir(), 0), allinone.DefaultPartitions(); got != want {
		t.Errorf("new deployment: %d partitions, want the default %d", got, want)
	}
	dir := t.TempDir()
	// More than DefaultPartitions ever picks, so the test tells the two apart.
	if got := run(dir, 6); got != 6 {
		t.Fatalf("explicit count: %d partitions, want 6", got)
	}
	if got := run(dir, 0); got != 6 {
		t.Errorf("restart without a count: %d partitions, want the 6 the deployment runs with", got)
	}
}

// TestPartitionsGrowWithEventsInFlight stops a deployment of two partitions
// with events on their way, and more published while it is down (stored in
// the two partitions' ingest subjects), and starts it again with five: the
// old partitions' consumers finish what they hold, new events spread over
// all five, and every event reaches the target once. Started again asking
// for fewer, it keeps the five.
func TestPartitionsGrowWithEventsInFlight(t *testing.T) {
	s := natstest.Run(t)
	dir := t.TempDir()
	o := options{natsURL: s.ClientURL(), replicated: true, storeURL: pgtest.NewDatabase(t), driver: "postgres", dsn: pgtest.NewDatabase(t), dir: dir, partitions: 2}
	e := start(t, o)
	e.applyOrders("acme", "orders")
	const n = 4000
	publish := func(from, to int) {
		for ; from < to; from += 500 {
			changes := make([]ingest.Change, 0, 500)
			for i := from; i < from+500; i++ {
				changes = append(changes, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: strconv.Itoa(i), Version: 1, Payload: order(i, "paid")})
			}
			e.publish(changes...)
		}
	}
	publish(0, n/4)
	e.stop()
	publish(n/4, n/2)
	// What was published while down is stored in the two partitions the
	// deployment ran with: the consumers of those must read it after the
	// growth, or it is stranded.
	st, err := e.js.Stream(context.Background(), bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("ingest.>"))
	if err != nil {
		t.Fatal(err)
	}
	for subject := range info.State.Subjects {
		if !strings.HasSuffix(subject, ".0") && !strings.HasSuffix(subject, ".1") {
			t.Fatalf("an event published under two partitions was stored on %s", subject)
		}
	}
	if info.State.Msgs != n/2 {
		t.Fatalf("the ingest stream holds %d events, want the %d published", info.State.Msgs, n/2)
	}

	o.partitions = 5
	e = start(t, o)
	if got := e.in.Partitions(); got != 5 {
		t.Fatalf("running with %d partitions, want 5", got)
	}
	publish(n/2, n)
	eventually(t, 120*time.Second, func() string {
		if rows := len(e.rows("orders")); rows != n {
			return fmt.Sprintf("the target has %d rows, want %d", rows, n)
		}
		return ""
	})
	e.waitCreatedOnly(n)
	for p := range 5 {
		if f := metric(t, e, "syncline_stage_consumer_running", "consumer", "mapper-p"+strconv.Itoa(p)); f != 1 {
			t.Errorf("mapper partition %d is not running", p)
		}
	}
	e.stop()

	o.partitions = 3
	e = start(t, o)
	if got := e.in.Partitions(); got != 5 {
		t.Errorf("asked for 3 partitions where 5 run: running with %d, want 5 (partitions never shrink)", got)
	}
}
