// Package daemon is what every service's main shares: reading the
// environment, connecting to NATS and the store, serving metrics and health,
// and running the service until its context ends. Each main stays a page of
// wiring; the services themselves know nothing of processes or signals.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/health"
	"github.com/syncline/syncline/pkg/lifecycle"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/telemetry"
)

// Config is a service process's configuration, from the environment:
//
//	SYNCLINE_NATS_URL       NATS server(s), default nats://127.0.0.1:4222
//	SYNCLINE_DATABASE_URL   postgres://… or sqlite:PATH (services with a store)
//	SYNCLINE_HTTP_ADDR      metrics, health and API, default :8080
//	SYNCLINE_ADMIN_TOKEN    operators' token (services with an API)
//	SYNCLINE_PARTITIONS     partitions of the flow and push subjects, default 4
//	SYNCLINE_REPLICAS       replicas of every stream, default 1
//	SYNCLINE_LOG_LEVEL      debug, info, warn or error; default info
//	OTEL_EXPORTER_OTLP_ENDPOINT  where traces go (OTLP/HTTP); unset: none
type Config struct {
	Service      string
	NATSURL      string
	DatabaseURL  string
	HTTPAddr     string
	AdminToken   string
	LogLevel     string
	OTLPEndpoint string
	Bus          bus.Config
}

// ConfigFromEnv reads Config for the named service.
func ConfigFromEnv(service string) (Config, error) {
	c := Config{
		Service:      service,
		NATSURL:      env("SYNCLINE_NATS_URL", nats.DefaultURL),
		DatabaseURL:  os.Getenv("SYNCLINE_DATABASE_URL"),
		HTTPAddr:     env("SYNCLINE_HTTP_ADDR", ":8080"),
		AdminToken:   os.Getenv("SYNCLINE_ADMIN_TOKEN"),
		LogLevel:     env("SYNCLINE_LOG_LEVEL", "info"),
		OTLPEndpoint: os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"),
		Bus:          bus.DefaultConfig(),
	}
	for _, v := range []struct {
		name string
		dst  *int
	}{{"SYNCLINE_PARTITIONS", &c.Bus.Partitions}, {"SYNCLINE_REPLICAS", &c.Bus.Replicas}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return c, fmt.Errorf("%s=%q is not a number", v.name, s)
			}
			*v.dst = n
		}
	}
	return c, c.Bus.Validate()
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Runtime is a connected process: the things a service's Deps are made of.
type Runtime struct {
	Config    Config
	Log       *slog.Logger
	Conn      *nats.Conn
	JetStream jetstream.JetStream
	Tracer    trace.TracerProvider
	Registry  *prometheus.Registry
	Metrics   *bus.Metrics
	Health    *health.Checker
	Mux       *http.ServeMux
	DB        *sqlstore.DB
	// Leases let replicas of a service share its consumers.
	Leases *bus.Leases

	shutdownTracer func(context.Context) error
	parts          *lifecycle.Group
}

// Open connects to NATS (and the store, if withStore). ctx bounds the
// connecting only.
func Open(ctx context.Context, cfg Config, withStore bool) (*Runtime, error) {
	log, err := telemetry.NewLogger(os.Stderr, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	log = log.With("service", cfg.Service)
	tp, shutdown, err := telemetry.NewTracerProvider(ctx, telemetry.TraceConfig{ServiceName: "syncline-" + cfg.Service, OTLPEndpoint: cfg.OTLPEndpoint})
	if err != nil {
		return nil, err
	}
	rt := &Runtime{
		Config:         cfg,
		Log:            log,
		Tracer:         tp,
		Registry:       prometheus.NewRegistry(),
		Health:         health.NewChecker(),
		Mux:            http.NewServeMux(),
		shutdownTracer: shutdown,
		parts:          lifecycle.NewGroup(log, 30*time.Second),
	}
	rt.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt.Metrics = bus.NewMetrics(rt.Registry)
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("syncline-"+cfg.Service), nats.MaxReconnects(-1))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("connecting to NATS at %s: %w", cfg.NATSURL, err), shutdown(ctx))
	}
	rt.Conn = nc
	rt.Health.Add("nats", health.NATSProbe(nc))
	if rt.JetStream, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	if rt.Leases, err = bus.OpenLeases(ctx, rt.JetStream, cfg.Bus.Replicas); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if withStore {
		if cfg.DatabaseURL == "" {
			rt.Close(ctx)
			return nil, errors.New("SYNCLINE_DATABASE_URL is not set: give a postgres:// URL (or sqlite:PATH for a single replica)")
		}
		if rt.DB, err = sqlstore.Open(ctx, cfg.DatabaseURL); err != nil {
			rt.Close(ctx)
			return nil, err
		}
		rt.Health.Add("store", rt.DB.Ping)
	}
	rt.Mux.Handle("GET /metrics", promhttp.HandlerFor(rt.Registry, promhttp.HandlerOpts{Registry: rt.Registry}))
	rt.Health.Mount(rt.Mux)
	return rt, nil
}

// APIOptions returns the handler options for a service API: the token check,
// for the admin token and the integrator tokens tokens knows (the control
// plane's store, or the flow-config index every other service watches). It
// fails when no admin token is configured, since an API must never run open.
func (rt *Runtime) APIOptions(tokens auth.TokenLookup) ([]connect.HandlerOption, error) {
	if rt.Config.AdminToken == "" {
		return nil, errors.New("SYNCLINE_ADMIN_TOKEN is not set: set a long random token for operators")
	}
	ic, err := auth.NewInterceptor(rt.Config.AdminToken, tokens)
	if err != nil {
		return nil, err
	}
	return []connect.HandlerOption{connect.WithInterceptors(ic)}, nil
}

// Flows adds a flow-config watcher to the parts and returns it; it loads the
// bucket when the runtime starts.
func (rt *Runtime) Flows(ctx context.Context) (*flowconfig.Watcher, error) {
	kv, err := flowconfig.OpenBucket(ctx, rt.JetStream, rt.Config.Bus.Replicas)
	if err != nil {
		return nil, err
	}
	w := flowconfig.NewWatcher(kv, rt.Log)
	rt.parts.Add("flow configs", w)
	return w, nil
}

// Run starts the parts, then the service, then the HTTP server; marks the
// process ready; and on ctx's end stops in reverse: readiness off first, then
// the server, the service, the parts.
func (rt *Runtime) Run(ctx context.Context, service lifecycle.Part) error {
	rt.parts.Add(rt.Config.Service, service)
	rt.parts.Add("http", apiserver.New(rt.Config.HTTPAddr, rt.Mux, rt.Log))
	rt.parts.Add("readiness", lifecycle.Funcs{
		OnStart: func(context.Context) error { rt.Health.SetReady(true); return nil },
		OnStop:  func(context.Context) error { rt.Health.SetReady(false); return nil },
	})
	if err := rt.parts.Start(ctx); err != nil {
		return err
	}
	rt.Log.Info("started", "http", rt.Config.HTTPAddr)
	<-ctx.Done()
	rt.Log.Info("stopping")
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return rt.parts.Stop(stopCtx)
}

// Close releases the connections. Call it after Run returns.
func (rt *Runtime) Close(ctx context.Context) {
	if rt.Conn != nil {
		_ = rt.Conn.Drain()
	}
	if rt.DB != nil {
		rt.DB.Close()
	}
	if err := rt.shutdownTracer(context.WithoutCancel(ctx)); err != nil {
		rt.Log.Warn("flushing traces", "error", err)
	}
}
