// Package daemon is what every service's main shares: reading the
// environment, connecting to NATS and the store, serving metrics and health,
// and running the service until its context ends. Each main stays a page of
// wiring; the services themselves know nothing of processes or signals.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/health"
	"github.com/syncline/syncline/pkg/lifecycle"
	"github.com/syncline/syncline/pkg/natsauth"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/telemetry"
)

// Spec is what a service is and which parts of the environment it reads:
// Load checks exactly those, every one, before anything is connected, and
// --help lists them.
type Spec struct {
	Name string
	// Summary is the sentence --help starts with: what the service does.
	Summary string
	// Store: the service opens a database (SYNCLINE_DATABASE_URL, required).
	Store bool
	// API: the service serves an API (SYNCLINE_ADMIN_TOKEN, required).
	API bool
	// Console: the service serves the web console (SYNCLINE_EVENTLOG_URL and
	// SYNCLINE_TRACE_URL, optional).
	Console bool
	// MasterKey: the service seals or opens credentials and secrets
	// (SYNCLINE_MASTER_KEY, optional: without it the service runs and
	// refuses what needs it, saying why).
	MasterKey bool
	// Callout: the service answers the NATS server's auth callout
	// (SYNCLINE_NATS_CALLOUT_SEED, optional: without it publishers cannot
	// connect with tokens).
	Callout bool
	// Egress: the service opens tenants' endpoints, within the platform's
	// egress policy (SYNCLINE_EGRESS_ALLOW, SYNCLINE_EGRESS_FILES and
	// SYNCLINE_EGRESS_PROTECT, all optional; the service builds the policy
	// from them with connectors.EgressFrom).
	Egress bool
}

// Variables names the environment variables the service reads, in the
// order --help lists them.
func (s Spec) Variables() []string {
	var names []string
	for _, v := range variables {
		if v.reads(s) {
			names = append(names, v.name)
		}
	}
	return names
}

// Config is a service process's configuration, from the environment; see
// variables for each variable, its default and its check.
type Config struct {
	Service string
	NATSURL string
	// NATS are the process's own credentials on the NATS server.
	NATS natsauth.Credentials
	// CalloutIssuer signs the answers to the NATS auth callout; nil when
	// the process does not answer it.
	CalloutIssuer *natsauth.Issuer
	DatabaseURL   string
	HTTPAddr      string
	AdminToken    string
	LogLevel      string
	OTLPEndpoint  string
	// OTLPTracesEndpoint wins over OTLPEndpoint.
	OTLPTracesEndpoint string
	Bus                bus.Config
	// Secrets seals and opens with the master key; nil without one.
	Secrets *secret.Box
	// EgressAllow, EgressFiles and EgressProtect are the egress policy's
	// variables, checked, as given.
	EgressAllow, EgressFiles, EgressProtect string
	// EventlogURL is the eventlog service's API, which the web console calls for the API
	// log, reports and dead letters; empty: those pages say it is not set.
	EventlogURL string
	// TraceURL is the web console's link to a trace, with {traceId}.
	TraceURL string
}

// variable is one environment variable: who reads it, what --help says of
// it, and how its value (the default when unset) goes into the Config.
type variable struct {
	name, about, def string
	reads            func(Spec) bool
	set              func(c *Config, value string) error
}

func always(Spec) bool { return true }

