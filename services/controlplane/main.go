// Command controlplane runs the control plane (resources and the API that
// manages them). Configuration comes from the environment; see pkg/daemon.
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
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/pkg/natsauth"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/services/controlplane/controlplane"
	"github.com/syncline/syncline/services/controlplane/resource"
)

// spec is what the controlplane reads from the environment.
var spec = daemon.Spec{Name: "controlplane", Summary: "The control plane: tenants, integrators, endpoints, flows and tokens, their API, and the compiled flow configs the data plane watches.", Store: true, API: true, MasterKey: true, Callout: true, Egress: true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
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
	store, err := resource.New(ctx, rt.DB)
	if err != nil {
		return err
	}
	api, err := rt.API(store)
	if err != nil {
		return err
	}
	// Without a master key the control plane runs, but refuses endpoints
	// with credentials, saying why.
	box := cfg.Secrets
	if box == nil {
		rt.Log.Warn("endpoint credentials are refused until a master key is set", "variable", secret.EnvMasterKey)
	}
	// With the callout issuer's seed, the control plane answers the NATS
	// server's auth callout: publishers connect with the same tokens the
	// API takes.
	if cfg.CalloutIssuer != nil {
		rt.Add("NATS auth callout", natsauth.NewResponder(rt.Conn, cfg.CalloutIssuer, cfg.AdminToken, store, rt.Log))
	} else {
		rt.Log.Warn("the NATS auth callout is not answered: publishers cannot connect with tokens until it is set", "variable", natsauth.EnvCalloutSeed)
	}
	svc, err := controlplane.New(controlplane.Deps{
		JetStream: rt.JetStream, Resources: store, Connectors: reg, Bus: cfg.Bus,
		Logger: rt.Log, Secrets: box, Egress: egress,
	})
	if err != nil {
		return err
	}
	svc.Mount(api)
	apiserver.MountReflection(rt.Mux, controlplanev1connect.ResourceServiceName)
	return rt.Run(ctx, svc)
}
