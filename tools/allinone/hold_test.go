package allinone_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/stage"
)

func (e *env) setStage(tenant, stage string) {
	e.t.Helper()
	_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(e.t, "Integrator", tenant, "shop-to-erp", map[string]any{"stage": stage}),
	}})
	if err != nil {
		e.t.Fatalf("setting the integrator %s: %v", stage, err)
	}
	// A stage change reaches the data plane within a second.
	time.Sleep(time.Second)
}

func orderChange(key string, version int64, status string) ingest.Change {
	return ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: key, Version: version,
		Payload: fmt.Appendf(nil, `{"number":"SO-%s","status":%q,"total":%d.5,"customer":{"email":"b@example.com"}}`, key, status, version)}
}

// TestInactiveIntegratorHoldsEvents: while the integrator is inactive its
// flow's events are kept, nothing pushed or dropped; when it is active
// again they are applied in order, before newer events of the same keys.
func TestInactiveIntegratorHoldsEvents(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	e.applyOrders("acme", "orders")
	e.publish(orderChange("1", 1, "paid"))
	e.waitRows(map[string]int64{"1": 1})

	e.setStage("acme", "inactive")
	e.publish(orderChange("1", 2, "paid"), orderChange("2", 1, "paid"), orderChange("1", 3, "shipped"))
	eventually(t, 10*time.Second, func() string {
		if n := subjectCount(t, e.js, bus.StreamHold, "acme"); n != 3 {
			return fmt.Sprintf("the hold stream keeps %d events of acme, want 3", n)
		}
		return ""
	})
	if rows := e.rows("orders"); len(rows) != 1 || rows["1"].version != 1 {
		t.Fatalf("target while inactive: %v, want key 1 at version 1 only", rows)
	}
	if st := e.flowStatus("acme", "orders"); st.GetState() != "held" || st.GetWaiting() != 3 {
		t.Errorf("flow status while the integrator is inactive: %v, want held with 3 waiting", st)
	}
	if recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"}); len(recs) != 1 {
		t.Errorf("API log while inactive holds %d records, want the first event's only", len(recs))
	}

	e.setStageNoWait("acme", "active")
	// A newer event right after: it must not overtake the held ones.
	e.publish(orderChange("1", 4, "delivered"))
	e.waitRows(map[string]int64{"1": 4, "2": 1})
	if n := subjectCount(t, e.js, bus.StreamHold, "acme"); n != 0 {
		t.Errorf("the hold stream still keeps %d events after the release", n)
	}
	if st := e.flowStatus("acme", "orders"); st.GetState() != "active" || st.GetWaiting() != 0 {
		t.Errorf("flow status after the release: %v, want active with nothing waiting", st)
	}
	eventually(t, 10*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"})
		actions := map[string]int{}
		for _, r := range recs {
			actions[r.Action]++
			if r.Code == stage.CodeStaleVersion {
				return fmt.Sprintf("event %s of key %s was skipped as stale: the release lost the order", r.EventId, r.RemoteId)
			}
		}
		if actions["created"] != 2 || actions["updated"] != 3 || len(recs) != 5 {
			return fmt.Sprintf("log actions %v, want 2 created and 3 updated", actions)
		}
		return ""
	})
}

// TestDeletedIntegratorRefusesHeldEvents: events held for an inactive
// integrator that is then deleted are refused and logged, not pushed.
func TestDeletedIntegratorRefusesHeldEvents(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	e.applyOrders("acme", "orders")
	e.setStage("acme", "inactive")
	e.publish(orderChange("7", 1, "paid"), orderChange("8", 1, "paid"))
	eventually(t, 10*time.Second, func() string {
		if n := subjectCount(t, e.js, bus.StreamHold, "acme"); n != 2 {
			return fmt.Sprintf("the hold stream keeps %d events of acme, want 2", n)
		}
		return ""
	})
	if _, err := e.resource.DeleteResource(context.Background(), &controlplanev1.DeleteResourceRequest{Kind: "Integrator", Tenant: "acme", Name: "shop-to-erp"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"})
		if len(recs) != 2 {
			return fmt.Sprintf("%d log records, want the 2 held events refused", len(recs))
		}
		for _, r := range recs {
			if r.Code != stage.CodeIntegratorDeleted {
				return fmt.Sprintf("record of key %s: %s %s, want refused as integrator_deleted", r.RemoteId, r.Action, r.Code)
			}
		}
		return ""
	})
	if rows := e.rows("orders"); len(rows) != 0 {
		t.Errorf("events of a deleted integrator reached the target: %v", rows)
	}
	if st := e.flowStatus("acme", "orders"); st.GetState() != "stopped" {
		t.Errorf("flow status of a deleted integrator's flow: %v, want stopped", st)
	}
}

func (e *env) setStageNoWait(tenant, stage string) {
	e.t.Helper()
	_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		resourceOf(e.t, "Integrator", tenant, "shop-to-erp", map[string]any{"stage": stage}),
	}})
	if err != nil {
		e.t.Fatalf("setting the integrator %s: %v", stage, err)
	}
}

// waitRows waits until the target holds exactly these keys at these source
// versions.
func (e *env) waitRows(want map[string]int64) {
	e.t.Helper()
	eventually(e.t, 30*time.Second, func() string {
		rows := e.rows("orders")
		if len(rows) != len(want) {
			return fmt.Sprintf("target rows %v, want %v", rows, want)
		}
		for k, v := range want {
			if rows[k].version != v {
				return fmt.Sprintf("target rows %v, want %v", rows, want)
			}
		}
		return ""
	})
}