// variables is every variable a service reads, in the order --help lists
// them. Each error names the variable and what to give instead, and never
// quotes a value that may hold a password or a key.
var variables = []variable{
	{name: "SYNCLINE_NATS_URL", def: nats.DefaultURL, reads: always,
		about: "NATS server, or a comma-separated list; credentials may go in the URL",
		set: func(c *Config, v string) error {
			for i, server := range strings.Split(v, ",") {
				server = strings.TrimSpace(server)
				if !strings.Contains(server, "://") {
					server = "nats://" + server
				}
				u, err := url.Parse(server)
				if err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
					return fmt.Errorf("server %d of the list is not a NATS URL: give nats://HOST:4222 (or tls://, ws://, wss://), several separated by commas", i+1)
				}
			}
			c.NATSURL = v
			return nil
		}},
	{name: natsauth.EnvUser, reads: always,
		about: "the services' NATS user (" + natsauth.ServiceUser + " on a server set up as the README shows); set with " + natsauth.EnvPassword,
		set:   func(c *Config, v string) error { c.NATS.User = v; return nil }},
	{name: natsauth.EnvPassword, reads: always,
		about: "the NATS user's password",
		set: func(c *Config, v string) error {
			if (v == "") != (c.NATS.User == "") {
				return errors.New("is set without " + natsauth.EnvUser + " or missing beside it: set both, or neither")
			}
			c.NATS.Password = v
			return nil
		}},
	{name: natsauth.EnvCreds, reads: always,
		about: "a NATS credentials file (user JWT and seed) instead of user and password, for a server in operator mode",
		set: func(c *Config, v string) error {
			c.NATS.CredsFile = v
			if v != "" && c.NATS.User != "" {
				return errors.New("is set together with " + natsauth.EnvUser + " and " + natsauth.EnvPassword + ": use one way to connect")
			}
			return optionalFile(natsauth.EnvCreds, v)
		}},
	{name: natsauth.EnvTLSCA, reads: always,
		about: "CA file that verifies the NATS server's certificate",
		set:   func(c *Config, v string) error { c.NATS.TLSCA = v; return optionalFile(natsauth.EnvTLSCA, v) }},
	{name: natsauth.EnvTLSCert, reads: always,
		about: "client certificate file, for a NATS server that asks for one (with " + natsauth.EnvTLSKey + ")",
		set:   func(c *Config, v string) error { c.NATS.TLSCert = v; return optionalFile(natsauth.EnvTLSCert, v) }},
	{name: natsauth.EnvTLSKey, reads: always,
		about: "the client certificate's key file",
		set: func(c *Config, v string) error {
			c.NATS.TLSKey = v
			switch {
			case v == "" && c.NATS.TLSCert != "":
				return errors.New("is not set, but " + natsauth.EnvTLSCert + " is: set both, or neither")
			case v != "" && c.NATS.TLSCert == "":
				return errors.New("is set without " + natsauth.EnvTLSCert + ": set both, or neither")
			}
			return optionalFile(natsauth.EnvTLSKey, v)
		}},
	{name: natsauth.EnvCalloutSeed, reads: func(s Spec) bool { return s.Callout },
		about: "the NATS auth callout issuer's seed (make one with `syncline nats-key`); with it, publishers connect to NATS with their tokens; unset: they cannot",
		set: func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			var err error
			c.CalloutIssuer, err = natsauth.ParseIssuer(v)
			return err
		}},
	{name: "SYNCLINE_DATABASE_URL", reads: func(s Spec) bool { return s.Store },
		about: "required: postgres://USER:PASSWORD@HOST:5432/DB?sslmode=… (or sqlite:PATH for a single replica)",
		set: func(c *Config, v string) error {
			switch {
			case v == "":
				return errors.New("is not set: give a postgres:// URL (or sqlite:PATH for a single replica)")
			case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"), strings.HasPrefix(v, "sqlite:"),
				strings.HasSuffix(v, ".db") && !strings.Contains(v, "://"):
				c.DatabaseURL = v
				return nil
			}
			return errors.New("is neither postgres://… nor sqlite:PATH: give postgres://USER:PASSWORD@HOST:5432/DB (or sqlite:PATH for a single replica)")
		}},
	{name: connector.EnvEgressAllow, reads: func(s Spec) bool { return s.Egress },
		about: "what tenants' endpoints may reach: rules such as 10.0.0.0/8, erp.internal:5432, private or none, comma-separated; unset: public addresses",
		set: func(c *Config, v string) error {
			if v != "" {
				if _, err := connector.NewEgress(connector.EgressConfig{Allow: list(v)}); err != nil {
					return errors.New(strings.TrimPrefix(err.Error(), connector.EnvEgressAllow+": "))
				}
			}
			c.EgressAllow = v
			return nil
		}},
	{name: connector.EnvEgressFiles, reads: func(s Spec) bool { return s.Egress },
		about: "the folder that holds one folder per tenant for file-backed endpoints (SQLite); unset: file-backed endpoints are refused",
		set: func(c *Config, v string) error {
			if st, err := os.Stat(v); v != "" && err == nil && !st.IsDir() {
				return errors.New("names a file, not a folder: give the folder that holds (or will hold) one folder per tenant")
			}
			c.EgressFiles = v
			return nil
		}},
	{name: connector.EnvEgressProtect, reads: func(s Spec) bool { return s.Egress },
		about: "more of Syncline's own servers that no endpoint may reach, comma-separated, as Syncline reaches them (postgres://host:port/db, nats://host:port, host:port); its own NATS server and database are protected without it",
		set: func(c *Config, v string) error {
			for i, u := range list(v) {
				if _, err := connector.Protect(u); err != nil {
					return fmt.Errorf("entry %d: %v", i+1, err)
				}
			}
			c.EgressProtect = v
			return nil
		}},
	{name: "SYNCLINE_HTTP_ADDR", def: ":8080", reads: always,
		about: "HOST:PORT of metrics (/metrics), health (/livez, /readyz, gRPC health) and any API",
		set: func(c *Config, v string) error {
			_, port, err := net.SplitHostPort(v)
			if err == nil {
				_, err = net.LookupPort("tcp", port)
			}
			if err != nil {
				return fmt.Errorf("%q is not HOST:PORT (%v): give :8080 or 127.0.0.1:8080", v, err)
			}
			c.HTTPAddr = v
			return nil
		}},
	{name: "SYNCLINE_ADMIN_TOKEN", reads: func(s Spec) bool { return s.API },
		about: "required: the operators' token, 16 characters or more (integrator tokens work too)",
		set: func(c *Config, v string) error {
			switch {
			case v == "":
				return errors.New("is not set: an API never runs open; set a long random token (openssl rand -hex 32)")
			case len(v) < 16:
				return errors.New("is shorter than 16 characters: set a long random token (openssl rand -hex 32)")
			}
			c.AdminToken = v
			return nil
		}},
	{name: secret.EnvMasterKey, reads: func(s Spec) bool { return s.MasterKey },
		about: "32 random bytes in base64 (head -c32 /dev/urandom | base64), the same on controlplane, connector and eventlog; unset: credentials and alert secrets are refused",
		set: func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			key, err := secret.ParseKey(v)
			if err != nil {
				return err
			}
			c.Secrets, err = secret.New(key)
			return err
		}},
	{name: "SYNCLINE_EVENTLOG_URL", reads: func(s Spec) bool { return s.Console },
		about: "the eventlog service's API (http://eventlog:7400), which the web console calls for the API log, reports and dead letters; unset: those pages say so",
		set: func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("is not an http or https URL such as http://eventlog:7400")
			}
			c.EventlogURL = strings.TrimSuffix(v, "/")
			return nil
		}},
	{name: "SYNCLINE_TRACE_URL", reads: func(s Spec) bool { return s.Console },
		about: "the web console's link to a trace, with {traceId} where the id goes (Jaeger: http://jaeger:16686/trace/{traceId}); unset: trace ids are shown without a link",
		set: func(c *Config, v string) error {
			if v != "" && !strings.Contains(v, "{traceId}") {
				return errors.New("has no {traceId}: write where the trace id goes, e.g. http://jaeger:16686/trace/{traceId}")
			}
			c.TraceURL = v
			return nil
		}},
	{name: "SYNCLINE_PARTITIONS", def: strconv.Itoa(bus.DefaultConfig().Partitions), reads: always,
		about: "partitions of every stage, 1 to 1024; the same on every service; can grow for a running deployment, never shrink (a smaller count runs with the deployment's)",
		set: func(c *Config, v string) error {
			return setBus(c, v, func(b *bus.Config) *int { return &b.Partitions })
		}},
	{name: "SYNCLINE_REPLICAS", def: strconv.Itoa(bus.DefaultConfig().Replicas), reads: always,
		about: "replicas of every stream and of the flow-config bucket, 1 to 5; 3 with a three-node NATS cluster",
		set: func(c *Config, v string) error {
			return setBus(c, v, func(b *bus.Config) *int { return &b.Replicas })
		}},
	{name: "SYNCLINE_LOG_LEVEL", def: "info", reads: always,
		about: "debug, info, warn or error; JSON logs on stderr",
		set: func(c *Config, v string) error {
			var l slog.Level
			if err := l.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("%q is not a level: use debug, info, warn or error", v)
			}
			c.LogLevel = v
			return nil
		}},
	{name: "OTEL_EXPORTER_OTLP_ENDPOINT", reads: always,
		about: "the OTLP/HTTP collector's base URL, e.g. http://otel-collector:4318 (traces go to its /v1/traces); unset: none are sent. The exporter's other OTEL_EXPORTER_OTLP_* variables (headers, compression, timeout, certificates) apply as OpenTelemetry documents them",
		set: func(c *Config, v string) error {
			if err := otlpURL(v); err != nil {
				return err
			}
			c.OTLPEndpoint = v
			return nil
		}},
	{name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", reads: always,
		about: "the full URL traces are sent to, used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT",
		set: func(c *Config, v string) error {
			if err := otlpURL(v); err != nil {
				return err
			}
			c.OTLPTracesEndpoint = v
			return nil
		}},
}

