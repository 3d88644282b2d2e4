package rest_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncline/syncline/connectors/rest"
	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	"github.com/syncline/syncline/pkg/connector"
)

func TestCreateFindUpdateDeleteOnJSONServer(t *testing.T) {
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil, "products": nil}})
	target := open(t, shopSettings(peer.URL), localEnv(t, nil))
	ctx := context.Background()

	created := writeOne(t, target, "customer", connector.Write{Op: connector.WriteCreate, Key: "crm-1",
		Payload: object(t, map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "city": "London"})})
	if created.Err != nil || created.TargetID == "" {
		t.Fatalf("create = %+v, want an id", created)
	}
	stored := peer.Items(t, jsonservertest.Auth{}, "customers", url.Values{"externalRef": {"crm-1"}})
	if len(stored) != 1 || stored[0]["name"] != "Ada Lovelace" || fmt.Sprint(stored[0]["id"]) != created.TargetID {
		t.Fatalf("json-server holds %v, want Ada with id %s and externalRef crm-1", stored, created.TargetID)
	}

	// Someone adds a customer by hand; finding by e-mail and by reference tells them apart.
	peer.Add(t, jsonservertest.Auth{}, "customers", map[string]any{"name": "Bo", "email": "bo@example.com"})
	for _, tt := range []struct {
		field  string
		values []string
		want   []string // values found, one per record
	}{
		{connector.FieldExternalRef, []string{"crm-1", "crm-2"}, []string{"crm-1"}},
		{"email", []string{"ada@example.com", "bo@example.com", "nobody@example.com"}, []string{"ada@example.com", "bo@example.com"}},
	} {
		found, err := target.Find(ctx, "customer", tt.field, tt.values)
		if err != nil {
			t.Fatalf("Find by %s: %v", tt.field, err)
		}
		var got []string
		for _, f := range found {
			got = append(got, f.Value)
			if f.ID == "" || len(f.Fields) == 0 {
				t.Errorf("Find by %s: %+v lacks its id or fields", tt.field, f)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Find by %s %v found %v, want %v", tt.field, tt.values, got, tt.want)
		}
		if tt.field == connector.FieldExternalRef && (found[0].ID != created.TargetID || !strings.Contains(string(found[0].Fields), `"London"`)) {
			t.Errorf("Find by reference = %+v, want id %s with the stored fields", found[0], created.TargetID)
		}
	}

	// PATCH changes the given fields and leaves the others.
	updated := writeOne(t, target, "customer", connector.Write{Op: connector.WriteUpdate, Key: "crm-1", ID: created.TargetID,
		Payload: object(t, map[string]any{"city": "Paris"})})
	if updated.Err != nil || updated.TargetID != created.TargetID {
		t.Fatalf("update = %+v", updated)
	}
	stored = peer.Items(t, jsonservertest.Auth{}, "customers", url.Values{"externalRef": {"crm-1"}})
	if len(stored) != 1 || stored[0]["city"] != "Paris" || stored[0]["name"] != "Ada Lovelace" {
		t.Fatalf("after PATCH json-server holds %v, want Ada in Paris", stored)
	}

	// Delete removes it; deleting it again succeeds, as a retried batch must.
	for range 2 {
		deleted := writeOne(t, target, "customer", connector.Write{Op: connector.WriteDelete, Key: "crm-1", ID: created.TargetID})
		if deleted.Err != nil {
			t.Fatalf("delete = %v", deleted.Err)
		}
	}
	if stored := peer.Items(t, jsonservertest.Auth{}, "customers", nil); len(stored) != 1 || stored[0]["name"] != "Bo" {
		t.Fatalf("after delete json-server holds %v, want Bo only", stored)
	}
	// No record has an externalRef now, so json-server ignores the parameter and lists every
	// customer: the target still finds none.
	if found, err := target.Find(ctx, "customer", connector.FieldExternalRef, []string{"crm-1"}); err != nil || len(found) != 0 {
		t.Fatalf("Find by reference after delete = %+v, %v; want nothing", found, err)
	}
}

