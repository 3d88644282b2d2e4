package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkGolden compares got with the golden file at path, or rewrites the
// file when the tests run with -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	path = filepath.Join(packageDir, path)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the golden file (run go test -update to write it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// changedExample is examples/orders.yaml with a changed mapping expression,
// a changed endpoint description and a new flow.
func changedExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(example("orders.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range []struct{ old, new string }{
		{"total: double(source.total)", "total: double(source.total) / 100.0"},
		{"description: The webshop; publishes order changes to ingest.acme.shop.order",
			"description: The webshop; publishes order and customer changes to ingest.acme.shop.*"},
	} {
		if !strings.Contains(s, r.old) {
			t.Fatalf("examples/orders.yaml no longer holds %q: change the test with it", r.old)
		}
		s = strings.Replace(s, r.old, r.new, 1)
	}
	s += `---
apiVersion: syncline.dev/v1
kind: Flow
metadata:
  tenant: acme
  name: customers
spec:
  integrator: shop-to-erp
  source: shop
  target: erp
  entity: customer
  mapping:
    fields:
      email: source.email.lowerAscii()
      name: source.name
`
	path := filepath.Join(t.TempDir(), "orders-changed.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestApplyDryRunGolden checks what apply --dry-run prints: one line per
// resource, and under each one that would change the diff of its spec.
func TestApplyDryRunGolden(t *testing.T) {
	c := newCLI(t)
	c.must("apply", "-f", example("orders.yaml"))
	changed := changedExample(t)

	out := c.must("apply", "-f", changed, "--dry-run")
	if strings.Contains(out, "token") || strings.Contains(out, "sli_") {
		t.Errorf("a dry run printed a token:\n%s", out)
	}
	checkGolden(t, "testdata/dry-run.golden", out)

	// A dry run changes nothing: the same dry run says the same, and the
	// new flow does not exist.
	if again := c.must("apply", "-f", changed, "--dry-run"); again != out {
		t.Errorf("a second dry run printed\n%s\nafter the first printed\n%s", again, out)
	}
	if out, err := c.run("get", "flow", "customers", "--tenant", "acme"); err == nil {
		t.Errorf("the dry run created flow customers:\n%s", out)
	}

	// The real apply prints the same lines without "(dry run)".
	applied := c.must("apply", "-f", changed)
	if want := strings.ReplaceAll(out, " (dry run)", ""); applied != want {
		t.Errorf("apply printed\n%s\nwant the dry run's output without (dry run):\n%s", applied, want)
	}
	if out := c.must("apply", "-f", changed); strings.Contains(out, "created") || strings.Contains(out, "updated") || strings.Contains(out, "@@") {
		t.Errorf("applying the same file again reported changes:\n%s", out)
	}
}

// TestApplyPrintsANewIntegratorsTokenOnce checks that the apply that
// creates an integrator shows its token, with the warning, and no later
// apply does.
func TestApplyPrintsANewIntegratorsTokenOnce(t *testing.T) {
	c := newCLI(t)
	out := c.must("apply", "-f", example("orders.yaml"))
	token := tokenIn(t, out)
	want := "integrator acme/shop-to-erp created\n  +stage: active\n  token: " + token + "  (store it now: it is shown only this once)\n"
	if !strings.Contains(out, want) {
		t.Errorf("apply printed\n%s\nwithout\n%s", out, want)
	}
	if strings.Count(out, "token:") != 1 {
		t.Errorf("apply printed more than one token:\n%s", out)
	}
	if out := c.must("apply", "-f", example("orders.yaml")); strings.Contains(out, "token") {
		t.Errorf("applying again printed a token:\n%s", out)
	}
}

// tokenIn returns the token that out shows.
func tokenIn(t *testing.T, out string) string {
	t.Helper()
	for line := range strings.SplitSeq(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "token: "); ok {
			token, _, _ := strings.Cut(rest, " ")
			return token
		}
	}
	t.Fatalf("no token in\n%s", out)
	return ""
}

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

// TestApplyRefusesADevice: `apply -f /dev/zero` once read until the kernel stopped it.
func TestApplyRefusesADevice(t *testing.T) {
	out, err := run(t, "apply", "-f", "/dev/zero", "--server", "http://127.0.0.1:1")
	want := "reading /dev/zero: it is a character device, not a regular file"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("syncline apply -f /dev/zero = %v\n%s\nwant an error containing %q", err, out, want)
	}
}