// optionalFile checks that the file a variable names ("" is none) can be
// read; the error already names the variable, so only the rest is kept.
func optionalFile(name, path string) error {
	if path == "" {
		return nil
	}
	if err := natsauth.CheckFile(name, path); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), name+"="))
	}
	return nil
}

// otlpURL checks a collector URL ("" is none).
func otlpURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("is not an http:// or https:// URL: give the collector's OTLP/HTTP address, e.g. http://otel-collector:4318")
	}
	return nil
}

// setBus parses the bus setting field of c and checks it as the bus does.
func setBus(c *Config, v string, field func(*bus.Config) *int) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	probe := bus.DefaultConfig()
	*field(&probe) = n
	if err := probe.Validate(); err != nil {
		return err
	}
	*field(&c.Bus) = n
	return nil
}

// Load is what a service's main does first: it answers --help (writing the
// usage to stdout and returning flag.ErrHelp, which main treats as
// success), refuses arguments, and reads and checks the whole
// configuration (ConfigFromEnv), before anything is connected.
func Load(spec Spec, args []string, stdout io.Writer) (Config, error) {
	fs := flag.NewFlagSet(spec.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeUsage(stdout, spec)
		return Config{}, err
	case err != nil:
		return Config{}, fmt.Errorf("%w: the only flag is --help; the configuration comes from the environment", err)
	case fs.NArg() > 0:
		return Config{}, fmt.Errorf("%s takes no arguments (got %q): the configuration comes from the environment; see --help", spec.Name, fs.Args())
	}
	return ConfigFromEnv(spec)
}