func TestPutSendsTheWholeRecord(t *testing.T) {
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil, "products": nil}})
	target := open(t, shopSettings(peer.URL), localEnv(t, nil))
	created := writeOne(t, target, "product", connector.Write{Op: connector.WriteCreate, Key: "pim-7",
		Payload: object(t, map[string]any{"sku": "SKU-7", "title": "Kettle", "description": "written in the shop"})})
	if created.Err != nil {
		t.Fatal(created.Err)
	}
	// The recipe asks to change the title only (the description is create_only).
	updated := writeOne(t, target, "product", connector.Write{Op: connector.WriteUpdate, Key: "pim-7", ID: created.TargetID,
		Payload: object(t, map[string]any{"title": "Electric kettle"})})
	if updated.Err != nil {
		t.Fatal(updated.Err)
	}
	stored := peer.Items(t, jsonservertest.Auth{}, "products", url.Values{"sku": {"SKU-7"}})
	if len(stored) != 1 || stored[0]["title"] != "Electric kettle" || stored[0]["description"] != "written in the shop" || stored[0]["externalRef"] != "pim-7" {
		t.Fatalf("after PUT json-server holds %v, want the new title with the description and reference kept", stored)
	}
	found, err := target.Find(context.Background(), "product", "sku", []string{"SKU-7"})
	if err != nil || len(found) != 1 || found[0].ID != created.TargetID {
		t.Fatalf("Find by sku = %+v, %v", found, err)
	}
}

func TestRefusalCarriesTheAPIsMessage(t *testing.T) {
	peer.Reset(t, jsonservertest.State{
		DB:    map[string][]map[string]any{"customers": nil, "products": nil},
		Rules: map[string]map[string]jsonservertest.Rule{"customers": {"email": {Pattern: "@", Message: "email must be an e-mail address"}}},
	})
	target := open(t, shopSettings(peer.URL), localEnv(t, nil))
	results, err := target.Write(context.Background(), "customer", []connector.Write{
		{Op: connector.WriteCreate, Key: "crm-bad", Payload: object(t, map[string]any{"name": "Secret Name", "email": "not-an-address"})},
		{Op: connector.WriteCreate, Key: "crm-good", Payload: object(t, map[string]any{"name": "Cy", "email": "cy@example.com"})},
		{Op: connector.WriteUpdate, Key: "crm-gone", ID: "404404", Payload: object(t, map[string]any{"name": "Dee"})},
	})
	if err != nil {
		t.Fatalf("Write: %v, want refusals in the results", err)
	}
	bad := results[0].Err
	if bad == nil || !strings.Contains(bad.Error(), "email must be an e-mail address") || !strings.Contains(bad.Error(), `"crm-bad"`) || !strings.Contains(bad.Error(), "422") {
		t.Errorf("refusal = %v, want the record key, 422 and the API's message", bad)
	}
	if bad != nil && (strings.Contains(bad.Error(), "Secret Name") || strings.Contains(bad.Error(), "not-an-address")) {
		t.Errorf("refusal %q holds the payload", bad)
	}
	if results[1].Err != nil || results[1].TargetID == "" {
		t.Errorf("the good record after a refused one = %+v, want it created", results[1])
	}
	if gone := results[2].Err; gone == nil || !strings.Contains(gone.Error(), "404") {
		t.Errorf("update of a record not in the target = %v, want a refusal with 404", gone)
	}
	if stored := peer.Items(t, jsonservertest.Auth{}, "customers", nil); len(stored) != 1 || stored[0]["externalRef"] != "crm-good" {
		t.Errorf("json-server holds %v, want only crm-good", stored)
	}
}

