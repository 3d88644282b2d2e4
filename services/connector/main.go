// Command connector runs the connector service (target pushes, the ingest
// API and the webhook receiver).
// Configuration comes from the environment; see pkg/daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/syncline/syncline/connectors"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/services/connector/connector"
)

// spec is what the connector reads from the environment.
var spec = daemon.Spec{Name: "connector", Summary: "The connector: pushes each flow's records to its target system and reports every outcome; serves the ingest API and receives webhooks.", API: true, MasterKey: true, Egress: true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "connector:", err)
		os.Exit(1)
	}
}

// run runs the service until ctx ends; --help writes the usage to stdout
// and returns flag.ErrHelp.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := daemon.Load(spec, args, stdout)
	if err != nil {
		return err
	}
	// The egress policy is configuration too: checked before anything is
	// connected.
	egress, err := connectors.EgressFrom(cfg.NATSURL, cfg.DatabaseURL, cfg.EgressAllow, cfg.EgressFiles, cfg.EgressProtect)
	if err != nil {
		return err
	}
	rt, err := daemon.Open(ctx, cfg)
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
	box := cfg.Secrets
	// Integrator tokens are checked against the hashes the control plane
	// publishes with the flow configs.
	api, err := rt.API(flows.Index())
	if err != nil {
		return err
	}
	budgetMetrics, err := sdk.NewBudgetMetrics(rt.Registry)
	if err != nil {
		return err
	}
	pollMetrics, err := connector.NewPollMetrics(rt.Registry)
	if err != nil {
		return err
	}
	svc, err := connector.New(connector.Deps{
		JetStream: rt.JetStream, Flows: flows.Index(), Connectors: reg, Bus: rt.Config.Bus,
		Logger: rt.Log, Tracer: rt.Tracer, Metrics: rt.Metrics, Leases: rt.Leases, Secrets: box,
		Egress: egress, BudgetMetrics: budgetMetrics, PollMetrics: pollMetrics,
	})
	if err != nil {
		return err
	}
	svc.Mount(api)
	// Webhook senders sign with their endpoint's secret and hold no
	// Syncline token: the receiver is on the open mux.
	svc.MountHooks(rt.Mux)
	apiserver.MountReflection(rt.Mux, ingestv1connect.IngestServiceName)
	return rt.Run(ctx, svc)
}
