package allinone_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/ingest"
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

	const n = 4000
	for from := 0; from < n; from += 500 {
		changes := make([]ingest.Change, 0, 500)
		for i := from; i < from+500; i++ {
			changes = append(changes, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: strconv.Itoa(i), Version: 1, Payload: order(i, "paid")})
		}
		a.publish(changes...)
	}
	eventually(t, 60*time.Second, func() string {
		if c := len(b.rows("orders")); c < n/4 {
			return fmt.Sprintf("%d rows before the hand-over", c)
		}
		return ""
	})
	a.stop()

	eventually(t, 120*time.Second, func() string {
		if c := len(b.rows("orders")); c != n {
			return fmt.Sprintf("the target has %d rows, want %d", c, n)
		}
		return ""
	})
	b.waitCreatedOnly(n)
}