func TestAuthOnJSONServer(t *testing.T) {
	for _, tt := range []struct {
		name     string
		auth     jsonservertest.Auth
		settings map[string]any
		wrong    map[string]any
	}{
		{"bearer", jsonservertest.Auth{Bearer: "t0ken"},
			map[string]any{"auth": "bearer", "token": "t0ken"}, map[string]any{"auth": "bearer", "token": "stale"}},
		{"basic", jsonservertest.Auth{User: "sync", Password: "pw"},
			map[string]any{"auth": "basic", "user": "sync", "password": "pw"}, map[string]any{"auth": "basic", "user": "sync", "password": "nope"}},
		{"api key", jsonservertest.Auth{Header: "X-Shop-Key", Key: "k3y"},
			map[string]any{"auth": "api_key", "api_key_header": "X-Shop-Key", "token": "k3y"}, map[string]any{"auth": "api_key", "token": "k3y"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil, "products": nil}, Auth: tt.auth})
			with := func(extra map[string]any) map[string]any {
				s := shopSettings(peer.URL)
				for k, v := range extra {
					s[k] = v
				}
				return s
			}
			target := open(t, with(tt.settings), localEnv(t, nil))
			if err := target.Check(context.Background()); err != nil {
				t.Fatalf("Check with the right credentials: %v", err)
			}
			if r := writeOne(t, target, "customer", connector.Write{Op: connector.WriteCreate, Key: "crm-1", Payload: object(t, map[string]any{"name": "Ada"})}); r.Err != nil {
				t.Fatalf("create with the right credentials: %v", r.Err)
			}
			if stored := peer.Items(t, tt.auth, "customers", nil); len(stored) != 1 {
				t.Fatalf("json-server holds %v, want the one customer", stored)
			}

			wrong := open(t, with(tt.wrong), localEnv(t, nil))
			err := wrong.Check(context.Background())
			if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
				t.Errorf("Check with wrong credentials = %v, want the credentials refused", err)
			}
			// A refused credential is every record's problem: the call fails, no record is
			// dead-lettered for it.
			_, err = wrong.Write(context.Background(), "customer", []connector.Write{{Op: connector.WriteCreate, Key: "crm-2", Payload: object(t, map[string]any{"name": "Bo"})}})
			if err == nil || !strings.Contains(err.Error(), "401") {
				t.Errorf("Write with wrong credentials = %v, want the call to fail with 401", err)
			}
			for _, secret := range []string{"stale", "nope", "k3y", "t0ken"} {
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a credential", err)
				}
			}
		})
	}
}

func TestBudgetWaitsOutJSONServersRetryAfter(t *testing.T) {
	peer.Reset(t, jsonservertest.State{
		DB:      map[string][]map[string]any{"customers": nil, "products": nil},
		Trouble: jsonservertest.Trouble{Status: 429, Count: 1, RetryAfter: "1"},
	})
	reg := prometheus.NewRegistry()
	metrics, err := connector.NewBudgetMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	budget := connector.NewBudget(connector.BudgetConfig{RequestsPerSecond: 20, MaxConcurrency: 2}, connector.WithBudgetMetrics(metrics, "acme", "shop"))
	target := open(t, shopSettings(peer.URL), localEnv(t, budget))
	ctx := connector.WithFlow(context.Background(), "crm-customers")
	start := time.Now()
	results, err := target.Write(ctx, "customer", []connector.Write{{Op: connector.WriteCreate, Key: "crm-1", Payload: object(t, map[string]any{"name": "Ada"})}})
	if err != nil || results[0].Err != nil {
		t.Fatalf("Write = %v, %v; want the 429 waited out", results, err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("the write took %s, less than the second Retry-After asked for", waited)
	}
	if stored := peer.Items(t, jsonservertest.Auth{}, "customers", nil); len(stored) != 1 {
		t.Fatalf("json-server holds %v, want the one customer", stored)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var throttles float64
	for _, f := range families {
		if f.GetName() == "syncline_budget_throttles_total" {
			for _, m := range f.GetMetric() {
				throttles += m.GetCounter().GetValue()
			}
		}
	}
	if throttles != 1 {
		t.Errorf("throttles recorded = %v, want 1", throttles)
	}
}

func TestJSONServerTroubleIsAnOutageOrAThrottle(t *testing.T) {
	for _, tt := range []struct {
		trouble   jsonservertest.Trouble
		throttled bool
	}{
		{jsonservertest.Trouble{Status: 500, Count: 1}, false},
		{jsonservertest.Trouble{Status: 502, Count: 1}, false},
		// A throttle asking for more than the timeout is handed to the platform to wait out.
		{jsonservertest.Trouble{Status: 429, Count: 1, RetryAfter: "60"}, true},
		{jsonservertest.Trouble{Status: 503, Count: 1, RetryAfter: "60"}, true},
	} {
		t.Run(fmt.Sprint(tt.trouble.Status), func(t *testing.T) {
			peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil, "products": nil}, Trouble: tt.trouble})
			target := open(t, shopSettings(peer.URL), localEnv(t, nil))
			_, err := target.Write(context.Background(), "customer", []connector.Write{{Op: connector.WriteCreate, Key: "crm-1", Payload: object(t, map[string]any{"name": "Ada"})}})
			if err == nil {
				t.Fatal("Write succeeded, want the call to fail")
			}
			var te *connector.ThrottledError
			if got := errors.As(err, &te); got != tt.throttled {
				t.Fatalf("Write error %v: throttled %v, want %v", err, got, tt.throttled)
			}
			if tt.throttled && te.RetryAfter != time.Minute {
				t.Errorf("RetryAfter = %s, want the minute the API asked for", te.RetryAfter)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.trouble.Status)) || !strings.Contains(err.Error(), "trouble asked for by the test") {
				t.Errorf("error %q lacks the status and the API's message", err)
			}
			if stored := peer.Items(t, jsonservertest.Auth{}, "customers", nil); len(stored) != 0 {
				t.Errorf("json-server holds %v after a failed call", stored)
			}
		})
	}
}

