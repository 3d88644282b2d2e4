package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEndpointAndFlowTest(t *testing.T) {
	c := newCLI(t)
	c.must("apply", "-f", example("orders.yaml"))

	out := c.must("endpoint", "test", "erp", "--tenant", "acme")
	for _, want := range []string{"serves any entity: find by external_ref", "ok: the sql endpoint answered"} {
		if !strings.Contains(out, want) {
			t.Errorf("endpoint test printed %q, want %q", out, want)
		}
	}

	out = c.must("flow", "test", "orders", "--tenant", "acme", "--file", example("order-1001.json"), "--key", "SO-1001")
	for _, want := range []string{"key SO-1001: would be created", `"customer_email": "ada@example.com"`, `"employee_number": 999999`} {
		if !strings.Contains(out, want) {
			t.Errorf("flow test printed %q, want %q", out, want)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`[1, 2]`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"flow", "test", "orders", "--tenant", "acme", "--file", bad, "--key", "k"}, "is not a JSON object"},
		{[]string{"flow", "test", "orders", "--tenant", "acme"}, "give the sample record with --file"},
		{[]string{"flow", "test", "orders", "--tenant", "acme", "--file", example("order-1001.json")}, "give the record's key"},
		{[]string{"endpoint", "test", "shop", "--tenant", "acme"}, "source that publishes its own events"},
	} {
		out, err := c.run(tt.args...)
		if err == nil || !strings.Contains(out+err.Error(), tt.want) {
			t.Errorf("syncline %s = %q, %v; want an error saying %q", strings.Join(tt.args, " "), out, err, tt.want)
		}
	}
}

func TestFlowSyncRefusesAFlowWhoseSourcePublishes(t *testing.T) {
	c := withExample(t)
	_, err := c.run("flow", "sync", "orders", "--tenant", "acme")
	if err == nil || !strings.Contains(err.Error(), "realtime schedule") || !strings.Contains(err.Error(), "interval or cron") {
		t.Fatalf("flow sync of a realtime flow: %v, want a refusal that says the source publishes and how to poll it", err)
	}
	if _, err := c.run("flow", "sync", "nosuch", "--tenant", "acme"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("flow sync of a flow that does not exist: %v, want not found", err)
	}
}
