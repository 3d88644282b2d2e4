// Command controlplane runs the control plane (resources and the API that
// manages them). Configuration comes from the environment; see pkg/daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"connectrpc.com/connect"

	"github.com/syncline/syncline/connectors"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/daemon"
	"github.com/syncline/syncline/pkg/lifecycle"
	"github.com/syncline/syncline/pkg/natsauth"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/services/controlplane/console"
	"github.com/syncline/syncline/services/controlplane/controlplane"
	"github.com/syncline/syncline/services/controlplane/resource"
)

// spec is what the controlplane reads from the environment.
var spec = daemon.Spec{Name: "controlplane", Summary: "The control plane: tenants, integrators, endpoints, flows and tokens, their API, and the compiled flow configs the data plane watches.", Store: true, API: true, MasterKey: true, Callout: true, Egress: true, Console: true}

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
	api, err := rt.API(store, controlplanev1connect.ResourceServiceName)
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
		JetStream: rt.JetStream, Resources: store, Connectors: reg, Bus: rt.Config.Bus,
		Logger: rt.Log, Secrets: box, Egress: egress,
	})
	if err != nil {
		return err
	}
	svc.Mount(api)
	apiserver.MountReflection(rt.Mux, controlplanev1connect.ResourceServiceName)
	web, err := newConsole(cfg, rt, box)
	if err != nil {
		return err
	}
	rt.Mux.Handle("/", web.Handler())
	rt.Add("console live pages", lifecycle.Funcs{OnStop: func(context.Context) error { web.Close(); return nil }})
	return rt.Run(ctx, svc)
}

// newConsole makes the web console: the resource API in process, and the eventlog
// service's API (the API log, reports, dead letters) at SYNCLINE_EVENTLOG_URL, each call
// with the signed-in user's token, which the eventlog checks itself.
func newConsole(cfg daemon.Config, rt *daemon.Runtime, box *secret.Box) (*console.Console, error) {
	apis := http.NewServeMux()
	apis.Handle("/"+controlplanev1connect.ResourceServiceName+"/", rt.APIHandler)
	eventlog := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := connect.NewError(connect.CodeUnavailable, errors.New("this control plane does not know the eventlog service: set SYNCLINE_EVENTLOG_URL to its API, e.g. http://eventlog:7400"))
		_ = connect.NewErrorWriter().Write(w, r, err)
	}))
	if cfg.EventlogURL != "" {
		target, err := url.Parse(cfg.EventlogURL)
		if err != nil {
			return nil, err
		}
		eventlog = httputil.NewSingleHostReverseProxy(target)
	}
	for _, service := range []string{eventlogv1connect.LogServiceName, eventlogv1connect.DeadLetterServiceName} {
		apis.Handle("/"+service+"/", eventlog)
	}
	if box == nil {
		// Sessions sealed with a key of this process: they end when it does, and another
		// replica does not take them.
		key, err := secret.NewKey()
		if err != nil {
			return nil, err
		}
		raw, err := secret.ParseKey(key)
		if err != nil {
			return nil, err
		}
		if box, err = secret.New(raw); err != nil {
			return nil, err
		}
		rt.Log.Warn("the web console's sign-ins last only as long as this process, on this replica, until a master key is set", "variable", secret.EnvMasterKey)
	}
	return console.New(console.Config{API: apis, Sessions: box, TraceURL: cfg.TraceURL, Logger: rt.Log})
}
