// Package resourcetest is the conformance suite every resource.Store backend must pass.
package resourcetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/services/controlplane/resource"
)

// Run runs the suite. newStore must return a store over a new, empty database for each call;
// the subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) resource.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s resource.Store)
	}{
		{"put creates at generation 1", testCreate},
		{"an identical spec changes nothing", testUnchanged},
		{"a new spec bumps the generation", testUpdate},
		{"specs are stored as canonical JSON", testCanonical},
		{"an invalid resource is refused", testInvalid},
		{"get of a missing resource names it", testNotFound},
		{"list filters by kind and tenant and sorts", testList},
		{"delete removes one resource", testDelete},
		{"concurrent identical creates make one resource", testConcurrentCreate},
		{"a token is found by its hash until replaced or deleted", testTokens},
		{"deleting a tenant removes its resources and tokens only", testDeleteTenant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

func flow(tenant, name, spec string) resource.Resource {
	return resource.Resource{Kind: "Flow", Tenant: tenant, Name: name, Spec: json.RawMessage(spec)}
}

func put(t *testing.T, s resource.Store, r resource.Resource) (resource.Resource, bool) {
	t.Helper()
	stored, changed, err := s.Put(t.Context(), r)
	if err != nil {
		t.Fatalf("Put(%s %s/%s): %v", r.Kind, r.Tenant, r.Name, err)
	}
	return stored, changed
}

func get(t *testing.T, s resource.Store, kind, tenant, name string) resource.Resource {
	t.Helper()
	r, err := s.Get(t.Context(), kind, tenant, name)
	if err != nil {
		t.Fatalf("Get(%s %s/%s): %v", kind, tenant, name, err)
	}
	return r
}

func testCreate(t *testing.T, s resource.Store) {
	before := time.Now().Add(-time.Second)
	stored, changed := put(t, s, flow("acme", "orders", `{"source": "shop", "target": "erp"}`))
	if !changed || stored.Generation != 1 {
		t.Fatalf("Put of a new resource = generation %d, changed %t; want 1, true", stored.Generation, changed)
	}
	if stored.CreatedAt.Before(before) || !stored.UpdatedAt.Equal(stored.CreatedAt) || stored.CreatedAt.Location() != time.UTC {
		t.Fatalf("times = created %v, updated %v; want both the time of the Put, in UTC", stored.CreatedAt, stored.UpdatedAt)
	}
	if string(stored.Spec) != `{"source":"shop","target":"erp"}` {
		t.Fatalf("stored spec = %s, want the canonical form", stored.Spec)
	}
	if got := get(t, s, "Flow", "acme", "orders"); !equal(got, stored) {
		t.Fatalf("Get = %+v, want what Put returned: %+v", got, stored)
	}
	tenant, changed := put(t, s, resource.Resource{Kind: "Tenant", Tenant: "acme", Name: "acme", Spec: json.RawMessage(`{}`)})
	if !changed || tenant.Tenant != "acme" {
		t.Fatalf("Put of a Tenant = %+v, %t", tenant, changed)
	}
}

func testUnchanged(t *testing.T, s resource.Store) {
	first, _ := put(t, s, flow("acme", "orders", `{"a": 1, "b": {"d": [1, 2], "c": "x"}}`))
	again, changed := put(t, s, flow("acme", "orders", "{\n  \"b\": {\"c\": \"x\", \"d\": [1,2]},\n  \"a\": 1\n}\n"))
	if changed || !equal(again, first) {
		t.Fatalf("Put of the same spec reordered = %+v, changed %t; want the stored resource unchanged: %+v", again, changed, first)
	}
}

func testUpdate(t *testing.T, s resource.Store) {
	first, _ := put(t, s, flow("acme", "orders", `{"a": 1}`))
	second, changed := put(t, s, flow("acme", "orders", `{"a": 2}`))
	if !changed || second.Generation != 2 || string(second.Spec) != `{"a":2}` {
		t.Fatalf("Put of a new spec = %+v, changed %t; want generation 2 with the new spec", second, changed)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) || second.UpdatedAt.Before(first.UpdatedAt) {
		t.Fatalf("times after update = created %v, updated %v; want created kept (%v) and updated not earlier than %v",
			second.CreatedAt, second.UpdatedAt, first.CreatedAt, first.UpdatedAt)
	}
	third, changed := put(t, s, flow("acme", "orders", `{"a": 1}`))
	if !changed || third.Generation != 3 {
		t.Fatalf("Put back to the first spec = generation %d, changed %t; want 3, true", third.Generation, changed)
	}
	if got := get(t, s, "Flow", "acme", "orders"); !equal(got, third) {
		t.Fatalf("Get = %+v, want %+v", got, third)
	}
}

func testCanonical(t *testing.T, s resource.Store) {
	tests := []struct {
		name, spec, want string
	}{
		{"nested keys sorted", `{"z": {"b": 1, "a": [{"y": 1, "x": 2}]}, "a": null}`, `{"a":null,"z":{"a":[{"x":2,"y":1}],"b":1}}`},
		{"numbers as written", `{"big": 12345678901234567890, "dec": 1.10, "exp": 1e3}`, `{"big":12345678901234567890,"dec":1.10,"exp":1e3}`},
		{"no HTML escaping", `{"filter": "a < b && c > d"}`, `{"filter":"a < b && c > d"}`},
		{"unicode kept", `{"name": "Müller – Straße"}`, `{"name":"Müller – Straße"}`},
		{"not an object", ` [1, "two", true] `, `[1,"two",true]`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored, _ := put(t, s, flow("acme", fmt.Sprintf("f%d", i), tc.spec))
			if string(stored.Spec) != tc.want {
				t.Fatalf("stored spec = %s, want %s", stored.Spec, tc.want)
			}
			if got := get(t, s, "Flow", "acme", fmt.Sprintf("f%d", i)); string(got.Spec) != tc.want {
				t.Fatalf("read spec = %s, want %s", got.Spec, tc.want)
			}
		})
	}
}

func testInvalid(t *testing.T, s resource.Store) {
	tests := []struct {
		name string
		r    resource.Resource
		want string
	}{
		{"no kind", resource.Resource{Tenant: "acme", Name: "x", Spec: json.RawMessage(`{}`)}, "kind, tenant and name"},
		{"no tenant", resource.Resource{Kind: "Flow", Name: "x", Spec: json.RawMessage(`{}`)}, "kind, tenant and name"},
		{"no name", resource.Resource{Kind: "Flow", Tenant: "acme", Spec: json.RawMessage(`{}`)}, "kind, tenant and name"},
		{"tenant not its own", resource.Resource{Kind: "Tenant", Tenant: "acme", Name: "globex", Spec: json.RawMessage(`{}`)}, "must equal its name"},
		{"no spec", flow("acme", "x", ""), `Flow "x" of tenant "acme": the spec is not valid JSON`},
		{"broken spec", flow("acme", "x", `{"a": }`), "not valid JSON"},
		{"two values", flow("acme", "x", `{} {}`), "more than one JSON value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, changed, err := s.Put(t.Context(), tc.r)
			if err == nil || changed || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Put = changed %t, %v; want an error containing %q", changed, err, tc.want)
			}
			if list, err := s.List(t.Context(), "Flow", ""); err != nil || len(list) != 0 {
				t.Fatalf("after a refused Put, List = %v, %v; want nothing stored", list, err)
			}
		})
	}
}

