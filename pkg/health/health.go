// Package health answers "is this service ready?" for gRPC health checks and
// Kubernetes probes, from probes of what the service depends on (the bus
// connection, the store). A service is ready only while started and while
// every probe passes.
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/nats-io/nats.go"
)

// Probe reports whether one dependency is usable.
type Probe func(ctx context.Context) error

// Checker holds a service's probes and its started flag.
type Checker struct {
	ready  atomic.Bool
	mu     sync.RWMutex
	probes map[string]Probe
}

var _ grpchealth.Checker = (*Checker)(nil)

// NewChecker returns a checker that is not ready until SetReady(true).
func NewChecker() *Checker {
	return &Checker{probes: map[string]Probe{}}
}

// Add registers a named probe.
func (c *Checker) Add(name string, p Probe) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probes[name] = p
}

// SetReady flips readiness: on after start, off first thing in a stop so
// that traffic drains before anything closes.
func (c *Checker) SetReady(ready bool) { c.ready.Store(ready) }

// Ready runs every probe and returns why the service is not ready, if it is not.
func (c *Checker) Ready(ctx context.Context) error {
	if !c.ready.Load() {
		return errors.New("not started, or stopping")
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	var errs []error
	for name, p := range c.probes {
		if err := p(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Check implements grpchealth.Checker. Every service name answers the same:
// the process is one unit of readiness.
func (c *Checker) Check(ctx context.Context, _ *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Ready(ctx); err != nil {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// Mount adds gRPC health, /readyz and /livez to mux.
func (c *Checker) Mount(mux *http.ServeMux, opts ...connect.HandlerOption) {
	mux.Handle(grpchealth.NewHandler(c, opts...))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := c.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// NATSProbe fails while nc is not connected.
func NATSProbe(nc *nats.Conn) Probe {
	return func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("NATS connection is %s", s)
		}
		return nil
	}
}
