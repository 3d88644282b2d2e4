package natstest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/natsserver"
)

// Cluster is a JetStream cluster of embedded servers on loopback, each with
// its files in a folder of its own, for tests of what replicated streams
// survive. A node can be stopped and started again on the same ports and
// files, as a server restarts.
type Cluster struct {
	t     testing.TB
	name  string
	dirs  []string
	ports []int // client ports
	// routePorts are the nodes' route ports, routes their URLs.
	routePorts []int
	routes     []string

	mu      sync.Mutex
	servers []*natsserver.Server // nil while a node is stopped
}

// RunCluster starts a cluster of n servers (3 for R3 streams) and waits
// until JetStream has a meta leader; every node still running is stopped
// when the test ends. The ports are picked free before the servers start,
// since each node's routes name every node's route port.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, name: "syncline-test", servers: make([]*natsserver.Server, n)}
	ports := freePorts(t, 2*n)
	for i := range n {
		c.dirs = append(c.dirs, filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i)))
		c.ports = append(c.ports, ports[2*i])
		c.routePorts = append(c.routePorts, ports[2*i+1])
		c.routes = append(c.routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[2*i+1]))
	}
	t.Cleanup(func() {
		for i := range n {
			if c.Running(i) {
				c.Stop(i)
			}
		}
	})
	for i := range n {
		s, err := c.startNode(i)
		if err != nil {
			t.Fatalf("starting NATS node %d: %v", i, err)
		}
		c.servers[i] = s
	}
	c.WaitJetStream()
	return c
}

// Size is the number of nodes.
func (c *Cluster) Size() int { return len(c.dirs) }

// URLs is every node's client URL, comma-separated, as NATS clients (and
// SYNCLINE_NATS_URL) take them: a client reconnects to another node when
// its own stops.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.ports))
	for i, p := range c.ports {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	return strings.Join(urls, ",")
}

// Server is node i, or nil while it is stopped.
func (c *Cluster) Server(i int) *natsserver.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Running reports whether node i runs.
func (c *Cluster) Running(i int) bool { return c.Server(i) != nil }

// Stop stops node i.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s == nil {
		c.t.Fatalf("stopping NATS node %d: it is not running", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		c.t.Errorf("stopping NATS node %d: %v", i, err)
	}
}

// Start starts node i again on its ports and files and waits until it has
// caught up with the cluster's meta leader.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("starting NATS node %d: it is running", i)
	}
	s, err := c.startNode(i)
	if err != nil {
		c.t.Fatalf("starting NATS node %d again: %v", i, err)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitJetStream(ctx); err != nil {
		c.t.Fatalf("NATS node %d started again: %v", i, err)
	}
}

// WaitJetStream waits until every running node has caught up with the
// cluster's meta leader.
func (c *Cluster) WaitJetStream() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range c.dirs {
		if s := c.Server(i); s != nil {
			if err := s.WaitJetStream(ctx); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

func (c *Cluster) startNode(i int) (*natsserver.Server, error) {
	return natsserver.Start(natsserver.Config{
		Dir:  c.dirs[i],
		Port: c.ports[i],
		Name: fmt.Sprintf("n%d", i),
		Cluster: &natsserver.Cluster{
			Name: c.name, Port: c.routePorts[i], Routes: c.routes,
		},
	})
}

// freePorts returns n ports that were free a moment ago. They are picked all
// at once, holding each listener until all are picked, so that no two are
// the same.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("picking a free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
