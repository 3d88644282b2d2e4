package allinone_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestCostlyMappings: a mapping whose estimated cost is too high is refused
// when applied, and one that passes the estimate but costs too much on a
// record fails that record as a mapping failure; the pipeline goes on.
// Once, a chain of nine replace calls was accepted and its first event
// killed the process.
func TestCostlyMappings(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	resources := func(note string) []*controlplanev1.Resource {
		return []*controlplanev1.Resource{
			resourceOf(t, "Tenant", "", "acme", map[string]any{}),
			resourceOf(t, "Integrator", "acme", "shop-to-erp", map[string]any{}),
			resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
			resourceOf(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP orders", "settings": map[string]any{
				"driver": e.driver, "dsn": e.endpointDSN(), "table": "orders", "create_table": true,
			}}),
			resourceOf(t, "Flow", "acme", "orders", map[string]any{
				"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "order",
				"mapping": map[string]any{"fields": map[string]any{"note": note}},
			}),
		}
	}
	_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{
		Resources: resources("source.number" + strings.Repeat(`.replace("S", "SSSSSSSSSS")`, 9)),
	})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "fields.note: estimated cost") {
		t.Fatalf("applying nine replace calls = %v, want it refused with the estimate", err)
	}
	if _, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{
		Resources: resources(`source.number.replace("S", "SSSSSSSSSS")`),
	}); err != nil {
		t.Fatalf("applying one replace call: %v", err)
	}
	big := fmt.Appendf(nil, `{"number": "%s", "status": "paid"}`, strings.Repeat("S", 200_000))
	e.publish(
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "BIG", Version: 1, Payload: big},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "GOOD", Version: 1, Payload: order(1, "paid")},
	)
	eventually(t, 30*time.Second, func() string {
		if _, ok := e.rows("orders")["GOOD"]; !ok {
			return "the event after the costly one never reached the target"
		}
		return ""
	})
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "BIG"})
		if len(recs) != 1 || recs[0].Code != "mapping_failed" || !strings.Contains(recs[0].Reason, "fields.note: cost limit exceeded") {
			return fmt.Sprintf("API log of BIG = %v, want one mapping_failed for the cost limit", recs)
		}
		return ""
	})
}