// ConfigFromEnv reads the variables spec's service reads and checks every
// one; the error names every bad one, a line each.
func ConfigFromEnv(spec Spec) (Config, error) {
	c := Config{Service: spec.Name, Bus: bus.DefaultConfig()}
	var problems []string
	for _, v := range variables {
		if !v.reads(spec) {
			continue
		}
		if err := v.set(&c, env(v.name, v.def)); err != nil {
			// "X is not set" reads on from the name; anything else follows a colon.
			sep := ": "
			if strings.HasPrefix(err.Error(), "is ") {
				sep = " "
			}
			problems = append(problems, v.name+sep+err.Error())
		}
	}
	switch len(problems) {
	case 0:
		return c, nil
	case 1:
		return c, errors.New(problems[0])
	}
	return c, fmt.Errorf("%d variables of the environment are wrong (see --help):\n  %s", len(problems), strings.Join(problems, "\n  "))
}

// writeUsage writes --help: what the service is and the variables it reads.
func writeUsage(w io.Writer, spec Spec) {
	fmt.Fprintf(w, "%s\n\nUsage: %s [--help]\n\nThe configuration comes from the environment, and all of it is checked before\nanything is connected:\n\n", spec.Summary, spec.Name)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range variables {
		if !v.reads(spec) {
			continue
		}
		about := v.about
		if v.def != "" {
			about += " (default " + v.def + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", v.name, about)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nSee deploy/README.md.")
}

// redactURLs is a comma-separated list of URLs with any passwords hidden.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
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
	// APIHandler is the API behind its token check, when API was given the services it
	// serves (so that / is free for the web console); nil otherwise.
	APIHandler http.Handler

	shutdownTracer func(context.Context) error
	parts          *lifecycle.Group
}

