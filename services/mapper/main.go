// Command mapper runs the mapper service. Configuration comes from the
// environment; see pkg/daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/services/mapper/mapper"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "mapper:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := daemon.ConfigFromEnv("mapper")
	if err != nil {
		return err
	}
	rt, err := daemon.Open(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	flows, err := rt.Flows(ctx)
	if err != nil {
		return err
	}
	svc, err := mapper.New(mapper.Deps{
		JetStream: rt.JetStream, Flows: flows.Index(), Bus: cfg.Bus,
		Logger: rt.Log, Tracer: rt.Tracer, Metrics: rt.Metrics, Leases: rt.Leases,
	})
	if err != nil {
		return err
	}
	return rt.Run(ctx, svc)
}
