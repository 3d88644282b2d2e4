package allinone_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/ingest"
)

// TestRESTTargetOnJSONServer pushes customers through the whole chain to json-server acting as
// the webshop's API, and reads them back over its own API: each lands once, a customer the shop
// already held is updated rather than doubled, a 429 with Retry-After is waited out, and a
// target answering 500 for a while pauses the flow, which then lands its record once.
func TestRESTTargetOnJSONServer(t *testing.T) {
	peer, err := jsonservertest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peer.Stop)
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil}})
	u, err := url.Parse(peer.URL)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db"), allow: []string{u.Host}})
	e.applyOrders("acme", "orders",
		resourceOf(t, "Endpoint", "acme", "shop-api", map[string]any{"type": "rest", "description": "the webshop's API", "settings": map[string]any{
			"base_url": peer.URL, "timeout": "5s", "max_requests_per_second": 50, "max_concurrency": 2,
			"entities": map[string]any{"customer": map[string]any{"path": "/customers", "ref_field": "externalRef", "lookup": map[string]any{"email": "email"}}},
		}}),
		resourceOf(t, "Flow", "acme", "customers", map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "shop-api",
			"entity": "customer", "duplicates": "update",
			"mapping": map[string]any{"fields": map[string]any{"name": "source.name", "email": "source.email"}, "exclude": []any{"*"}}}),
	)
	customer := func(key string, version int64, name string) ingest.Change {
		return ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "customer", Key: key, Version: version,
			Payload: fmt.Appendf(nil, `{"name":%q,"email":"%s@example.com"}`, name, key)}
	}
	// stored reads the shop's customers by external reference, failing on a reference held
	// twice.
	stored := func() (map[string]string, string) {
		byRef := map[string]string{}
		for _, c := range peer.Items(t, jsonservertest.Auth{}, "customers", nil) {
			ref, _ := c["externalRef"].(string)
			if _, twice := byRef[ref]; twice {
				return nil, fmt.Sprintf("the shop holds %q twice", ref)
			}
			byRef[ref], _ = c["name"].(string)
		}
		return byRef, ""
	}
	want := func(w map[string]string) func() string {
		return func() string {
			got, why := stored()
			if why != "" {
				return why
			}
			for ref, name := range w {
				if got[ref] != name {
					return fmt.Sprintf("the shop holds %v, want %v", got, w)
				}
			}
			if len(got) != len(w) {
				return fmt.Sprintf("the shop holds %v, want %v", got, w)
			}
			return ""
		}
	}

	// Someone entered c4 in the shop by hand: the flow finds it and updates it.
	peer.Add(t, jsonservertest.Auth{}, "customers", map[string]any{"name": "Dora (by hand)", "email": "c4@example.com", "externalRef": "c4"})
	e.publish(customer("c1", 1, "Ada"), customer("c2", 1, "Alan"), customer("c3", 1, "Grace"), customer("c4", 1, "Dora"))
	eventually(t, 30*time.Second, want(map[string]string{"c1": "Ada", "c2": "Alan", "c3": "Grace", "c4": "Dora"}))

	// The shop says slow down once: the change lands after the wait.
	current := peer.Items(t, jsonservertest.Auth{}, "customers", nil)
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": current},
		Trouble: jsonservertest.Trouble{Status: 429, Count: 1, RetryAfter: "1", Method: "PATCH"}})
	e.publish(customer("c1", 2, "Ada Lovelace"))
	eventually(t, 30*time.Second, want(map[string]string{"c1": "Ada Lovelace", "c2": "Alan", "c3": "Grace", "c4": "Dora"}))
	if n := metric(t, e, "syncline_budget_throttles_total", "tenant", "acme", "endpoint", "shop-api", "flow", "customers"); n != 1 {
		t.Errorf("syncline_budget_throttles_total of the customers flow = %v, want 1", n)
	}

	// The shop fails for a while: the flow pauses, then lands the record once.
	current = peer.Items(t, jsonservertest.Auth{}, "customers", nil)
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": current},
		Trouble: jsonservertest.Trouble{Status: 500, Count: 4, Method: "POST"}})
	e.publish(customer("c5", 1, "Edsger"))
	eventually(t, 30*time.Second, func() string {
		if st := e.flowStatus("acme", "customers"); st.GetState() != "paused" {
			return fmt.Sprintf("customers flow status %v, want paused while the shop answers 500", st)
		}
		return ""
	})
	eventually(t, 90*time.Second, want(map[string]string{"c1": "Ada Lovelace", "c2": "Alan", "c3": "Grace", "c4": "Dora", "c5": "Edsger"}))

	// A replayed change (a new event for a version already applied) leaves one record.
	e.publish(customer("c2", 1, "Alan"))
	eventually(t, 30*time.Second, func() string {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "customers", RemoteId: "c2"})
		if len(recs) < 2 {
			return fmt.Sprintf("the API log holds %d records of c2, want the create and the replay", len(recs))
		}
		return ""
	})
	if why := want(map[string]string{"c1": "Ada Lovelace", "c2": "Alan", "c3": "Grace", "c4": "Dora", "c5": "Edsger"})(); why != "" {
		t.Fatal(why)
	}
	for _, tt := range []struct{ key, action string }{{"c1", "created"}, {"c4", "updated"}, {"c5", "created"}} {
		recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", Flow: "customers", RemoteId: tt.key, Action: tt.action})
		if len(recs) != 1 {
			t.Errorf("the API log holds %d %s records of %s, want 1: %v", len(recs), tt.action, tt.key, recs)
		}
	}
}
