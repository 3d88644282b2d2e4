// Package natstest starts an embedded NATS JetStream server for a test, in a
// temporary folder, stopped when the test ends.
package natstest

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/natsserver"
)

// Run starts a server with a client listener on a random port.
func Run(t testing.TB) *natsserver.Server {
	t.Helper()
	return RunIn(t, t.TempDir())
}

// RunIn starts a server whose JetStream files live in dir, so a test can stop
// it and start another on the same files.
func RunIn(t testing.TB, dir string) *natsserver.Server {
	t.Helper()
	return start(t, dir, -1)
}

// Restart stops s, whose JetStream files live in dir, and starts another
// server on the same port and files, as a server restarts: what it kept in
// files is there again, what it kept in memory (key-value buckets in
// memory, say) is gone. Connections from Dial reconnect to it.
func Restart(t testing.TB, s *natsserver.Server, dir string) *natsserver.Server {
	t.Helper()
	_, port, err := net.SplitHostPort(s.ClientURL()[len("nats://"):])
	if err != nil {
		t.Fatalf("restarting NATS: reading the port of %s: %v", s.ClientURL(), err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("restarting NATS: reading the port of %s: %v", s.ClientURL(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("restarting NATS: %v", err)
	}
	return start(t, dir, p)
}

func start(t testing.TB, dir string, port int) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{Dir: dir, Port: port})
	if err != nil {
		t.Fatalf("starting NATS: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

// Connect opens a connection to s, closed when the test ends.
func Connect(t testing.TB, s *natsserver.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := s.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Dial opens a connection to s over TCP that reconnects for as long as the
// test runs, so that it outlives a Restart; closed when the test ends.
func Dial(t testing.TB, s *natsserver.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Name(t.Name()), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
