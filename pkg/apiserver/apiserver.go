// Package apiserver serves a service's HTTP port: its API (gRPC, gRPC-Web and
// JSON over HTTP through connect), gRPC health, and Prometheus metrics, over
// HTTP/1.1 and unencrypted HTTP/2 on one listener.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
)

// Server is an HTTP server with an explicit start and stop.
type Server struct {
	addr string
	srv  *http.Server
	ln   net.Listener
	log  *slog.Logger
	done chan struct{}
}

// New returns a server for handler on addr ("127.0.0.1:0" picks a port).
func New(addr string, handler http.Handler, log *slog.Logger) *Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &Server{
		addr: addr,
		log:  log,
		srv: &http.Server{
			Handler:           handler,
			Protocols:         &protocols,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
}

// Start listens and serves in the background. The address is bound when
// Start returns, so Addr is valid.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serving HTTP", "addr", ln.Addr().String(), "error", err)
		}
	}()
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.addr
	}
	return s.ln.Addr().String()
}

// Stop stops accepting, lets requests in flight finish until ctx ends, then
// closes what is left.
func (s *Server) Stop(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	if err != nil {
		return fmt.Errorf("stopping HTTP server on %s: %w", s.Addr(), err)
	}
	return nil
}

// MountReflection serves gRPC server reflection for the named services, so
// that grpcurl and similar tools can list and call them without the protos.
func MountReflection(mux *http.ServeMux, services ...string) {
	r := grpcreflect.NewStaticReflector(append(services, grpchealth.HealthV1ServiceName)...)
	mux.Handle(grpcreflect.NewHandlerV1(r, ProbeLimit.Option()))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(r, ProbeLimit.Option()))
}