// Open opens the store (when cfg has a database URL, which ConfigFromEnv
// requires of the services with one) and connects to NATS. ctx bounds the
// connecting only.
func Open(ctx context.Context, cfg Config) (*Runtime, error) {
	log, err := telemetry.NewLogger(os.Stderr, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	// Every record names its service here, once; the all-in-one mode's
	// wiring gives each service a logger of its own the same way.
	log = log.With("service", cfg.Service)
	tp, shutdown, err := telemetry.NewTracerProvider(ctx, telemetry.TraceConfig{
		ServiceName: "syncline-" + cfg.Service, OTLPEndpoint: cfg.OTLPEndpoint, OTLPTracesEndpoint: cfg.OTLPTracesEndpoint,
	})
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
	// The store first: a database that cannot be opened stops the service
	// before it has created anything on NATS.
	if cfg.DatabaseURL != "" {
		if rt.DB, err = sqlstore.Open(ctx, cfg.DatabaseURL); err != nil {
			rt.Close(ctx)
			return nil, fmt.Errorf("SYNCLINE_DATABASE_URL: %w", err)
		}
		rt.Health.Add("store", rt.DB.Ping)
	}
	natsOpts, err := cfg.NATS.Options()
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(natsOpts, nats.Name("syncline-"+cfg.Service), nats.MaxReconnects(-1), bus.LogClientErrors(log))...)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("connecting to NATS at %s (SYNCLINE_NATS_URL): %w", redactURLs(cfg.NATSURL), err)
	}
	rt.Conn = nc
	rt.Health.Add("nats", health.NATSProbe(nc))
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	rt.JetStream = bus.Retrying(js)
	n, raised, err := bus.ResolvePartitions(ctx, rt.JetStream, cfg.Bus.Partitions)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if raised {
		log.Warn("SYNCLINE_PARTITIONS is less than the partitions this deployment runs with; running with those, as partitions never shrink",
			"configured", cfg.Bus.Partitions, "running", n)
		rt.Config.Bus.Partitions = n
	}
	if rt.Leases, err = bus.OpenLeases(ctx, rt.JetStream, cfg.Bus.Replicas); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	rt.Mux.Handle("GET /metrics", promhttp.HandlerFor(rt.Registry, promhttp.HandlerOpts{Registry: rt.Registry}))
	rt.Health.Mount(rt.Mux, apiserver.ProbeLimit.Option())
	return rt, nil
}

// API returns the mux a service mounts its API on. Every path of it is
// behind the token check, for the admin token and the integrator tokens
// tokens knows (the control plane's store, or the flow-config index every
// other service watches), which runs before a request's body is read; health,
// readiness, metrics and reflection stay on rt.Mux, open. It fails when no
// admin token is configured (a Spec with API makes Load require one), since
// an API must never run open.
//
// With services (their full names, such as "syncline.controlplane.v1.ResourceService"),
// the token check covers those services' paths only, and leaves the rest of the server to
// the caller (the web console at /); without, it covers every path.
func (rt *Runtime) API(tokens auth.TokenLookup, services ...string) (*http.ServeMux, error) {
	a, err := auth.NewAuthenticator(rt.Config.AdminToken, tokens)
	if err != nil {
		return nil, err
	}
	api := http.NewServeMux()
	if len(services) == 0 {
		rt.Mux.Handle("/", a.Handler(api))
		return api, nil
	}
	rt.APIHandler = a.Handler(api)
	for _, s := range services {
		rt.Mux.Handle("/"+s+"/", rt.APIHandler)
	}
	return api, nil
}

// Add adds a part that starts, in order, before the service when Run starts.
func (rt *Runtime) Add(name string, p lifecycle.Part) {
	rt.parts.Add(name, p)
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

// list splits a comma-separated value, dropping empty entries.
func list(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
