// Command eventlog runs the eventlog service (API log and dead letters).
// Configuration comes from the environment; see pkg/daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/services/eventlog/apilog"
	"github.com/syncline/syncline/services/eventlog/eventlog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "eventlog:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := daemon.ConfigFromEnv("eventlog")
	if err != nil {
		return err
	}
	rt, err := daemon.Open(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	// Integrator tokens are checked against the hashes the control plane
	// publishes with the flow configs.
	flows, err := rt.Flows(ctx)
	if err != nil {
		return err
	}
	opts, err := rt.APIOptions(flows.Index())
	if err != nil {
		return err
	}
	store, err := apilog.New(ctx, rt.DB)
	if err != nil {
		return err
	}
	svc, err := eventlog.New(eventlog.Deps{
		Conn: rt.Conn, JetStream: rt.JetStream, Log: store, Flows: flows.Index(), Bus: cfg.Bus,
		Logger: rt.Log, Metrics: rt.Metrics, Leases: rt.Leases, HandlerOptions: opts,
	})
	if err != nil {
		return err
	}
	svc.Mount(rt.Mux)
	apiserver.MountReflection(rt.Mux, eventlogv1connect.LogServiceName)
	return rt.Run(ctx, svc)
}
