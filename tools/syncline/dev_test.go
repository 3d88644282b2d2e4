package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startDev runs `syncline dev` in-process on random ports with the data
// folder dataDir and args, as a person runs it in a terminal, and waits
// until it has written its addresses there. The test's cleanup stops it as Ctrl-C does
// and fails the test if it did not stop cleanly.
func startDev(t *testing.T, dataDir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	g := &globals{in: strings.NewReader(""), out: &lockedBuffer{}, errOut: &lockedBuffer{}}
	root := newRootWith(g)
	root.SetArgs(append([]string{"dev", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--nats-port", "-1", "--log-level", "error"}, args...))
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("syncline dev stopped with %v", err)
		}
	})
	for deadline := time.Now().Add(time.Minute); ; {
		if _, err := os.Stat(filepath.Join(dataDir, addressesFile)); err == nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("syncline dev ended before it served: %v\n%s", err, g.errOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("syncline dev wrote no %s within a minute\n%s", addressesFile, g.errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clearClientEnv keeps the environment of whoever runs the tests from
// pointing the CLI elsewhere.
func clearClientEnv(t *testing.T) {
	for _, name := range []string{"SYNCLINE_SERVER", "SYNCLINE_NATS_URL", "SYNCLINE_TOKEN", "SYNCLINE_DATA_DIR"} {
		t.Setenv(name, "")
	}
}

// TestClientsFindDevByItsDataFolder runs `syncline dev` on random ports and
// reaches its API, its NATS and its admin token with nothing but its data
// folder, given as --data-dir or as SYNCLINE_DATA_DIR.
func TestClientsFindDevByItsDataFolder(t *testing.T) {
	clearClientEnv(t)
	dir := filepath.Join(t.TempDir(), "somewhere else")
	startDev(t, dir)

	if out, err := run(t, "apply", "-f", example("orders.yaml"), "--data-dir", dir); err != nil || !strings.Contains(out, "tenant acme created") {
		t.Fatalf("apply --data-dir: %v\n%s", err, out)
	}
	if out, err := run(t, "publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order", "--key", "1001",
		"--file", example("order-1001.json"), "--data-dir", dir); err != nil || !strings.HasPrefix(out, "published event ") {
		t.Fatalf("publish --data-dir: %v\n%s", err, out)
	}
	t.Setenv("SYNCLINE_DATA_DIR", dir)
	if out, err := run(t, "get", "flows", "--tenant", "acme"); err != nil || !strings.Contains(out, "orders") {
		t.Fatalf("get flows with SYNCLINE_DATA_DIR: %v\n%s", err, out)
	}
}

// TestUnreachableSaysHowToPointElsewhere: a client that finds nothing at
// the address it resolved names the flags and variables that choose it.
func TestUnreachableSaysHowToPointElsewhere(t *testing.T) {
	clearClientEnv(t)
	dir := t.TempDir()
	// A dev instance that has stopped leaves its addresses behind.
	if err := writeAddresses(dir, addresses{API: "http://127.0.0.1:1", NATS: "nats://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "get", "tenants", "--data-dir", dir, "--token", "sla_not-used-here")
	for _, want := range []string{"cannot reach the API at http://127.0.0.1:1", "--server", "SYNCLINE_SERVER", "--data-dir", "SYNCLINE_DATA_DIR"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("get tenants against a stopped dev = %v, want it to say %q", err, want)
		}
	}
	_, err = run(t, "publish", "--tenant", "acme", "--endpoint", "shop", "--entity", "order", "--key", "1", "--data", "{}", "--data-dir", dir, "--token", "sla_not-used-here")
	for _, want := range []string{"connecting to NATS at nats://127.0.0.1:1", "--nats", "SYNCLINE_NATS_URL", "--data-dir", "SYNCLINE_DATA_DIR"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("publish against a stopped dev = %v, want it to say %q", err, want)
		}
	}
	_, err = run(t, "get", "tenants", "--data-dir", filepath.Join(dir, "nothing here"))
	if err == nil || !strings.Contains(err.Error(), "--data-dir") || !strings.Contains(err.Error(), "admin-token") {
		t.Errorf("get tenants without a token = %v, want it to name --data-dir and the admin-token file", err)
	}
}

// lockedBuffer is a buffer that a command running in another goroutine
// writes while the test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
func TestDevTraceEndpoints(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces.example.com/in"}
	getenv := func(k string) string { return env[k] }
	if cfg := devTrace("http://env.example.com:4318", false, getenv); cfg.OTLPEndpoint != "http://env.example.com:4318" || cfg.OTLPTracesEndpoint != "http://traces.example.com/in" {
		t.Errorf("from the environment: %+v, want the base URL and the traces URL (which wins)", cfg)
	}
	if cfg := devTrace("http://flag.example.com:4318", true, getenv); cfg.OTLPEndpoint != "http://flag.example.com:4318" || cfg.OTLPTracesEndpoint != "" {
		t.Errorf("with --otlp-endpoint: %+v, want the flag's base URL only", cfg)
	}
}

func TestDevRefusesAMalformedOTLPEndpoint(t *testing.T) {
	_, err := run(t, "dev", "--otlp-endpoint", "otel-collector:4318", "--data-dir", t.TempDir(), "--nats-port", "-1", "--http-addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), `"otel-collector:4318"`) || !strings.Contains(err.Error(), "http://otel-collector:4318") {
		t.Errorf("syncline dev --otlp-endpoint otel-collector:4318 = %v, want an error naming it and showing the form", err)
	}
}
