// Package natstest starts an embedded NATS JetStream server for a test, in a
// temporary folder, stopped when the test ends.
package natstest

import (
	"context"
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
	s, err := natsserver.Start(natsserver.Config{Dir: dir, Port: -1})
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
