// Command mapper runs the mapper service. Configuration comes from the
// environment; see pkg/daemon.
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
	"github.com/syncline/syncline/services/mapper/mapper"
)

// spec is what the mapper reads from the environment.
var spec = daemon.Spec{Name: "mapper", Summary: "The mapper: turns ingested change events into each matching flow's target records."}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "mapper:", err)
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
	flows, err := rt.Flows(ctx)
	if err != nil {
		return err
	}
	svc, err := mapper.New(mapper.Deps{
		JetStream: rt.JetStream, Flows: flows.Index(), Bus: rt.Config.Bus,
		Logger: rt.Log, Tracer: rt.Tracer, Metrics: rt.Metrics, Leases: rt.Leases,
	})
	if err != nil {
		return err
	}
	return rt.Run(ctx, svc)
}
