// Command dedup runs the dedup service (the ledger). Configuration comes from
// the environment; see pkg/daemon.
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

	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/services/dedup/dedup"
	"github.com/syncline/syncline/services/dedup/ledger"
)

// spec is what the dedup reads from the environment.
var spec = daemon.Spec{Name: "dedup", Summary: "The dedup stage: its ledger decides create, update, skip or error for each record.", Store: true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "dedup:", err)
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
	rt, err := daemon.Open(ctx, cfg)
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
	svc, err := dedup.New(dedup.Deps{
		JetStream: rt.JetStream, Flows: flows.Index(), Ledger: store, Bus: rt.Config.Bus,
		Logger: rt.Log, Tracer: rt.Tracer, Metrics: rt.Metrics, Leases: rt.Leases,
	})
	if err != nil {
		return err
	}
	return rt.Run(ctx, svc)
}
