// Command dedup runs the dedup service (the ledger). Configuration comes from
// the environment; see pkg/daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/services/connector/connectors"
	"github.com/syncline/syncline/services/dedup/dedup"
	"github.com/syncline/syncline/services/dedup/ledger"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "dedup:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := daemon.ConfigFromEnv("dedup")
	if err != nil {
		return err
	}
	rt, err := daemon.Open(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	store, err := ledger.New(ctx, rt.DB)
	if err != nil {
		return err
	}
	flows, err := rt.Flows(ctx)
	if err != nil {
		return err
	}
	reg, err := connectors.Builtin()
	if err != nil {
		return err
	}
	svc, err := dedup.New(dedup.Deps{
		JetStream: rt.JetStream, Flows: flows.Index(), Ledger: store, Bus: cfg.Bus,
		Logger: rt.Log, Tracer: rt.Tracer, Metrics: rt.Metrics, Leases: rt.Leases,
		ConfirmCreates: !reg.AllTargetsKeyed(),
	})
	if err != nil {
		return err
	}
	return rt.Run(ctx, svc)
}
