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
	"github.com/syncline/syncline/pkg/stage"
)

// TestKeyFieldAndKeylessPolicy: a flow keyed by a source field (a global
// code) matches records by it, whatever key the event carries; a record
// without it is skipped with the reason, or exported when the flow says so.
func TestKeyFieldAndKeylessPolicy(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	flow := func(name, table, keyless string) []*controlplanev1.Resource {
		return []*controlplanev1.Resource{
			resourceOf(t, "Endpoint", "acme", "erp-"+name, map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
				"driver": "sqlite", "dsn": e.dsn, "table": table, "create_table": true}}),
			resourceOf(t, "Flow", "acme", name, map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "erp-" + name,
				"entity": "product", "duplicates": "update", "keyField": "sku", "keyless": keyless,
				"mapping": map[string]any{"fields": map[string]any{"sku": "source.?sku", "name": "source.name"}, "exclude": []any{"*"}}}),
		}
	}
	e.applyOrders("acme", "orders")
	var rs []*controlplanev1.Resource
	rs = append(rs, flow("skip", "products_skip", "skip")...)
	rs = append(rs, flow("export", "products_export", "export")...)
	if _, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatal(err)
	}
	product := func(key string, version int64, body string) ingest.Change {
		return ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "product", Key: key, Version: version, Payload: []byte(body)}
	}
	// Two events with different local keys describe one product (SKU 42).
	e.publish(
		product("shop-id-1", 1, `{"sku":"42","name":"Espresso cup"}`),
		product("shop-id-2", 2, `{"sku":"42","name":"Espresso cup, white"}`),
		product("shop-id-3", 1, `{"name":"Gift card"}`),
	)
	eventually(t, 30*time.Second, func() string {
		skip := e.column("products_skip", "name")
		if len(skip) != 1 || skip["42"] != "Espresso cup, white" {
			return fmt.Sprintf("products_skip = %v, want SKU 42 only, at its second name", skip)
		}
		export := e.column("products_export", "name")
		if len(export) != 2 || export["42"] != "Espresso cup, white" {
			return fmt.Sprintf("products_export = %v, want SKU 42 and the keyless gift card", export)
		}
		for k, v := range export {
			if k != "42" && (!strings.HasPrefix(k, "keyless-") || v != "Gift card") {
				return fmt.Sprintf("keyless record exported as %s = %s", k, v)
			}
		}
		return ""
	})
	// The two events of SKU 42 were published under different keys, so
	// the mapper may map them in different partitions, in either order:
	// when the second comes first, the first is skipped as stale.
	eventually(t, 10*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "skip", Status: "success", Action: "skipped"})
		noKey := 0
		for _, r := range recs {
			switch {
			case r.Code == stage.CodeNoKey && strings.Contains(r.Reason, "has no sku"):
				noKey++
			case r.Code == stage.CodeStaleVersion && r.TargetId == "42":
			default:
				return fmt.Sprintf("flow skip skipped %v, want only the gift card (no sku) and at most the older event of SKU 42 (stale)", r)
			}
		}
		if noKey != 1 {
			return fmt.Sprintf("skipped records of flow skip: %v, want the gift card skipped once for having no sku", recs)
		}
		return ""
	})

	// A delete carries its record, so it finds the row by the key field;
	// a delete without one is skipped, saying why.
	del := product("shop-id-9", 3, `{"sku":"42","name":"Espresso cup, white"}`)
	del.Delete = true
	bare := ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "product", Key: "shop-id-8", Version: 3, Delete: true}
	e.publish(del, bare)
	eventually(t, 30*time.Second, func() string {
		if skip := e.column("products_skip", "name"); len(skip) != 0 {
			return fmt.Sprintf("products_skip after deleting SKU 42 = %v, want empty", skip)
		}
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "skip", RemoteId: "shop-id-8"})
		if len(recs) != 1 || recs[0].Code != stage.CodeNoKey || !strings.Contains(recs[0].Reason, "send the deleted record") {
			return fmt.Sprintf("log of the delete without its record: %v, want it skipped as no_key", recs)
		}
		return ""
	})
}

// column reads a column of a SQLite target table by key (external_ref).
func (e *env) column(table, col string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	rows, err := openSQLite(e.t, e.dsn).Query("SELECT external_ref, " + col + " FROM " + table)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			e.t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
