package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/natsauth"
	_ "modernc.org/sqlite"

	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/tools/allinone"
)

// run executes the CLI with args and returns what it printed, standard
// output first. Its stdin is empty and not a terminal.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, errOut, err := execute(&globals{in: strings.NewReader("")}, args...)
	return out + errOut, err
}

// execute runs the CLI as g sets it up, printing to buffers, and returns
// what it printed on standard output and standard error.
func execute(g *globals, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	g.out, g.errOut = &out, &errOut
	root := newRootWith(g)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// startInstance starts an all-in-one instance on random ports in a new
// folder and makes that folder the working directory: the example's target
// is erp.db in the tenant's folder, .syncline/tenants/acme/erp.db, and the
// CLI finds the admin token in .syncline/admin-token. Endpoints may reach
// the PostgreSQL server on 127.0.0.1:5432, as `syncline dev --egress-allow`
// lets them. It returns the flags that point the CLI at the instance.
func startInstance(t *testing.T) []string {
	t.Helper()
	t.Chdir(t.TempDir())
	in, err := allinone.New(allinone.Config{DataDir: ".syncline", HTTPAddr: "127.0.0.1:0", NATSPort: -1,
		Egress: sdk.EgressConfig{Allow: []string{"public", "127.0.0.1:5432"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Stop(context.Background()) })
	return []string{"--server", in.APIURL(), "--nats", in.NATSURL()}
}

// cli runs the CLI against one instance.
type cli struct {
	t     *testing.T
	flags []string
}

func newCLI(t *testing.T) cli { return cli{t: t, flags: startInstance(t)} }

// run runs syncline with args and the instance's flags.
func (c cli) run(args ...string) (string, error) {
	c.t.Helper()
	return run(c.t, append(args, c.flags...)...)
}

// must runs syncline and fails the test if it fails.
func (c cli) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("syncline %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// example is the path of a file of the examples folder.
func example(name string) string { return filepath.Join(repoRoot(), "examples", name) }

// TestWalkthrough runs the README's walkthrough against a running instance:
// apply the example, publish the example order, see it in the log; apply
// again and nothing changes.
func TestWalkthrough(t *testing.T) {
	common := startInstance(t)
	repo := repoRoot()

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
	// The README's sqlite3 line reads the order from the tenant's folder.
	db, err := sql.Open("sqlite", filepath.Join(".syncline", "tenants", "acme", "erp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var number string
	if err := db.QueryRow(`SELECT order_number FROM orders WHERE external_ref = '1001'`).Scan(&number); err != nil || number != "SO-1001" {
		t.Errorf("order 1001 in .syncline/tenants/acme/erp.db: %q, %v; want SO-1001", number, err)
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

// TestNATSKey: the key it prints is one the control plane takes.
func TestNATSKey(t *testing.T) {
	out, err := run(t, "nats-key")
	if err != nil {
		t.Fatal(err)
	}
	var pub, seed string
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "issuer"):
			pub = fields[len(fields)-1]
		case strings.HasPrefix(line, "seed"):
			seed = fields[len(fields)-1]
		}
	}
	issuer, err := natsauth.ParseIssuer(seed)
	if err != nil {
		t.Fatalf("the printed seed: %v\n%s", err, out)
	}
	if issuer.PublicKey() != pub {
		t.Errorf("printed issuer %s, the seed's is %s", pub, issuer.PublicKey())
	}
}
