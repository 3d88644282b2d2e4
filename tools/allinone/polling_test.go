package allinone_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
)

// polledOrder is an order as the polled shop holds it, changed at the given time.
func polledOrder(n int, status string, changed time.Time) map[string]any {
	return map[string]any{
		"id": n, "number": "SO-" + strconv.Itoa(n), "status": status, "total": float64(n) + 0.5,
		"customer":  map[string]any{"email": fmt.Sprintf("Buyer%d@Example.com", n)},
		"updatedAt": changed.UTC().Format("2006-01-02T15:04:05.000000Z"),
	}
}

// applyPolledOrders applies the orders flow with the shop as a rest endpoint polled every
// second.
func (e *env) applyPolledOrders(shopURL string) {
	e.t.Helper()
	source := map[string]any{
		"changed_field": "updatedAt", "since_param": "updatedAt_gte",
		"sort":      map[string]any{"_sort": "updatedAt,id", "_order": "asc,asc"},
		"page_size": 100,
	}
	rs := []*controlplanev1.Resource{
		resourceOf(e.t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(e.t, "Integrator", "acme", "shop-to-erp", map[string]any{}),
		resourceOf(e.t, "Endpoint", "acme", "shop", map[string]any{"type": "rest", "description": "the webshop's API, polled",
			"settings": map[string]any{"base_url": shopURL, "entities": map[string]any{
				"order": map[string]any{"path": "/orders", "source": source},
			}}}),
		resourceOf(e.t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP orders", "settings": map[string]any{
			"driver": e.driver, "dsn": e.endpointDSN(), "table": "orders", "create_table": true,
		}}),
		resourceOf(e.t, "Flow", "acme", "orders", map[string]any{
			"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "order", "duplicates": "update",
			"schedule": map[string]any{"mode": "interval", "every": "1s", "jitter": "0s"},
			"mapping": map[string]any{
				"fields": map[string]any{
					"order_number":   "source.number",
					"customer_email": "source.customer.email.lowerAscii()",
					"total":          "double(source.total)",
					"status":         "source.status",
				},
				"defaults": map[string]any{"employee_number": 999999},
			},
		}),
	}
	if _, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		e.t.Fatalf("applying the polled orders flow: %v", err)
	}
}

// TestPolledShopKilledAndRestarted polls a webshop (json-server) into a SQL table, kills
// the process with SIGKILL while a poll pages through the shop, changes orders and adds new
// ones while it is down and after it is back, and finds every order in the target once, at
// its last version, each made once (the API log has one create per order, an update per
// change read after its order was, and nothing else).
func TestPolledShopKilledAndRestarted(t *testing.T) {
	shop := shopServer(t)
	start := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	const n = 3000
	orders := make([]map[string]any, n)
	for i := range n {
		// Ten orders share each time: ties across every page boundary.
		orders[i] = polledOrder(i+1, "paid", start.Add(time.Duration(i/10)*time.Millisecond))
	}
	shop.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"orders": orders}})

	shopURL, err := url.Parse(shop.URL)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	httpAddr, natsPort := freeAddr(t), freePort(t)
	const token = "polling-test-admin-token-0123456789"
	run := devProcess(t, data, httpAddr, natsPort, token, "--egress-allow", shopURL.Host)
	first := run()
	opts := connect.WithInterceptors(auth.Bearer(token))
	e := &env{t: t, dir: data, driver: "sqlite", dsn: tenantFile(t, data, "acme", "erp.db")}
	e.resource = controlplanev1connect.NewResourceServiceClient(http.DefaultClient, "http://"+httpAddr, opts)
	e.logs = eventlogv1connect.NewLogServiceClient(http.DefaultClient, "http://"+httpAddr, opts)
	e.applyPolledOrders(shop.URL)

	eventually(t, 60*time.Second, func() string {
		if c := countRows(t, e.dsn); c < 300 {
			return fmt.Sprintf("only %d rows before the kill", c)
		}
		return ""
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	before := countRows(t, e.dsn)
	if before >= n {
		t.Fatalf("all %d rows were written before the kill: nothing was in flight", n)
	}
	t.Logf("killed with %d of %d rows written", before, n)

	// While it is down: ten orders change, and five are new.
	later := time.Now().UTC()
	for i := 1; i <= 10; i++ {
		shop.Put(t, jsonservertest.Auth{}, "orders", polledOrder(i*100, "shipped", later))
	}
	for i := n + 1; i <= n+5; i++ {
		shop.Add(t, jsonservertest.Auth{}, "orders", polledOrder(i, "paid", later))
	}
	run()
	// And once it is back: an order changes again.
	shop.Put(t, jsonservertest.Auth{}, "orders", polledOrder(200, "delivered", later.Add(time.Second)))

	eventually(t, 120*time.Second, func() string {
		rows := e.rows("orders")
		if len(rows) != n+5 {
			return fmt.Sprintf("the target has %d rows, want %d", len(rows), n+5)
		}
		if s := rows["200"].status; s != "delivered" {
			return "order 200 is " + s + ", want delivered"
		}
		return ""
	})
	rows := e.rows("orders")
	for i := 1; i <= n+5; i++ {
		want := "paid"
		switch {
		case i == 200:
			want = "delivered"
		case i%100 == 0 && i <= 1000:
			want = "shipped"
		}
		r, ok := rows[strconv.Itoa(i)]
		if !ok || r.orderNumber != "SO-"+strconv.Itoa(i) || r.status != want {
			t.Fatalf("order %d = %+v (present %v), want SO-%d %s", i, r, ok, i, want)
		}
	}
	// Every order made once; an update per change, and nothing else.
	eventually(t, 60*time.Second, func() string {
		created, updated, other := map[string]int{}, 0, map[string]int{}
		for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"}) {
			switch r.Action {
			case "created":
				created[r.RemoteId]++
			case "updated":
				updated++
			default:
				other[r.Action+" "+r.Status+" "+r.Code]++
			}
		}
		for k, c := range created {
			if c != 1 {
				return fmt.Sprintf("order %s was created %d times", k, c)
			}
		}
		// A changed order is an update when its first version was read before the
		// change, and made at its changed version when not; order 200's shipped version
		// is read only if a poll ran between its two changes.
		if len(created) != n+5 || updated > 11 || len(other) != 0 {
			return fmt.Sprintf("API log: %d orders created, %d updates, others %v; want %d created, at most 11 updated and nothing else", len(created), updated, other, n+5)
		}
		return ""
	})
}
