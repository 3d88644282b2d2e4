// Package natsserver runs a NATS server with JetStream inside the process:
// the all-in-one mode's bus and the test suites' bus. Services reach it
// through an in-process connection; other programs through an optional
// client listener.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/syncline/syncline/pkg/natsauth"
)

// Config configures an embedded server.
type Config struct {
	// Dir holds JetStream's files.
	Dir string
	// Host and Port of the client listener. Port 0 means no listener (only
	// in-process connections); -1 picks a free port.
	Host string
	Port int
	// SyncInterval is how often JetStream fsyncs; zero keeps the server's
	// default (two minutes). SyncAlways fsyncs every write.
	SyncInterval time.Duration
	SyncAlways   bool
	// Name is the server's name, unique within its cluster; empty is
	// "syncline", fine for a server of its own.
	Name string
	// Cluster, when set, makes the server one node of a JetStream cluster;
	// nil runs it alone.
	Cluster *Cluster
	// Auth, when set, requires credentials on every connection, the
	// in-process ones included: Syncline's own as natsauth.ServiceUser with
	// the password, every other through the auth callout that issuer's
	// responder answers. Nil runs the server open, which only tests do.
	Auth *Auth
}

// Cluster is a server's place in a JetStream cluster: streams with replicas
// (R3) are spread over its nodes and survive the loss of a minority of them.
type Cluster struct {
	// Name is the cluster's, the same on every node.
	Name string
	// Host and Port of the route listener the other nodes connect to; -1
	// picks a free port. A node that restarts must listen where it did, so
	// that the others' routes find it again.
	Host string
	Port int
	// Routes are the other nodes' route URLs (nats://host:port); a route to
	// the node itself is ignored, so every node may be given the same list.
	Routes []string
}

// Auth is an embedded server's authorization.
type Auth struct {
	Issuer          *natsauth.Issuer
	ServicePassword string
}

// Server is a running embedded server.
type Server struct {
	ns   *server.Server
	auth *Auth
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("starting embedded NATS: no JetStream folder given")
	}
	opts := &server.Options{
		ServerName:   cfg.Name,
		Host:         cfg.Host,
		Port:         cfg.Port,
		JetStream:    true,
		StoreDir:     cfg.Dir,
		NoSigs:       true,
		NoLog:        true,
		SyncInterval: cfg.SyncInterval,
		SyncAlways:   cfg.SyncAlways,
		// The pipeline publishes large async batches; the default 64 MB
		// pending limit per client is plenty, but say so explicitly.
		MaxPending: 64 << 20,
	}
	if opts.ServerName == "" {
		opts.ServerName = "syncline"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if c := cfg.Cluster; c != nil {
		if c.Name == "" {
			return nil, errors.New("starting embedded NATS: a cluster needs a name")
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: c.Host, Port: c.Port}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = "127.0.0.1"
		}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("starting embedded NATS: route %q is not a URL such as nats://127.0.0.1:6222", r)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if cfg.Port == 0 {
		opts.DontListen = true
	}
	if cfg.Auth != nil {
		natsauth.ServerOptions(opts, cfg.Auth.Issuer, cfg.Auth.ServicePassword)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("starting embedded NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("starting embedded NATS: not ready after 10s")
	}
	return &Server{ns: ns, auth: cfg.Auth}, nil
}

// Connect opens an in-process connection (no TCP), with opts added.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append(opts, nats.InProcessServer(s.ns), nats.Name(name), nats.MaxReconnects(-1))
	if s.auth != nil {
		opts = append(opts, nats.UserInfo(natsauth.ServiceUser, s.auth.ServicePassword))
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to embedded NATS: %w", err)
	}
	return nc, nil
}

// ClientURL is the client listener's URL, or "" when there is none.
func (s *Server) ClientURL() string {
	if addr := s.ns.Addr(); addr != nil {
		return "nats://" + addr.String()
	}
	return ""
}

// ClusterURL is the route listener's URL, which the other nodes of a
// cluster name in their routes, or "" when the server runs alone.
func (s *Server) ClusterURL() string {
	if addr := s.ns.ClusterAddr(); addr != nil {
		return "nats://" + addr.String()
	}
	return ""
}

// Name is the server's name.
func (s *Server) Name() string { return s.ns.Name() }

// WaitJetStream waits, up to ctx's deadline, until JetStream can take
// requests through this server: at once for a server alone; for a node of a
// cluster, once the cluster has elected a meta leader and this node has
// caught up with it.
func (s *Server) WaitJetStream(ctx context.Context) error {
	for {
		if !s.ns.JetStreamIsClustered() || s.metaLeader() != "" && s.ns.JetStreamIsCurrent() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for JetStream's meta leader on %s: %w", s.Name(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metaLeader is the name of the cluster's meta leader as this server knows
// it, or "".
func (s *Server) metaLeader() string {
	info, err := s.ns.Jsz(nil)
	if err != nil || info.Meta == nil {
		return ""
	}
	return info.Meta.Leader
}

// Stop shuts the server down and waits for it, up to ctx's deadline.
func (s *Server) Stop(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping embedded NATS: %w", ctx.Err())
	}
}
