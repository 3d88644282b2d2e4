package allinone_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/pgtest"
)

// TestReplicasShareAndHandOver runs two instances as replicas of every
// service — one NATS server, one PostgreSQL database — so they share the
// consumers; one stops while events are in flight, the other takes over,
// and every event reaches the target once in effect.
func TestReplicasShareAndHandOver(t *testing.T) {
	s := natstest.Run(t)
	store := pgtest.NewDatabase(t)
	dir := t.TempDir()
	o := options{natsURL: s.ClientURL(), replicated: true, storeURL: store, driver: "postgres", dsn: pgtest.NewDatabase(t)}
	oa, ob := o, o
	oa.dir, ob.dir = dir+"/a", dir+"/b"
	a := start(t, oa)
	b := start(t, ob)
	a.applyOrders("acme", "orders")

	const n = 20000
	a.publishOrders(n)
	// Both replicas do part of the work before one of them stops.
	eventually(t, 60*time.Second, func() string {
		fa, fb := finished(t, a, "connector"), finished(t, b, "connector")
		if fa == 0 || fb == 0 {
			return fmt.Sprintf("connector messages finished: %v by one replica, %v by the other; want both working", fa, fb)
		}
		return ""
	})
	if c := len(b.rows("orders")); c == n {
		t.Fatalf("all %d rows were written before the hand-over: nothing was in flight", n)
	}
	a.stop()

	eventually(t, 120*time.Second, func() string {
		if c := len(b.rows("orders")); c != n {
			return fmt.Sprintf("the target has %d rows, want %d", c, n)
		}
		return ""
	})
	b.waitCreatedOnly(n)
}

// consumerFamilies are the partitioned consumers of every stage, by the
// prefix of their names (the partition follows it).
var consumerFamilies = []string{"mapper-p", "dedup-p", "dedup-confirm-p", "dedup-failures-p", "connector-p", "eventlog-audit-p", "eventlog-dlq-p"}

// running returns the consumers an instance runs now, from its
// syncline_stage_consumer_running gauges.
func running(t *testing.T, e *env) map[string]bool {
	t.Helper()
	mfs, err := e.in.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "syncline_stage_consumer_running" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "consumer" && m.GetGauge().GetValue() == 1 {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}

// shares counts, per family, how many of its consumers each instance runs.
func shares(t *testing.T, es []*env) map[string][]int {
	out := map[string][]int{}
	for _, f := range consumerFamilies {
		out[f] = make([]int, len(es))
	}
	for i, e := range es {
		for c := range running(t, e) {
			for _, f := range consumerFamilies {
				rest, ok := strings.CutPrefix(c, f)
				if _, err := strconv.Atoi(rest); ok && err == nil {
					out[f][i]++
				}
			}
		}
	}
	return out
}

// TestThreeReplicasShareEveryStage runs three instances as replicas of every
// service over six partitions: each runs two partitions of every stage —
// the mapper, dedup (decisions, confirmations, failed pushes), the
// connector and the eventlog (API log, dead letters). One stops while events are in flight; its share moves to the
// other two (three each), no partition is ever run by two replicas at once,
// the mapper reads every event exactly once, and every event reaches the
// target once.
func TestThreeReplicasShareEveryStage(t *testing.T) {
	s := natstest.Run(t)
	dir := t.TempDir()
	o := options{natsURL: s.ClientURL(), replicated: true, storeURL: pgtest.NewDatabase(t), driver: "postgres", dsn: pgtest.NewDatabase(t), partitions: 6}
	var es []*env
	for _, name := range []string{"a", "b", "c"} {
		oi := o
		oi.dir = dir + "/" + name
		es = append(es, start(t, oi))
	}
	a, c := es[0], es[2]
	a.applyOrders("acme", "orders")
	even := func(want []int, among []*env) func() string {
		return func() string {
			for f, got := range shares(t, among) {
				if !slices.Equal(got, want) {
					return fmt.Sprintf("%s partitions run per replica: %v, want %v", f, got, want)
				}
			}
			return ""
		}
	}
	eventually(t, 60*time.Second, even([]int{2, 2, 2}, es))

	// A sampler checks, all the while, that no consumer runs in two
	// replicas. The instances are read one after the other, so a hand-over
	// between two reads could look like an overlap: one is reported only
	// when a second pass, in the reverse order, sees it too.
	stop := make(chan struct{})
	overlaps := make(chan string, 1)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// A stopped instance's gauges stay readable, all at 0.
			pass := func(order []*env) map[string]int {
				n := map[string]int{}
				for _, e := range order {
					for consumer := range running(t, e) {
						n[consumer]++
					}
				}
				return n
			}
			first := pass(es)
			second := pass([]*env{es[2], es[1], es[0]})
			for consumer, n := range first {
				if n > 1 && second[consumer] > 1 {
					select {
					case overlaps <- fmt.Sprintf("consumer %s ran in %d replicas at once", consumer, n):
					default:
					}
				}
			}
		}
	})

	const n = 6000
	a.publishOrders(n)
	eventually(t, 60*time.Second, func() string {
		if f := finished(t, c, "connector"); f == 0 {
			return "the third replica has not pushed anything yet"
		}
		return ""
	})
	if rows := len(a.rows("orders")); rows == n {
		t.Fatalf("all %d rows were written before the third replica stopped: nothing was in flight", n)
	}
	c.stop()
	eventually(t, 60*time.Second, even([]int{3, 3}, es[:2]))
	eventually(t, 120*time.Second, func() string {
		if rows := len(a.rows("orders")); rows != n {
			return fmt.Sprintf("the target has %d rows, want %d", rows, n)
		}
		return ""
	})
	a.waitCreatedOnly(n)
	close(stop)
	sampler.Wait()
	select {
	case o := <-overlaps:
		t.Fatal(o)
	default:
	}
	// Ingest events are one message each: read once, the mapper's
	// replicas finished exactly n between them.
	if total := finished(t, es[0], "mapper") + finished(t, es[1], "mapper") + finished(t, es[2], "mapper"); total != n {
		t.Fatalf("the mapper's replicas finished %v ingest events between them, want %d: some were read twice", total, n)
	}
}
