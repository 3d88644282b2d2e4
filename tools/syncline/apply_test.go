package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadResourcesReadsTheJSONOfGet(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`[
  {"apiVersion": "syncline.dev/v1", "kind": "Tenant", "metadata": {"name": "acme"}, "spec": {"displayName": "ACME"}},
  {"apiVersion": "syncline.dev/v1", "kind": "Integrator", "metadata": {"name": "shop", "tenant": "acme"}, "spec": {"stage": "active"}}
]`), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := loadResources(good)
	if err != nil || len(rs) != 2 || rs[1].Kind != "Integrator" || rs[1].Metadata.Tenant != "acme" {
		t.Fatalf("loadResources = %v, %v; want the tenant and the integrator", rs, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`[
  {"apiVersion": "syncline.dev/v1", "kind": "Tenant", "metadata": {"name": "acme"}},
  {"apiVersion": "syncline.dev/v1", "kind": "Flow", "metdata": {"name": "orders"}}
]`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadResources(good, bad)
	if err == nil || !strings.Contains(err.Error(), bad+", document 2") || strings.Contains(err.Error(), "document 1") {
		t.Errorf("loadResources = %v, want an error naming %s and its second element only", err, bad)
	}
}
