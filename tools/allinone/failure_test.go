package allinone_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestRefusedPushIsNotSkippedLater: a record the target refuses is failed,
// dead-lettered and marked failed in the ledger, so that once the cause is
// fixed the same content is pushed again instead of being skipped as
// unchanged.
func TestRefusedPushIsNotSkippedLater(t *testing.T) {
	dir := t.TempDir()
	dsn := tenantFile(t, dir, "acme", "erp.db")
	db := ordersTableWithoutTotal(t, dsn)
	e := start(t, options{dir: dir, driver: "sqlite", dsn: dsn})
	_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "sync", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		resourceOf(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
			"driver": "sqlite", "dsn": dsn, "table": "orders"}}),
		resourceOf(t, "Flow", "acme", "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order",
			"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number", "total": "double(source.total)"}, "exclude": []any{"*"}}}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "R1", Version: 1, Payload: order(1, "paid")}
	e.publish(c)
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "R1", Status: "failure"})
		if len(recs) != 1 {
			return fmt.Sprintf("%d failure records for R1", len(recs))
		}
		if recs[0].Code != "target_rejected" || !strings.Contains(recs[0].Reason, "total") {
			return fmt.Sprintf("failure record %+v does not name the missing column", recs[0])
		}
		return ""
	})

	// The cause is fixed; the source sends the same record again.
	if _, err := db.Exec(`ALTER TABLE orders ADD COLUMN total NUMERIC`); err != nil {
		t.Fatal(err)
	}
	// The ledger marks the push failed (from the connector's dead letter).
	ledgerDB, err := sql.Open("sqlite", dir+"/ledger.db")
	if err != nil {
		t.Fatal(err)
	}
	defer ledgerDB.Close()
	eventually(t, 30*time.Second, func() string {
		var state string
		if err := ledgerDB.QueryRow(`SELECT state FROM ledger_entries WHERE source_key = 'R1'`).Scan(&state); err != nil || state != "failed" {
			return fmt.Sprintf("ledger state of R1 is %q (%v), want failed", state, err)
		}
		return ""
	})
	e.publish(c)
	eventually(t, 30*time.Second, func() string {
		if _, ok := userRows(db)["R1"]; !ok {
			recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "R1"})
			return fmt.Sprintf("the fixed record never reached the target; log: %s", actions(recs))
		}
		return ""
	})
}

// userRows reads the user-made table's keys and totals.
func userRows(db *sql.DB) map[string]float64 {
	out := map[string]float64{}
	rs, err := db.Query(`SELECT external_ref, total FROM orders`)
	if err != nil {
		return out
	}
	defer rs.Close()
	for rs.Next() {
		var k string
		var v float64
		if err := rs.Scan(&k, &v); err == nil {
			out[k] = v
		}
	}
	return out
}

// ordersTableWithoutTotal makes a SQLite target file whose orders table, made
// by a user, lacks the total column the flows write: the target refuses
// their records until the column is added.
func ordersTableWithoutTotal(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE orders (external_ref TEXT PRIMARY KEY, order_number TEXT, source_version INTEGER)`); err != nil {
		t.Fatal(err)
	}
	return db
}
