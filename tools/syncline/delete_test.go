package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
)

func TestDeleteEndpointOnlyOnceNoFlowUsesIt(t *testing.T) {
	c := newCLI(t)
	c.must("apply", "-f", example("orders.yaml"))

	out, err := c.run("delete", "endpoint", "erp", "--tenant", "acme")
	if err == nil || !strings.Contains(err.Error(), `flows use it: "orders"`) || connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("deleting an endpoint that flow orders uses = %v (%v)\n%s; want it refused, naming the flow", err, connect.CodeOf(err), out)
	}
	c.must("get", "endpoint", "erp", "--tenant", "acme")

	if out := c.must("delete", "flow", "orders", "--tenant", "acme"); out != "removed 1 Flow\n" {
		t.Errorf("delete flow printed %q", out)
	}
	if out := c.must("delete", "endpoint", "erp", "--tenant", "acme"); out != "removed 1 Endpoint\n" {
		t.Errorf("delete endpoint printed %q", out)
	}
	if out := c.stdout("get", "endpoints", "--tenant", "acme"); strings.Contains(out, "erp") || !strings.Contains(out, "shop") {
		t.Errorf("after deleting endpoint erp, get endpoints printed\n%s", out)
	}
}

func TestDeleteIntegratorKeepsItAsDeleted(t *testing.T) {
	c := newCLI(t)
	token := tokenIn(t, c.must("apply", "-f", example("orders.yaml")))
	if out := c.must("delete", "integrator", "shop-to-erp", "--tenant", "acme"); out != "removed 1 Integrator\nremoved 1 token\n" {
		t.Errorf("delete integrator printed %q", out)
	}
	if out := c.must("delete", "integrator", "shop-to-erp", "--tenant", "acme"); out != "nothing to remove: integrator acme/shop-to-erp was already deleted\n" {
		t.Errorf("deleting it again printed %q", out)
	}
	if out := c.stdout("get", "integrator", "shop-to-erp", "--tenant", "acme"); !strings.Contains(out, " deleted ") {
		t.Errorf("get integrator printed\n%s\nwant its stage deleted", out)
	}
	if _, err := c.run("get", "flows", "--token", token); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("the deleted integrator's token still works: %v", err)
	}
}

func TestDeleteTenantErasesItAfterConfirmation(t *testing.T) {
	c := newCLI(t)
	globex := filepath.Join(t.TempDir(), "globex.yaml")
	if err := os.WriteFile(globex, []byte("apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata:\n  name: globex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must("apply", "-f", example("orders.yaml"), "-f", globex)
	// One order through the flow, so that the tenant has a ledger entry and
	// a log record to erase.
	c.must("publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order", "--key", "1001", "--file", example("order-1001.json"))
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(c.stdout("logs", "--tenant", "acme"), "created"); {
		if time.Now().After(deadline) {
			t.Fatal("the order never showed in the log")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Without --yes and without a terminal to ask on, nothing is deleted.
	out, err := c.run("delete", "tenant", "acme")
	if err == nil || !strings.Contains(err.Error(), "pass --yes to confirm") {
		t.Errorf("delete tenant without --yes = %v\n%s; want a refusal asking for --yes", err, out)
	}
	// On a terminal, it asks; only the tenant's name confirms.
	for _, tt := range []struct {
		answer, tenant string
		deleted        bool
	}{
		{"y\n", "globex", false},
		{"", "globex", false},
		{"globex\n", "globex", true},
	} {
		out, errOut, err := execute(&globals{in: strings.NewReader(tt.answer), interactive: true}, append([]string{"delete", "tenant", tt.tenant}, c.flags...)...)
		if !strings.Contains(errOut, "Type the tenant's name to delete it:") {
			t.Errorf("delete tenant on a terminal did not ask:\n%s", errOut)
		}
		if deleted := err == nil; deleted != tt.deleted {
			t.Errorf("answering %q: deleted = %v (%v), want %v\n%s", tt.answer, deleted, err, tt.deleted, out)
		}
	}
	if out := c.stdout("get", "tenants"); strings.Contains(out, "globex") || !strings.Contains(out, "acme") {
		t.Errorf("get tenants printed\n%s\nwant acme only", out)
	}

	out = c.must("delete", "tenant", "acme", "--yes")
	for _, want := range []string{"removed 1 Tenant\n", "removed 1 Integrator\n", "removed 2 Endpoint\n", "removed 1 Flow\n",
		"removed 1 token\n", "removed 1 ledger entries\n", "removed 1 log records\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("delete tenant --yes printed\n%s\nwithout %q", out, want)
		}
	}
	if strings.Contains(out, "removed 0 ") {
		t.Errorf("delete tenant printed what it did not remove:\n%s", out)
	}
	if out, _ := c.run("get", "tenants"); strings.Contains(out, "acme") {
		t.Errorf("get tenants still lists acme:\n%s", out)
	}
}
