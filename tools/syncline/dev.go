package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncline/syncline/pkg/natsauth"
	"github.com/syncline/syncline/pkg/telemetry"
	"github.com/syncline/syncline/tools/allinone"
)

func newDev(g *globals) *cobra.Command {
	var cfg allinone.Config
	var logLevel, otlp string
	var egressAllow []string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run all of Syncline in one process (embedded NATS and SQLite by default)",
		Long: `Run all five services in one process.

By default NATS JetStream runs embedded (client port 7422) and every store is a
SQLite file in the data folder, so nothing else needs to be installed. Pass
--database-url and --nats-url to run against real servers instead (with
SYNCLINE_NATS_USER, SYNCLINE_NATS_PASSWORD and SYNCLINE_NATS_CALLOUT_SEED for
a NATS server set up as the README shows). The embedded NATS server takes
only tokens: an integrator's (its own tenant's ingest subjects) or the admin
token.
Endpoints reach public addresses and, for SQLite files, the tenant's folder
in the data folder (tenants/<tenant>; a relative path is in it); a database
on this machine or your network needs --egress-allow, e.g.
--egress-allow public,127.0.0.1:5432. Syncline's own stores and NATS server
are never reachable.
Ctrl-C stops cleanly: stages finish the batch in hand and leave the rest
unacknowledged for the next start; nothing is lost.`,
		Args: cobra.NoArgs,
		// dev serves the addresses the other commands look up; it looks up none.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := telemetry.NewLogger(os.Stderr, logLevel)
			if err != nil {
				return err
			}
			trace := devTrace(otlp, cmd.Flags().Changed("otlp-endpoint"), os.Getenv)
			tp, shutdown, err := telemetry.NewTracerProvider(cmd.Context(), trace)
			if err != nil {
				return err
			}
			defer func() { _ = shutdown(context.Background()) }()
			cfg.DataDir, cfg.Logger, cfg.Tracer = g.dataDir, log, tp
			if len(egressAllow) > 0 {
				cfg.Egress.Allow = egressAllow
			}
			// An external NATS server: the services' credentials and the
			// callout key come from the environment, as for the services.
			cfg.NATS, cfg.NATSCalloutSeed = natsauth.CredentialsFromEnv(), os.Getenv(natsauth.EnvCalloutSeed)
			in, err := allinone.New(cfg)
			if err != nil {
				return err
			}
			startCtx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if err := in.Start(startCtx); err != nil {
				return err
			}
			if err := writeAddresses(g.dataDir, addresses{API: in.APIURL(), NATS: in.NATSURL()}); err != nil {
				return errors.Join(err, in.Stop(context.WithoutCancel(cmd.Context())))
			}
			printWelcome(g, in)
			<-cmd.Context().Done()
			fmt.Fprintln(g.errOut, "stopping…")
			stopCtx, cancelStop := context.WithTimeout(context.Background(), time.Minute)
			defer cancelStop()
			if err := in.Stop(stopCtx); err != nil {
				return err
			}
			fmt.Fprintln(g.errOut, "stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.HTTPAddr, "http-addr", allinone.DefaultHTTPAddr, "address of the API, metrics and health")
	f.IntVar(&cfg.NATSPort, "nats-port", allinone.DefaultNATSPort, "client port of the embedded NATS server (-1: random)")
	f.StringVar(&cfg.NATSURL, "nats-url", "", "use this NATS server instead of the embedded one")
	f.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("SYNCLINE_DATABASE_URL"), "PostgreSQL URL for every store instead of SQLite files ($SYNCLINE_DATABASE_URL)")
	f.StringVar(&cfg.AdminToken, "admin-token", os.Getenv("SYNCLINE_ADMIN_TOKEN"), "admin token ($SYNCLINE_ADMIN_TOKEN; default: generated once, kept in the data folder)")
	f.DurationVar(&cfg.NATSSyncInterval, "nats-sync-interval", 0, "how often embedded NATS fsyncs (default: JetStream's two minutes)")
	f.StringSliceVar(&egressAllow, "egress-allow", splitEnv("SYNCLINE_EGRESS_ALLOW"), "what endpoints may reach, comma-separated: public, addresses or CIDR ranges with an optional :port, host names ($SYNCLINE_EGRESS_ALLOW; default public)")
	f.StringVar(&cfg.TraceURL, "trace-url", os.Getenv("SYNCLINE_TRACE_URL"), "the web console's link to a trace, with {traceId} where the id goes, e.g. http://127.0.0.1:16686/trace/{traceId} for Jaeger ($SYNCLINE_TRACE_URL)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&otlp, "otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "base URL of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318; traces go to its /v1/traces ($OTEL_EXPORTER_OTLP_ENDPOINT; $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is)")
	return cmd
}

// devTrace says where `syncline dev` sends traces: otlp is --otlp-endpoint,
// whose default is $OTEL_EXPORTER_OTLP_ENDPOINT. A flag given on the command
// line wins over the environment; otherwise
// $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT wins over the base URL, as in every
// OpenTelemetry SDK.
func devTrace(otlp string, flagGiven bool, getenv func(string) string) telemetry.TraceConfig {
	cfg := telemetry.TraceConfig{ServiceName: "syncline-dev", OTLPEndpoint: otlp}
	if !flagGiven {
		cfg.OTLPTracesEndpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	}
	return cfg
}

// splitEnv reads a comma-separated list from the environment.
func splitEnv(name string) []string {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func printWelcome(g *globals, in *allinone.Instance) {
	fmt.Fprintf(g.out, `Syncline is running (all five services in one process).

  console    %[1]s/   (sign in with the admin token)
  API        %[1]s   (gRPC, gRPC-Web and JSON over HTTP)
  metrics    %[1]s/metrics
  health     %[1]s/readyz
  NATS       %[2]s   (publish change events here, with a token as the NATS token)
  data       %[3]s   (back it up: its master-key file, or $SYNCLINE_MASTER_KEY, decrypts credentials and dead letters)
  admin token %[4]s

The other syncline commands find the API, NATS and the admin token in the
data folder (addresses.json, admin-token); from another folder, give them
--data-dir %[5]s (or set SYNCLINE_DATA_DIR).

Try it (in another terminal, same folder):
  syncline apply -f examples/orders.yaml
  syncline publish --tenant acme --endpoint shop --entity order --key 1001 --file examples/order-1001.json
  syncline logs --tenant acme

Ctrl-C stops it cleanly.
`, in.APIURL(), in.NATSURL(), g.dataDir, in.AdminToken(), absolute(g.dataDir))
}

// absolute is path made absolute, for a hint to use in another folder; path
// as it is if the working directory is unknown.
func absolute(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
