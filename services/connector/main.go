// Command connector runs the connector service (target pushes).
// Configuration comes from the environment; see pkg/daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/services/connector/connector"
	"github.com/syncline/syncline/services/connector/connectors"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "connector:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := daemon.ConfigFromEnv("connector")
	if err != nil {
		return err
	}
	rt, err := daemon.Open(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	reg, err := connectors.Builtin()
	if err != nil {
		return err
	}
	flows, err := rt.Flows(ctx)
	if err != nil {
		return err
	}
	box, err := secret.FromEnvIfSet()
	if err != nil {
		return err
	}
	egress, err := connectors.EgressFromEnv(cfg.NATSURL, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	// Integrator tokens are checked against the hashes the control plane
	// publishes with the flow configs.
	opts, err := rt.APIOptions(flows.Index())
	if err != nil {
		return err
	}
	svc, err := connector.New(connector.Deps{
		JetStream: rt.JetStream, Flows: flows.Index(), Connectors: reg, Bus: cfg.Bus,
		Logger: rt.Log, Tracer: rt.Tracer, Metrics: rt.Metrics, Leases: rt.Leases, Secrets: box,
		HandlerOptions: opts, Egress: egress,
	})
	if err != nil {
		return err
	}
	svc.Mount(rt.Mux)
	apiserver.MountReflection(rt.Mux, ingestv1connect.IngestServiceName)
	return rt.Run(ctx, svc)
}
