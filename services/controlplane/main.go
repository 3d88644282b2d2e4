// Command controlplane runs the control plane (resources and the API that
// manages them). Configuration comes from the environment; see pkg/daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/services/connector/connectors"
	"github.com/syncline/syncline/services/controlplane/controlplane"
	"github.com/syncline/syncline/services/controlplane/resource"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := daemon.ConfigFromEnv("controlplane")
	if err != nil {
		return err
	}
	rt, err := daemon.Open(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	reg, err := connectors.Builtin()
	if err != nil {
		return err
	}
	store, err := resource.New(ctx, rt.DB)
	if err != nil {
		return err
	}
	opts, err := rt.APIOptions(store)
	if err != nil {
		return err
	}
	// Without a master key the control plane runs, but refuses endpoints
	// with credentials, saying why.
	box, err := secret.FromEnvIfSet()
	if err != nil {
		return err
	}
	if box == nil {
		rt.Log.Warn("endpoint credentials are refused until a master key is set", "variable", secret.EnvMasterKey)
	}
	egress, err := connectors.EgressFromEnv(cfg.NATSURL, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	svc, err := controlplane.New(controlplane.Deps{
		JetStream: rt.JetStream, Resources: store, Connectors: reg, Bus: cfg.Bus,
		Logger: rt.Log, HandlerOptions: opts, Secrets: box, Egress: egress,
	})
	if err != nil {
		return err
	}
	svc.Mount(rt.Mux)
	apiserver.MountReflection(rt.Mux, controlplanev1connect.ResourceServiceName)
	return rt.Run(ctx, svc)
}
