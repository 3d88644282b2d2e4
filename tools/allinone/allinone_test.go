package allinone_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestOrdersEndToEnd runs the walkthrough's flow on each store backend: orders
// published on the ingest stream end as rows of the target table, mapped
// and enriched, with one API log record each.
func TestOrdersEndToEnd(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			driver, dsn := b.target(t, dir)
			e := start(t, options{dir: dir, storeURL: b.storeURL(t), driver: driver, dsn: dsn})
			e.applyOrders("acme", "orders")

			const n = 50
			changes := make([]ingest.Change, n)
			for i := range changes {
				changes[i] = ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: fmt.Sprint(1000 + i), Version: 1, Payload: order(1000+i, "paid")}
			}
			ids := e.publish(changes...)

			eventually(t, 30*time.Second, func() string {
				if got := len(e.rows("orders")); got != n {
					return fmt.Sprintf("target table has %d rows, want %d", got, n)
				}
				return ""
			})
			rows := e.rows("orders")
			want := row{orderNumber: "SO-1007", email: "buyer1007@example.com", status: "paid", total: 1007.5, employee: 999999, version: 1}
			if got := rows["1007"]; got != want {
				t.Errorf("row 1007 = %+v, want %+v", got, want)
			}

			eventually(t, 30*time.Second, func() string {
				recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "success"})
				if len(recs) != n {
					return fmt.Sprintf("API log has %d success records, want %d", len(recs), n)
				}
				return ""
			})
			rec := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "1007"})
			if len(rec) != 1 {
				t.Fatalf("API log has %d records for remote id 1007, want 1", len(rec))
			}
			r := rec[0]
			if r.Action != "created" || r.Flow != "orders" || r.TargetId != "1007" || r.EventId != ids[7] || r.Entity != "order" {
				t.Errorf("log record = %+v, want created by flow orders with target id 1007 and event %s", r, ids[7])
			}
			if r.TraceId == "" || len(r.TraceId) != 32 {
				t.Errorf("log record trace id = %q, want a W3C trace id", r.TraceId)
			}
			failures := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "failure"})
			if len(failures) != 0 {
				t.Errorf("API log has failures: %+v", failures)
			}
		})
	}
}

// TestLedgerRules publishes the same event twice and three versions of one
// key out of order: one row remains, holding the newest version, and the
// API log says created, skipped, updated.
func TestLedgerRules(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			driver, dsn := b.target(t, dir)
			e := start(t, options{dir: dir, storeURL: b.storeURL(t), driver: driver, dsn: dsn})
			e.applyOrders("acme", "orders")
			waitLog := func(key string, n int) []*eventlogv1.LogRecord {
				t.Helper()
				var recs []*eventlogv1.LogRecord
				eventually(t, 30*time.Second, func() string {
					recs = e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: key})
					if len(recs) != n {
						return fmt.Sprintf("key %s has %d log records, want %d", key, n, len(recs))
					}
					return ""
				})
				return recs
			}

			// The same content again under a new event id: skipped as unchanged.
			c := ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "A", Version: 1, Payload: order(1, "paid")}
			e.publish(c)
			waitLog("A", 1)
			e.publish(c)
			recs := waitLog("A", 2)
			if recs[0].Action != "skipped" || recs[0].Code != "unchanged" || recs[1].Action != "created" {
				t.Errorf("log for A (newest first) = %s, want skipped (unchanged), created", actions(recs))
			}
			// The skip comes from the ledger alone, which knows the record's
			// target id.
			if recs[0].TargetId != "A" {
				t.Errorf("skipped record of A has target id %q, want the ledger's A", recs[0].TargetId)
			}

			// The same event id twice: JetStream stores it once, one record,
			// and the second publish says so.
			c2 := ingest.Change{EventID: "0193a5e0-0000-7000-8000-000000000001", Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "B", Version: 1, Payload: order(2, "paid")}
			e.publish(c2)
			var dup *ingest.DuplicateError
			if _, err := e.pub.Publish(context.Background(), c2); !errors.As(err, &dup) {
				t.Errorf("publishing event id %s again = %v, want a DuplicateError", c2.EventID, err)
			}
			waitLog("B", 1)

			// Versions 3, 1, 2 of key C, in that order. (The log is ordered by
			// when outcomes were recorded, and a create passes one stage more
			// than a skip, so compare by event.)
			byVersion := map[int64]string{}
			for _, v := range []int64{3, 1, 2} {
				byVersion[v] = e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "C", Version: v, Payload: order(int(100+v), "paid")})[0]
			}
			recs = waitLog("C", 3)
			byEvent := map[string]*eventlogv1.LogRecord{}
			for _, r := range recs {
				byEvent[r.EventId] = r
			}
			if r := byEvent[byVersion[3]]; r == nil || r.Action != "created" {
				t.Errorf("version 3 of C logged as %v, want created", r)
			}
			for _, v := range []int64{1, 2} {
				if r := byEvent[byVersion[v]]; r == nil || r.Action != "skipped" || r.Code != "stale_version" {
					t.Errorf("version %d of C logged as %v, want skipped (stale_version)", v, r)
				}
			}
			// A newer version updates.
			e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "C", Version: 4, Payload: order(104, "shipped")})
			recs = waitLog("C", 4)
			if recs[0].Action != "updated" {
				t.Errorf("version 4 of C logged as %s, want updated", recs[0].Action)
			}
			eventually(t, 30*time.Second, func() string {
				rows := e.rows("orders")
				if len(rows) != 3 {
					return fmt.Sprintf("target has %d rows, want 3 (A, B, C)", len(rows))
				}
				if r := rows["C"]; r.version != 4 || r.orderNumber != "SO-104" || r.status != "shipped" {
					return fmt.Sprintf("row C = %+v, want version 4 SO-104 shipped", r)
				}
				return ""
			})
		})
	}
}