func TestEgressPolicyAppliesToEveryRequest(t *testing.T) {
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil, "products": nil}})
	e, err := connector.NewEgress(connector.EgressConfig{})
	if err != nil {
		t.Fatal(err)
	}
	env := connector.Env{Tenant: "acme", Egress: e}
	r := registry(t)
	err = r.CheckEgress(context.Background(), "rest", shopSettings(peer.URL), env)
	if err == nil || !strings.Contains(err.Error(), "settings.base_url") {
		t.Fatalf("CheckEgress of a loopback API under the default policy = %v, want a refusal naming settings.base_url", err)
	}
	// Opened past the check, the target still connects through the policy.
	u, _ := url.Parse(peer.URL)
	target, err := rest.Open(context.Background(), rest.Settings{
		BaseURL: u, Auth: rest.AuthNone, Timeout: 5 * time.Second,
		Entities: map[string]rest.Entity{"customer": {Path: "/customers", ItemPath: "/customers/{id}", RefField: "externalRef", IDField: "id",
			UpdateMethod: "PATCH", Lookup: map[string]string{connector.FieldExternalRef: "externalRef"}}},
	}, env)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	_, err = target.Find(context.Background(), "customer", connector.FieldExternalRef, []string{"crm-1"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Find on a loopback API under the default policy = %v, want the policy's refusal", err)
	}
}

func TestReadOnlyTargetWritesNothing(t *testing.T) {
	peer.Reset(t, jsonservertest.State{DB: map[string][]map[string]any{"customers": nil, "products": nil}})
	env := localEnv(t, nil)
	env.ReadOnly = true
	target := open(t, shopSettings(peer.URL), env)
	if err := target.Check(context.Background()); err != nil {
		t.Fatalf("Check of a read-only target: %v", err)
	}
	_, err := target.Write(context.Background(), "customer", []connector.Write{{Op: connector.WriteCreate, Key: "crm-1", Payload: object(t, map[string]any{"name": "Ada"})}})
	if err == nil || !strings.Contains(err.Error(), "opened for a test") {
		t.Fatalf("Write on a read-only target = %v, want a refusal", err)
	}
	if stored := peer.Items(t, jsonservertest.Auth{}, "customers", nil); len(stored) != 0 {
		t.Fatalf("json-server holds %v", stored)
	}
}
