// Command eventlog runs the eventlog service (API log, dead letters and
// failure alerts).
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

	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/services/eventlog/apilog"
	"github.com/syncline/syncline/services/eventlog/deadletter"
	"github.com/syncline/syncline/services/eventlog/eventlog"
)

// spec is what the eventlog reads from the environment.
var spec = daemon.Spec{Name: "eventlog", Summary: "The eventlog: the API log, its reports, dead letters and failure alerts; serves the log and dead-letter APIs.", Store: true, API: true, MasterKey: true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "eventlog:", err)
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
	// Integrator tokens are checked against the hashes the control plane
	// publishes with the flow configs.
	flows, err := rt.Flows(ctx)
	if err != nil {
		return err
	}
	api, err := rt.API(flows.Index())
	if err != nil {
		return err
	}
	store, err := apilog.New(ctx, rt.DB)
	if err != nil {
		return err
	}
	letters, err := deadletter.New(ctx, rt.DB)
	if err != nil {
		return err
	}
	// The master key seals dead letters and opens the tenants' alert secrets.
	box := cfg.Secrets
	if box == nil {
		rt.Log.Warn("dead letters are kept without their events (no replay), and alerts fail, until a master key is set", "variable", secret.EnvMasterKey)
	}
	svc, err := eventlog.New(eventlog.Deps{
		Conn: rt.Conn, JetStream: rt.JetStream, Log: store, Flows: flows.Index(), Bus: rt.Config.Bus,
		Logger: rt.Log, Tracer: rt.Tracer, Metrics: rt.Metrics, Leases: rt.Leases,
		DeadLetters: letters, Secrets: box,
		Alerts: flows.Index(), AlertMetrics: eventlog.NewAlertMetrics(rt.Registry),
		Retention: flows.Index().Retention,
	})
	if err != nil {
		return err
	}
	svc.Mount(api)
	apiserver.MountReflection(rt.Mux, eventlogv1connect.LogServiceName, eventlogv1connect.DeadLetterServiceName)
	return rt.Run(ctx, svc)
}
