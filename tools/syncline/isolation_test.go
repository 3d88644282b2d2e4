package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// local are the commands that reach no tenant's data: they run on this
// machine (dev, version, nats-key, completion, help) or show what ships
// with the platform (mapping defaults).
var local = map[string]bool{
	"syncline dev": true, "syncline version": true, "syncline nats-key": true, "syncline mapping": true,
	"syncline mapping defaults": true, "syncline help": true, "syncline completion": true,
}

// TestNoVerbReachesAnotherTenant is the CLI's part of the isolation
// contract: with tenant acme's integrator token, every verb that reaches a
// tenant is tried on tenant globex and refused, and globex is as it was.
// A new verb without a case here fails the test.
func TestNoVerbReachesAnotherTenant(t *testing.T) {
	c := newCLI(t)
	token := tokenIn(t, c.must("apply", "-f", example("orders.yaml")))
	example, err := os.ReadFile(example("orders.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	globexFile := filepath.Join(t.TempDir(), "globex.yaml")
	if err := os.WriteFile(globexFile, []byte(strings.ReplaceAll(string(example), "acme", "globex")), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must("apply", "-f", globexFile)
	before := c.must("get", "flows", "--tenant", "globex", "-o", "yaml")
	record := filepath.Join(t.TempDir(), "record.json")
	if err := os.WriteFile(record, []byte(`{"number":"X"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	const letter = "dlq:SYNCLINE_INGEST:1"
	cases := map[string][]string{
		"syncline apply":               {"apply", "-f", globexFile},
		"syncline get":                 {"get", "flows", "--tenant", "globex"},
		"syncline delete":              {"delete", "flow", "orders", "--tenant", "globex"},
		"syncline token rotate":        {"token", "rotate", "shop-to-erp", "--tenant", "globex"},
		"syncline token revoke":        {"token", "revoke", "shop-to-erp", "--tenant", "globex"},
		"syncline deadletters list":    {"deadletters", "list", "--tenant", "globex"},
		"syncline deadletters show":    {"deadletters", "show", letter, "--tenant", "globex", "--record"},
		"syncline deadletters edit":    {"deadletters", "edit", letter, "--tenant", "globex", "--file", record},
		"syncline deadletters replay":  {"deadletters", "replay", letter, "--tenant", "globex"},
		"syncline deadletters discard": {"deadletters", "discard", letter, "--tenant", "globex"},
		"syncline publish":             {"publish", "--tenant", "globex", "--endpoint", "shop", "--entity", "order", "--key", "intruder", "--data", `{"number":"X"}`},
		"syncline logs":                {"logs", "--tenant", "globex"},
		"syncline report":              {"report", "--tenant", "globex"},
		"syncline report providers":    {"report", "providers", "--tenant", "globex"},
		"syncline endpoint test":       {"endpoint", "test", "erp", "--tenant", "globex"},
		"syncline flow test":           {"flow", "test", "orders", "--tenant", "globex", "--file", record, "--key", "X"},
		"syncline flow sync":           {"flow", "sync", "orders", "--tenant", "globex", "--from-start"},
		"syncline token":               nil, // a group: its verbs have cases
		"syncline endpoint":            nil,
		"syncline flow":                nil,
		"syncline deadletters":         nil,
	}
	var verbs []string
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			path := sub.CommandPath()
			if !local[path] && !local[sub.Parent().CommandPath()] {
				verbs = append(verbs, path)
			}
			walk(sub)
		}
	}
	walk(newRootWith(&globals{}))
	for _, verb := range verbs {
		args, ok := cases[verb]
		switch {
		case !ok:
			t.Errorf("%s has no isolation case: add what another tenant's token could try with it", verb)
		case args == nil:
		default:
			out, err := c.run(append(args, "--token", token)...)
			if err == nil {
				t.Errorf("%s with acme's token on globex: done, want refused\n%s", verb, out)
			} else if !strings.Contains(err.Error(), "not yours") && !strings.Contains(err.Error(), "needs the admin token") && !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s with acme's token on globex: %v, want a refusal that says why", verb, err)
			}
		}
	}
	if after := c.must("get", "flows", "--tenant", "globex", "-o", "yaml"); after != before {
		t.Errorf("globex's flows after acme's tries:\n%s\nbefore:\n%s", after, before)
	}
}
