package allinone_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/services/eventlog/eventlog"
)

// TestDownTargetPausesItsFlow: a flow whose target cannot be opened is
// paused by its circuit breaker, and its tenant gets an alert saying so
// with the endpoint and the reason; the tenant's other flow goes on
// meanwhile. Nothing of the paused flow fails or is dead-lettered: once the
// target can be opened, its events arrive, the tenant is told the flow
// resumed, and the hold stream is empty again.
func TestDownTargetPausesItsFlow(t *testing.T) {
	dir := t.TempDir()
	// The ERP's file is in a folder of the tenant's folder that does not
	// exist yet: the target cannot be opened until it does.
	erpDir := filepath.Join(dir, "tenants", "acme", "erp")
	e := start(t, options{dir: dir})
	hook := newWebhook(t)
	_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		tenantWithAlerts(t, "acme", hook.srv.URL, "1s"),
		resourceOf(t, "Integrator", "acme", "sync", map[string]any{}),
		resourceOf(t, "Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		resourceOf(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
			"driver": "sqlite", "dsn": "erp/erp.db", "table": "orders", "create_table": true}}),
		resourceOf(t, "Endpoint", "acme", "pim", map[string]any{"type": "sql", "description": "PIM", "settings": map[string]any{
			"driver": "sqlite", "dsn": "pim.db", "table": "products", "create_table": true}}),
		resourceOf(t, "Flow", "acme", "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order",
			"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number"}, "exclude": []any{"*"}}}),
		resourceOf(t, "Flow", "acme", "products", map[string]any{"integrator": "sync", "source": "shop", "target": "pim", "entity": "product",
			"mapping": map[string]any{"fields": map[string]any{"sku": "source.sku", "price": "double(source.price)"}, "exclude": []any{"*"}}}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		e.publish(
			ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: fmt.Sprintf("O%d", i), Version: 1, Payload: order(i, "paid")},
			ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "product", Key: fmt.Sprintf("P%d", i), Version: 1, Payload: product(i, false)},
		)
	}
	eventually(t, 60*time.Second, func() string {
		if got := len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "products", Action: "created"})); got != n {
			return fmt.Sprintf("%d products created while the ERP is down, want %d", got, n)
		}
		return ""
	})
	var paused eventlog.FlowChange
	eventually(t, 60*time.Second, func() string {
		for _, a := range hook.got() {
			for _, c := range a.Flows {
				if c.State == eventlog.FlowPaused {
					paused = c
					return ""
				}
			}
		}
		return "no alert that the orders flow is paused"
	})
	if paused.Flow != "orders" || paused.Endpoint != "erp" || paused.Integrator != "sync" || paused.Failures < 3 ||
		!strings.Contains(paused.Reason, "erp") {
		t.Errorf("pause %+v, want the orders flow's, naming endpoint erp and why it cannot be written", paused)
	}
	if got := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "orders"}); len(got) != 0 {
		t.Errorf("the paused flow's events were logged (%s); they are held, not done", actions(got))
	}
	if v := metric(t, e, "syncline_stage_flows_paused", "stage", "connector"); v != 1 {
		t.Errorf("syncline_stage_flows_paused = %v, want 1", v)
	}
	// get flows shows the pause where a user looks: the state, the
	// target's error, since when, and how many events wait.
	eventually(t, 30*time.Second, func() string {
		st := e.flowStatus("acme", "orders")
		if st.GetState() != "paused" || st.GetWaiting() != n || !strings.Contains(st.GetLastError(), "erp") ||
			st.GetSince() == nil || st.GetFailures() < 3 {
			return fmt.Sprintf("orders flow status %v, want paused with %d waiting, the error, since when and at least 3 failures", st, n)
		}
		return ""
	})
	if st := e.flowStatus("acme", "products"); st.GetState() != "active" || st.GetWaiting() != 0 {
		t.Errorf("products flow status %v, want active with nothing waiting", st)
	}

	if err := os.Mkdir(erpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	eventually(t, 120*time.Second, func() string {
		if got := len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "orders", Action: "created"})); got != n {
			return fmt.Sprintf("%d held orders created since the ERP came back, want %d", got, n)
		}
		return ""
	})
	eventually(t, 60*time.Second, func() string {
		for _, a := range hook.got() {
			for _, c := range a.Flows {
				if c.State == eventlog.FlowResumed && c.Flow == "orders" {
					return ""
				}
			}
		}
		return "no alert that the orders flow resumed"
	})
	if got := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Status: "failure"}); len(got) != 0 {
		t.Errorf("failures logged: %s; a down target's events wait, they do not fail", actions(got))
	}
	for stream, subjects := range map[string]string{bus.StreamHold: "hold.>", bus.StreamDeadLetter: "dlq.>"} {
		st, err := e.js.Stream(context.Background(), stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subjects))
		if err != nil {
			t.Fatal(err)
		}
		if len(info.State.Subjects) != 0 {
			t.Errorf("stream %s still has %v", stream, info.State.Subjects)
		}
	}
	if v := metric(t, e, "syncline_stage_flows_paused", "stage", "connector"); v != 0 {
		t.Errorf("syncline_stage_flows_paused = %v after the resume, want 0", v)
	}
	eventually(t, 30*time.Second, func() string {
		if st := e.flowStatus("acme", "orders"); st.GetState() != "active" || st.GetWaiting() != 0 || st.GetLastError() != "" || st.GetSince() != nil {
			return fmt.Sprintf("orders flow status %v after the resume, want active with nothing waiting and no error", st)
		}
		return ""
	})
}

// flowStatus is a flow's status as get shows it, read both ways a user
// reads it (get one flow, list the tenant's flows), which must agree.
func (e *env) flowStatus(tenant, flow string) *controlplanev1.FlowStatus {
	e.t.Helper()
	get := func() *controlplanev1.FlowStatus {
		got, err := e.resource.GetResource(context.Background(), &controlplanev1.GetResourceRequest{Kind: "Flow", Tenant: tenant, Name: flow})
		if err != nil {
			e.t.Fatal(err)
		}
		return got.Resource.GetStatus()
	}
	before := get()
	list, err := e.resource.ListResources(context.Background(), &controlplanev1.ListResourcesRequest{Kind: "Flow", Tenant: tenant})
	if err != nil {
		e.t.Fatal(err)
	}
	after := get()
	// Listing and getting must agree, unless the state changed meanwhile
	// (a flow resuming as it is read).
	for _, r := range list.Resources {
		if r.GetMetadata().GetName() == flow && before.GetState() == after.GetState() && r.GetStatus().GetState() != after.GetState() {
			e.t.Errorf("flow %s is %q when listed and %q when got", flow, r.GetStatus().GetState(), after.GetState())
		}
	}
	return after
}