func testNotFound(t *testing.T, s resource.Store) {
	put(t, s, flow("acme", "orders", `{}`))
	tests := []struct{ kind, tenant, name string }{
		{"Flow", "acme", "invoices"},
		{"Flow", "globex", "orders"},
		{"Endpoint", "acme", "orders"},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.tenant+"/"+tc.name, func(t *testing.T) {
			_, err := s.Get(t.Context(), tc.kind, tc.tenant, tc.name)
			if !errors.Is(err, resource.ErrNotFound) {
				t.Fatalf("Get = %v, want ErrNotFound", err)
			}
			for _, part := range []string{tc.kind, tc.tenant, tc.name} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %q", err, part)
				}
			}
		})
	}
}

func testList(t *testing.T, s resource.Store) {
	for _, r := range []resource.Resource{
		flow("globex", "orders", `{}`),
		flow("acme", "orders", `{}`),
		flow("acme", "Invoices", `{}`), // upper case sorts first, bytewise, on both backends
		flow("Zeta", "stock", `{}`),
		{Kind: "Endpoint", Tenant: "acme", Name: "shop", Spec: json.RawMessage(`{}`)},
	} {
		put(t, s, r)
	}
	names := func(list []resource.Resource) []string {
		out := make([]string, len(list))
		for i, r := range list {
			out[i] = r.Tenant + "/" + r.Name
		}
		return out
	}
	tests := []struct {
		kind, tenant string
		want         []string
	}{
		{"Flow", "", []string{"Zeta/stock", "acme/Invoices", "acme/orders", "globex/orders"}},
		{"Flow", "acme", []string{"acme/Invoices", "acme/orders"}},
		{"Endpoint", "", []string{"acme/shop"}},
		{"Flow", "initech", []string{}},
		{"Integrator", "", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.tenant, func(t *testing.T) {
			list, err := s.List(t.Context(), tc.kind, tc.tenant)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := names(list); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("List(%s, %q) = %v, want %v", tc.kind, tc.tenant, got, tc.want)
			}
		})
	}
	if _, err := s.List(t.Context(), "", "acme"); err == nil {
		t.Fatal("List without a kind succeeded, want an error")
	}
}

