package allinone_test

import (
	"fmt"
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
