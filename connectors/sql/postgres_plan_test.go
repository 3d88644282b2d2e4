package sql

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/pgtest"
)

// TestPostgresPlansProbeByKey: a push's statements are prepared once per
// connection and run many times while the table is small, as for a new
// target. Once the table holds tens of thousands of rows, a push of a
// large batch must still find its rows by the key's index and never scan
// the table — plans read with auto_explain, which logs the EXPLAIN of every
// statement the target runs.
func TestPostgresPlansProbeByKey(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	egress, err := connector.NewEgress(connector.EgressConfig{Allow: []string{u.Hostname()}})
	if err != nil {
		t.Fatal(err)
	}
	env := connector.Env{Tenant: "test", Egress: egress.WithTenants(func(string) connector.TenantEgress {
		return connector.TenantEgress{Folder: t.TempDir()}
	})}
	target, err := Open(ctx, Settings{Driver: DriverPostgres, DSN: dsn, Table: "orders", KeyColumn: "external_ref", CreateTable: true}, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Close() })
	// One session, so the statements warmed on the small table are the
	// ones whose plans are read.
	plans := pgtest.NewPlans(t, dsn)
	pool := plans.Pool
	st := target.store.(*postgresStore)
	st.pool.Close()
	st.pool = pool

	push := func(records []connector.Write) {
		t.Helper()
		results, err := target.Write(ctx, "order", records)
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		for i, r := range results {
			if r.Err != nil {
				t.Fatalf("record %d: %v", i, r.Err)
			}
		}
	}
	batch := func(prefix string, n int) []connector.Write {
		var rs []connector.Write
		for i := range n {
			rs = append(rs,
				connector.Write{Key: fmt.Sprintf("%s-new-%d", prefix, i), Op: connector.WriteUpdate, Version: 1, Payload: json.RawMessage(`{"total":10}`)},
				connector.Write{Key: fmt.Sprintf("SO-%d", i*97%50000), Op: connector.WriteDelete, Version: 2})
		}
		return rs
	}
	// find looks keys up, as the recipe does before creates.
	find := func(prefix string, n int) {
		t.Helper()
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("SO-%d", (i*31+len(prefix))%50000)
		}
		if _, err := target.Find(ctx, "order", connector.FieldExternalRef, keys); err != nil {
			t.Fatalf("Find: %v", err)
		}
	}
	// Small: the first pushes to a new table.
	for i := range 10 {
		find(fmt.Sprintf("w%d", i), 3)
		push(batch(fmt.Sprintf("w%d", i), 3))
	}
	// Realistic: 60,000 rows, loaded at once.
	if _, err := pool.Exec(ctx, `INSERT INTO orders (external_ref, source_version, total) SELECT 'SO-' || g, 1, g FROM generate_series(0, 59999) AS g`); err != nil {
		t.Fatal(err)
	}
	plans.Explain(t)
	find("big", 500)
	push(batch("big", 500))
	got := plans.Take()
	if !strings.Contains(got, "to_jsonb") {
		t.Fatalf("auto_explain logged no plan of the lookup:\n%s", got)
	}
	if !strings.Contains(got, "Delete on orders") {
		t.Fatalf("auto_explain logged no plan of the delete:\n%s", got)
	}
	if pgtest.Scans(got, "orders") {
		t.Errorf("a lookup or push at 60,000 rows scans the table:\n%s", got)
	}
	if !strings.Contains(got, "Index Scan using orders_pkey") && !strings.Contains(got, "Index Only Scan using orders_pkey") {
		t.Errorf("a push at 60,000 rows does not find its rows by the key's index:\n%s", got)
	}
}