func actions(recs []*eventlogv1.LogRecord) string {
	s := make([]string, len(recs))
	for i, r := range recs {
		s[i] = r.Action
	}
	return strings.Join(s, ",")
}

// TestMalformedInput sends each kind of bad input: each ends in the dead
// letter stream with its reason and as a failure in the API log, and the next
// good event still flows.
func TestMalformedInput(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	e.applyOrders("acme", "orders")
	raw := func(subject string, data []byte, id string) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Header.Set(bus.HeaderMsgID, id)
		m.Data = data
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	raw("ingest.acme.shop.order", []byte("this is not an envelope"), "bad-1")
	cases := []struct {
		name string
		c    ingest.Change
		code string
	}{
		{"unknown tenant", ingest.Change{Tenant: "nobody", Endpoint: "shop", Entity: "order", Key: "X1", Payload: order(1, "paid")}, "unknown_tenant"},
		{"unknown flow", ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "invoice", Key: "X2", Payload: []byte(`{}`)}, "no_flow"},
		{"mapping fails", ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "X3", Payload: []byte(`{"status":"paid"}`)}, "mapping_failed"},
	}
	for _, c := range cases {
		e.publish(c.c)
	}
	// A payload that is not JSON and a missing key cannot pass pkg/ingest's
	// checks, so publish those envelopes by hand, as a careless publisher in
	// another language would.
	publishEnvelope(t, e.js, "ingest.acme.shop.order", "X4", []byte(`not json`))
	publishEnvelope(t, e.js, "ingest.acme.shop.order", "", order(5, "paid"))

	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "GOOD", Version: 1, Payload: order(9, "paid")})
	eventually(t, 30*time.Second, func() string {
		if _, ok := e.rows("orders")["GOOD"]; !ok {
			return "the good event after the bad ones never reached the target"
		}
		return ""
	})

	dlq, err := e.js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"malformed_event": false, "unknown_tenant": false, "no_flow": false, "mapping_failed": false, "payload_not_json": false, "missing_key": false}
	eventually(t, 30*time.Second, func() string {
		info, err := dlq.Info(context.Background())
		if err != nil {
			return err.Error()
		}
		if info.State.Msgs < uint64(len(want)) {
			return fmt.Sprintf("dead letter stream has %d messages, want %d", info.State.Msgs, len(want))
		}
		return ""
	})
	for seq := uint64(1); seq <= uint64(len(want)); seq++ {
		m, err := dlq.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		code := m.Header.Get(bus.HeaderDeadCode)
		if m.Header.Get(bus.HeaderDeadReason) == "" {
			t.Errorf("dead letter %d (%s) has no reason", seq, code)
		}
		want[code] = true
	}
	for code, seen := range want {
		if !seen {
			t.Errorf("no dead letter with code %s", code)
		}
	}
	eventually(t, 30*time.Second, func() string {
		fails := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "failure"})
		// The undecodable message is attributed to acme by its subject.
		if len(fails) != 5 {
			return fmt.Sprintf("acme has %d failure records, want 5: %s", len(fails), codes(fails))
		}
		return ""
	})
	for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "failure"}) {
		if r.Reason == "" || r.Action != "failed" {
			t.Errorf("failure record %+v has no reason or is not failed", r)
		}
	}
	// The event for a tenant that does not exist is the admin's, read by
	// naming no tenant.
	if n := len(e.logRecords(&eventlogv1.QueryLogsRequest{Status: "failure"})); n != 1 {
		t.Errorf("the admin's log of events for no tenant has %d failure records, want 1", n)
	}
}

func codes(recs []*eventlogv1.LogRecord) string {
	s := make([]string, len(recs))
	for i, r := range recs {
		s[i] = r.Code
	}
	return strings.Join(s, ",")
}

// TestTwoInstances runs two complete instances in one process: each sees
// only its own flows, events and log.
func TestTwoInstances(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a := start(t, options{dir: dirA, driver: "sqlite", dsn: tenantFile(t, dirA, "acme", "erp.db")})
	b := start(t, options{dir: dirB, driver: "sqlite", dsn: tenantFile(t, dirB, "acme", "erp.db")})
	a.applyOrders("acme", "orders")
	b.applyOrders("acme", "orders")
	a.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "only-a", Version: 1, Payload: order(1, "paid")})
	b.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "only-b", Version: 1, Payload: order(2, "paid")})
	for _, c := range []struct {
		e          *env
		own, other string
	}{{a, "only-a", "only-b"}, {b, "only-b", "only-a"}} {
		eventually(t, 30*time.Second, func() string {
			rows := c.e.rows("orders")
			if _, ok := rows[c.own]; !ok || len(rows) != 1 {
				return fmt.Sprintf("instance target holds %v, want only %s", keys(rows), c.own)
			}
			return ""
		})
		if recs := c.e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: c.other}); len(recs) != 0 {
			t.Errorf("instance log has records of the other instance's key %s", c.other)
		}
	}
}

func keys(m map[string]row) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
