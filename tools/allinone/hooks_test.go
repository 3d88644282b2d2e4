package allinone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	hooks "github.com/syncline/syncline/connectors/webhook"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/bus"
)

// TestWebhookReachesTheTarget: a webshop signs an order to the all-in-one
// process, which holds no token of its; the order reaches the target
// through the flow that reads the webhook endpoint. The shop sends it again
// (it never saw the answer): one event, one row, one API log record. A
// delivery signed with another secret is refused and goes nowhere.
func TestWebhookReachesTheTarget(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: filepath.Join(dir, "erp.db")})
	const secret = "whsec-shop-0123456789abcdef0123"
	// Settings the connector refuses are refused when they are applied.
	_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "webhook", "description": "webshop order hooks",
			"settings":    map[string]any{"max_body_bytes": 64 << 20},
			"credentials": map[string]any{"secret": secret}}),
	}})
	if err == nil || !strings.Contains(err.Error(), "settings.max_body_bytes: 67108864 is outside 1 to 8388608") || strings.Contains(err.Error(), secret) {
		t.Fatalf("applying a webhook endpoint with a 64 MiB body limit = %v, want it refused naming settings.max_body_bytes", err)
	}
	_, err = e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(t, "Tenant", "", "acme", map[string]any{}),
		resourceOf(t, "Integrator", "acme", "shop-to-erp", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "webhook", "description": "webshop order hooks",
			"settings":    map[string]any{"key_field": "number", "version_field": "version"},
			"credentials": map[string]any{"secret": secret}}),
		resourceOf(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP orders", "settings": map[string]any{
			"driver": e.driver, "dsn": e.endpointDSN(), "table": "orders", "create_table": true,
		}}),
		resourceOf(t, "Flow", "acme", "orders", map[string]any{
			"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "order", "duplicates": "update",
			"mapping": map[string]any{"fields": map[string]any{
				"order_number":   "source.number",
				"customer_email": "source.customer.email.lowerAscii()",
				"total":          "double(source.total)",
				"status":         "source.status",
			}, "defaults": map[string]any{"employee_number": 999999}},
		}),
	}})
	if err != nil {
		t.Fatalf("applying a flow from a webhook endpoint: %v", err)
	}

	body := []byte(`{"number":"SO-7","version":3,"status":"paid","total":7.5,"customer":{"email":"Buyer7@Example.com"}}`)
	send := func(key, delivery string) (int, map[string]any) {
		t.Helper()
		at := time.Now().Unix()
		req, err := http.NewRequest(http.MethodPost, e.in.APIURL()+"/hooks/acme/shop/order", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Syncline-Delivery", delivery)
		req.Header.Set("X-Syncline-Timestamp", strconv.FormatInt(at, 10))
		req.Header.Set("X-Syncline-Signature", hooks.Sign([]byte(key), delivery, at, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var a map[string]any
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("answer %d %q: %v", resp.StatusCode, b, err)
		}
		return resp.StatusCode, a
	}

	if status, a := send("another-secret-0123456789abcdef", "delivery-1"); status != http.StatusUnauthorized {
		t.Fatalf("a delivery signed with another secret answered %d %v, want 401", status, a)
	}
	if n := subjectCount(t, e.js, bus.StreamIngest, "acme"); n != 0 {
		t.Fatalf("the ingest stream holds %d events of acme after a refused delivery, want 0", n)
	}
	status, first := send(secret, "delivery-1")
	if status != http.StatusOK {
		t.Fatalf("the delivery answered %d %v, want 200", status, first)
	}
	eventually(t, 30*time.Second, func() string {
		if r, ok := e.rows("orders")["SO-7"]; !ok || r.status != "paid" || r.email != "buyer7@example.com" || r.employee != 999999 || r.version != 3 {
			return fmt.Sprintf("target rows %+v, want SO-7 paid at version 3", e.rows("orders"))
		}
		return ""
	})
	status, again := send(secret, "delivery-1")
	if status != http.StatusOK || again["duplicates"] != float64(1) || fmt.Sprint(again["eventIds"]) != fmt.Sprint(first["eventIds"]) {
		t.Fatalf("the retried delivery answered %d %v, want 200 with the first's event ids %v as duplicates", status, again, first["eventIds"])
	}
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "SO-7"})
		if len(recs) != 1 || recs[0].Action != "created" || recs[0].EventId != fmt.Sprint(first["eventIds"].([]any)[0]) {
			return fmt.Sprintf("API log for SO-7: %v, want one created record of the delivery's event", recs)
		}
		return ""
	})
	if n := subjectCount(t, e.js, bus.StreamIngest, "acme"); n != 1 {
		t.Errorf("the ingest stream holds %d events of acme, want the delivery's one", n)
	}
	if rows := e.rows("orders"); len(rows) != 1 {
		t.Errorf("the target holds %d rows, want 1: %v", len(rows), rows)
	}
}