func testDelete(t *testing.T, s resource.Store) {
	put(t, s, flow("acme", "orders", `{}`))
	put(t, s, flow("globex", "orders", `{}`))
	if err := s.Delete(t.Context(), "Flow", "acme", "orders"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(t.Context(), "Flow", "acme", "orders"); !errors.Is(err, resource.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), "Flow", "acme", "orders"); !errors.Is(err, resource.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	get(t, s, "Flow", "globex", "orders")
	// A resource created again after a delete starts over.
	if again, changed := put(t, s, flow("acme", "orders", `{}`)); !changed || again.Generation != 1 {
		t.Fatalf("Put after Delete = generation %d, changed %t; want 1, true", again.Generation, changed)
	}
}

func testConcurrentCreate(t *testing.T, s resource.Store) {
	const writers = 8
	var wg sync.WaitGroup
	type result struct {
		r       resource.Resource
		changed bool
		err     error
	}
	results := make(chan result, writers)
	for range writers {
		wg.Go(func() {
			r, changed, err := s.Put(t.Context(), flow("acme", "orders", `{"a": 1}`))
			results <- result{r, changed, err}
		})
	}
	wg.Wait()
	close(results)
	created := 0
	for res := range results {
		if res.err != nil {
			t.Fatalf("a concurrent Put failed: %v", res.err)
		}
		if res.r.Generation != 1 {
			t.Fatalf("a concurrent identical Put left generation %d, want 1", res.r.Generation)
		}
		if res.changed {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent identical Puts reported a change, want exactly 1", created)
	}
}

// equal compares resources field by field; Spec is a byte slice and times compare as instants.
func equal(a, b resource.Resource) bool {
	return a.Kind == b.Kind && a.Tenant == b.Tenant && a.Name == b.Name && string(a.Spec) == string(b.Spec) &&
		a.Generation == b.Generation && a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func lookup(t *testing.T, s resource.Store, hash string) (string, string, error) {
	t.Helper()
	tenant, integrator, err := s.LookupToken(t.Context(), hash)
	if err != nil && !errors.Is(err, auth.ErrUnknownToken) {
		t.Fatalf("LookupToken: %v", err)
	}
	return tenant, integrator, err
}

func testTokens(t *testing.T, s resource.Store) {
	ctx := t.Context()
	if _, _, err := lookup(t, s, "nohash"); err == nil {
		t.Fatal("an unknown hash was found")
	}
	for _, tk := range []struct{ tenant, integrator, hash string }{{"a", "i1", "h1"}, {"a", "i2", "h2"}, {"b", "i1", "h3"}} {
		if err := s.SetToken(ctx, tk.tenant, tk.integrator, tk.hash); err != nil {
			t.Fatalf("SetToken: %v", err)
		}
	}
	if tenant, integrator, err := lookup(t, s, "h3"); err != nil || tenant != "b" || integrator != "i1" {
		t.Fatalf("LookupToken(h3) = %s, %s, %v; want b, i1", tenant, integrator, err)
	}
	// Rotating replaces: the old hash is unknown at once.
	if err := s.SetToken(ctx, "a", "i1", "h1b"); err != nil {
		t.Fatalf("SetToken: %v", err)
	}
	if _, _, err := lookup(t, s, "h1"); err == nil {
		t.Fatal("a rotated-away token is still found")
	}
	if tenant, integrator, err := lookup(t, s, "h1b"); err != nil || tenant != "a" || integrator != "i1" {
		t.Fatalf("LookupToken(h1b) = %s, %s, %v; want a, i1", tenant, integrator, err)
	}
	got, err := s.Tokens(ctx, "a")
	if err != nil || len(got) != 2 || got["i1"] != "h1b" || got["i2"] != "h2" {
		t.Fatalf("Tokens(a) = %v, %v; want i1:h1b i2:h2", got, err)
	}
	removed, err := s.DeleteToken(ctx, "a", "i2")
	if err != nil || !removed {
		t.Fatalf("DeleteToken = %v, %v; want true", removed, err)
	}
	if _, _, err := lookup(t, s, "h2"); err == nil {
		t.Fatal("a revoked token is still found")
	}
	if removed, err := s.DeleteToken(ctx, "a", "i2"); err != nil || removed {
		t.Fatalf("second DeleteToken = %v, %v; want false, nil", removed, err)
	}
}

func testDeleteTenant(t *testing.T, s resource.Store) {
	ctx := t.Context()
	for _, tenant := range []string{"a", "b"} {
		put(t, s, resource.Resource{Kind: "Tenant", Tenant: tenant, Name: tenant, Spec: json.RawMessage(`{}`)})
		put(t, s, resource.Resource{Kind: "Integrator", Tenant: tenant, Name: "i", Spec: json.RawMessage(`{}`)})
		put(t, s, flow(tenant, "f1", `{}`))
		put(t, s, flow(tenant, "f2", `{}`))
		if err := s.SetToken(ctx, tenant, "i", "hash-"+tenant); err != nil {
			t.Fatalf("SetToken: %v", err)
		}
	}
	removed, err := s.DeleteTenant(ctx, "a")
	if err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	want := map[string]int64{"Tenant": 1, "Integrator": 1, "Flow": 2, "token": 1}
	if fmt.Sprint(removed) != fmt.Sprint(want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	for _, kind := range []string{"Tenant", "Integrator", "Flow"} {
		if list, err := s.List(ctx, kind, "a"); err != nil || len(list) != 0 {
			t.Fatalf("List(%s, a) after delete = %d, %v", kind, len(list), err)
		}
		if list, err := s.List(ctx, kind, "b"); err != nil || len(list) == 0 {
			t.Fatalf("List(%s, b) after deleting a = %d, %v; tenant b must be untouched", kind, len(list), err)
		}
	}
	if _, _, err := lookup(t, s, "hash-a"); err == nil {
		t.Fatal("the deleted tenant's token is still found")
	}
	if _, _, err := lookup(t, s, "hash-b"); err != nil {
		t.Fatal("the other tenant's token is gone")
	}
	if _, err := s.DeleteTenant(ctx, "a"); !errors.Is(err, resource.ErrNotFound) {
		t.Fatalf("second DeleteTenant: %v, want ErrNotFound", err)
	}
}
