package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/tools/allinone"
)

// run executes the CLI with args and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String() + errOut.String(), err
}

// TestWalkthrough runs the README's walkthrough against a running instance:
// apply the example, publish the example order, see it in the log; apply
// again and nothing changes.
func TestWalkthrough(t *testing.T) {
	dir := t.TempDir()
	// The example's target is .syncline/erp.db, relative to where syncline
	// runs: run there.
	t.Chdir(dir)
	in, err := allinone.New(allinone.Config{DataDir: ".syncline", HTTPAddr: "127.0.0.1:0", NATSPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Stop(context.Background()) })
	repo := repoRoot()
	common := []string{"--server", in.APIURL(), "--nats", in.NATSURL()}

	out, err := run(t, append([]string{"apply", "-f", filepath.Join(repo, "examples", "orders.yaml")}, common...)...)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	for _, want := range []string{"tenant acme created", "flow acme/orders created"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply printed %q, without %q", out, want)
		}
	}
	out, err = run(t, append([]string{"apply", "-f", filepath.Join(repo, "examples")}, common...)...)
	if err != nil || strings.Contains(out, "created") || strings.Contains(out, "updated") {
		t.Errorf("applying the same folder again changed something: %v\n%s", err, out)
	}

	out, err = run(t, append([]string{"publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order", "--key", "1001",
		"--file", filepath.Join(repo, "examples", "order-1001.json")}, common...)...)
	if err != nil || !strings.HasPrefix(out, "published event ") {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	var logs string
	for deadline := time.Now().Add(30 * time.Second); ; {
		logs, err = run(t, append([]string{"logs", "--tenant", "acme", "--remote-id", "1001"}, common...)...)
		if err == nil && strings.Contains(logs, "created") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the order never showed in the log: %v\n%s", err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs, "orders") || !strings.Contains(logs, "success") {
		t.Errorf("log line %q lacks the flow or the status", logs)
	}
	out, err = run(t, append([]string{"logs", "--tenant", "acme", "-o", "json"}, common...)...)
	if err != nil || !strings.Contains(out, `"remoteId": "1001"`) {
		t.Errorf("logs -o json: %v\n%s", err, out)
	}
}

// packageDir is where the tests start (go test runs them in the package's
// folder), kept before any test changes directory.
var packageDir, _ = os.Getwd()

func repoRoot() string { return filepath.Join(packageDir, "..", "..") }

func TestApplyErrorsNameTheFileAndDocument(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, yaml, want string
	}{
		{"misspelt key", "apiVersion: syncline.dev/v1\nkind: Tenant\nmetadata:\n  name: acme\n---\napiVersion: syncline.dev/v1\nkind: Endpoint\nmetdata:\n  name: shop\n", "document 2"},
		{"not YAML", "apiVersion: [\n", "document 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadResources(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadResources = %v, want an error naming %s and %s", err, path, tt.want)
			}
		})
	}
	rs, err := loadResources(filepath.Join(repoRoot(), "examples"))
	if err != nil || len(rs) != 5 {
		t.Fatalf("the examples folder loads %d resources (%v), want 5", len(rs), err)
	}
	if rs[4].Kind != "Flow" || rs[4].Spec.AsMap()["entity"] != "order" {
		t.Errorf("fifth resource = %s %v, want the order flow", rs[4].Kind, rs[4].Spec.AsMap())
	}
}
