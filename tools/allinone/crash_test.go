package allinone_test

import (
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natsauth"
)

// TestKilledAndRestarted kills `syncline dev` (SIGKILL: no drain, no stop)
// while events are in flight, starts it again on the same data folder, and
// checks that every published event reached the target exactly once in
// effect: one row per key with its content, one created record per event.
func TestKilledAndRestarted(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	httpAddr, natsPort := freeAddr(t), freePort(t)
	const token = "crash-test-admin-token-0123456789"
	run := devProcess(t, data, httpAddr, natsPort, token)

	first := run()
	opts := connect.WithInterceptors(auth.Bearer(token))
	e := &env{t: t, dir: data, driver: "sqlite", dsn: tenantFile(t, data, "acme", "erp.db")}
	e.resource = controlplanev1connect.NewResourceServiceClient(http.DefaultClient, "http://"+httpAddr, opts)
	e.logs = eventlogv1connect.NewLogServiceClient(http.DefaultClient, "http://"+httpAddr, opts)
	e.applyOrders("acme", "orders")

	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	// A publisher's connection: the admin token, through the auth callout.
	nc, err := nats.Connect(natsURL, natsauth.ClientOptions(token)...)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	e.pub = ingest.NewPublisher(js, nil)
	const n = 20000
	e.publishOrders(n)
	nc.Close()

	// Kill it mid-way: some rows written, not all.
	eventually(t, 60*time.Second, func() string {
		if c := countRows(t, e.dsn); c < 2000 {
			return fmt.Sprintf("only %d rows before the kill", c)
		}
		return ""
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	before := countRows(t, e.dsn)
	if before >= n {
		t.Fatalf("all %d rows were written before the kill: nothing was in flight", n)
	}
	t.Logf("killed with %d of %d rows written", before, n)

	run()
	eventually(t, 120*time.Second, func() string {
		if c := countRows(t, e.dsn); c != n {
			return fmt.Sprintf("after the restart the target has %d rows, want %d", c, n)
		}
		return ""
	})
	rows := e.rows("orders")
	for i := range n {
		r, ok := rows[strconv.Itoa(i)]
		if !ok || r.orderNumber != "SO-"+strconv.Itoa(i) || r.version != 1 {
			t.Fatalf("row %d = %+v (present %v), want SO-%d version 1", i, r, ok, i)
		}
	}
	e.waitCreatedOnly(n)
}

func countRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM orders").Scan(&n); err != nil {
		return 0
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func freeAddr(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(freePort(t))
}

// devProcess builds syncline and returns a function that starts `syncline dev` on data, the
// addresses and the admin token given, with extra arguments, as a process of its own, and
// waits until it is ready. Each process is killed when the test ends.
func devProcess(t *testing.T, data, httpAddr string, natsPort int, token string, extra ...string) func() *exec.Cmd {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "syncline")
	build := exec.Command("go", "build", "-o", bin, "./syncline")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building syncline: %v\n%s", err, out)
	}
	return func() *exec.Cmd {
		args := append([]string{"dev", "--data-dir", data, "--http-addr", httpAddr,
			"--nats-port", strconv.Itoa(natsPort), "--admin-token", token, "--log-level", "warn"}, extra...)
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		eventually(t, 30*time.Second, func() string {
			resp, err := http.Get("http://" + httpAddr + "/readyz")
			if err != nil {
				return err.Error()
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return resp.Status
			}
			return ""
		})
		return cmd
	}
}
