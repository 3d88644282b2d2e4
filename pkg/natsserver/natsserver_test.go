package natsserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/natstest"
)

// TestClusterKeepsR3StreamThroughANodeStop forms a cluster of three
// servers, creates a stream with three replicas, and checks that it takes
// and keeps messages while one node is stopped, and that the node started
// again on its files holds them all.
func TestClusterKeepsR3StreamThroughANodeStop(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("creating an R3 stream: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 || info.Cluster.Leader == "" {
		t.Fatalf("stream cluster info = %+v, want a leader and two replicas", info.Cluster)
	}

	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			// A publish that fails while the cluster elects a new leader is retried; the
			// message id keeps a retried message once.
			deadline := time.Now().Add(30 * time.Second)
			for {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := js.Publish(pctx, fmt.Sprintf("r3.%d", i), []byte("m"), jetstream.WithMsgID(fmt.Sprint(i)))
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("publishing message %d: %v", i, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	publish(0, 100)
	// Stop the stream's leader, the node whose loss matters most.
	leader := -1
	for i := range c.Size() {
		if c.Server(i).Name() == info.Cluster.Leader {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("no node is named %q, the stream's leader", info.Cluster.Leader)
	}
	c.Stop(leader)
	publish(100, 200)
	c.Start(leader)

	// The restarted node catches up: read the stream from it alone.
	alone, err := nats.Connect(c.Server(leader).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	ajs, err := jetstream.New(alone)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := ajs.Stream(ctx, "R3")
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err == nil && info.State.Msgs == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart the stream reads %+v (error %v), want 200 messages", info.State, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
