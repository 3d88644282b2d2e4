// Package allinone runs all five Syncline services in one process — the
// `syncline dev` mode — with the same constructors the separate services
// use, wired differently: an embedded NATS JetStream server reached
// in-process, SQLite files in a data folder, and one HTTP port for every API,
// metrics and health. Given a PostgreSQL URL and a NATS URL it runs the same
// way against real servers.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncline/syncline/connectors"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/api/syncline/ingest/v1/ingestv1connect"
	"github.com/syncline/syncline/pkg/apiserver"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/health"
	"github.com/syncline/syncline/pkg/lifecycle"
	"github.com/syncline/syncline/pkg/natsauth"
	"github.com/syncline/syncline/pkg/natsserver"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/pkg/telemetry"
	"github.com/syncline/syncline/services/connector/connector"
	"github.com/syncline/syncline/services/controlplane/console"
	"github.com/syncline/syncline/services/controlplane/controlplane"
	"github.com/syncline/syncline/services/controlplane/resource"
	"github.com/syncline/syncline/services/dedup/dedup"
	"github.com/syncline/syncline/services/dedup/ledger"
	"github.com/syncline/syncline/services/eventlog/apilog"
	"github.com/syncline/syncline/services/eventlog/deadletter"
	"github.com/syncline/syncline/services/eventlog/eventlog"
	"github.com/syncline/syncline/services/mapper/mapper"
)

// Defaults of the all-in-one mode.
const (
	DefaultDataDir  = ".syncline"
	DefaultHTTPAddr = "127.0.0.1:7400"
	// DefaultNATSPort is the embedded server's client port: not 4222, so it
	// does not collide with a NATS server already running on the machine.
	DefaultNATSPort = 7422
)

// Config configures an all-in-one instance. The zero value of each field
// means its default.
type Config struct {
	// DataDir holds the embedded NATS files, the SQLite files and the admin
	// token. Default .syncline.
	DataDir string
	// NATSURL is an external NATS server; empty runs one embedded.
	NATSURL string
	// NATS are the credentials on the external server (see
	// natsauth.Credentials); the embedded server's are made in DataDir.
	NATS natsauth.Credentials
	// NATSCalloutSeed is the seed of the external server's auth callout
	// issuer: with it, this instance answers the callout, so publishers
	// connect with tokens. The embedded server's is made in DataDir.
	NATSCalloutSeed string
	// NATSPort is the embedded server's client port for other programs
	// (syncline publish, your services): 0 means DefaultNATSPort, -1 a
	// random free port.
	NATSPort int
	// NATSSyncInterval is how often the embedded server fsyncs; zero keeps
	// JetStream's default. See the README on durability.
	NATSSyncInterval time.Duration
	// DatabaseURL is a PostgreSQL URL for every store; empty uses SQLite
	// files in DataDir.
	DatabaseURL string
	// HTTPAddr serves every API, metrics and health. Default 127.0.0.1:7400;
	// use 127.0.0.1:0 for a random port.
	HTTPAddr string
	// AdminToken for the API; empty reads DataDir/admin-token, creating it
	// with a new random token the first time.
	AdminToken string
	// Replicated makes the instance share its consumers with other
	// instances on the same NATS server and database (leases in the
	// syncline_leases bucket), as separate service replicas do. Off, the
	// instance runs every consumer itself.
	Replicated bool
	// RetentionSweepEvery is how often the API log and dead letters are
	// swept of what each tenant's retention no longer keeps; 0 is hourly.
	RetentionSweepEvery time.Duration
	// Egress is what endpoints may reach: its Allow (nil: every public
	// address; the README's Security section) and Resolver are used as
	// given; Files, when empty, is DataDir/tenants, so that a relative
	// SQLite path is a file of DataDir/tenants/<tenant>; and the instance's
	// own stores and NATS server are added to Protected.
	Egress sdk.EgressConfig
	// Bus settings; the zero value (or a zero Bus.Partitions) means
	// bus.DefaultConfig() with the partition count chosen at Start: the
	// count the deployment already runs with when its streams have
	// partitioned consumers, DefaultPartitions() for a new one. Give
	// Bus.Partitions when replicas on machines of different sizes may be
	// the first to start.
	Bus    bus.Config
	Logger *slog.Logger
	Tracer trace.TracerProvider
	// TraceURL is the web console's link to a trace, with {traceId} where the id goes
	// (Jaeger: http://127.0.0.1:16686/trace/{traceId}); empty shows trace ids unlinked.
	TraceURL string
}

// Instance is a running (or stopped) all-in-one Syncline.
type Instance struct {
	cfg      Config
	log      *slog.Logger
	parts    *lifecycle.Group
	registry *prometheus.Registry
	health   *health.Checker
	// choosePartitions is set when the configuration left the partition
	// count to Start.
	choosePartitions bool

	nats *natsserver.Server
	// natsAuth is the embedded server's authorization; issuer signs the
	// callout's answers (nil: this instance does not answer it).
	natsAuth *natsserver.Auth
	issuer   *natsauth.Issuer
	conn     *nats.Conn
	js       jetstream.JetStream
	http     *apiserver.Server
	token    string
	// stopGC ends the collector's tuning (gc.go) that Start began.
	stopGC func()
}

// New checks cfg and fills in defaults; Start runs the instance.
func New(cfg Config) (*Instance, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.NATSPort == 0 {
		cfg.NATSPort = DefaultNATSPort
	}
	choosePartitions := cfg.Bus.Partitions == 0
	if choosePartitions {
		cfg.Bus = bus.DefaultConfig()
	}
	if err := cfg.Bus.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tracer == nil {
		cfg.Tracer = telemetry.IDsOnly()
	}
	if cfg.DatabaseURL != "" && !strings.HasPrefix(cfg.DatabaseURL, "postgres://") && !strings.HasPrefix(cfg.DatabaseURL, "postgresql://") {
		return nil, fmt.Errorf("database URL must start with postgres:// (leave it empty for SQLite files in %s)", cfg.DataDir)
	}
	return &Instance{
		cfg:              cfg,
		log:              cfg.Logger,
		parts:            lifecycle.NewGroup(cfg.Logger, 30*time.Second),
		registry:         prometheus.NewRegistry(),
		health:           health.NewChecker(),
		choosePartitions: choosePartitions,
	}, nil
}

// AdminToken is the token the API accepts.
func (in *Instance) AdminToken() string { return in.token }

// APIURL is the base URL of every API, metrics (/metrics) and health (/readyz).
func (in *Instance) APIURL() string { return "http://" + in.http.Addr() }

// NATSURL is where other programs publish change events.
func (in *Instance) NATSURL() string {
	if in.cfg.NATSURL != "" {
		return in.cfg.NATSURL
	}
	return in.nats.ClientURL()
}

// ServiceNATSOptions are the options of a connection with the services'
// own rights on the instance's NATS server: for tools and tests that read
// the streams. Publishers connect with a token (natsauth.ClientOptions).
func (in *Instance) ServiceNATSOptions() ([]nats.Option, error) {
	if in.natsAuth != nil {
		return []nats.Option{nats.UserInfo(natsauth.ServiceUser, in.natsAuth.ServicePassword)}, nil
	}
	return in.cfg.NATS.Options()
}

// Partitions is the partition count of the flow and push subjects, known
// once Start has begun.
func (in *Instance) Partitions() int { return in.cfg.Bus.Partitions }

// DefaultPartitions is the partition count a new all-in-one deployment
// gets: one per two cores the Go runtime may use, at least one and at most
// the services' default. In one process, partitions only buy parallel work
// within each stage, and on a small machine every stage already runs beside
// the others (and beside the database): there more partitions mean smaller
// batches — more commits and acknowledgements for the same events — not
// more speed. On a 2-core machine one partition moves about 40% more events
// per second than four, with half the PostgreSQL work (see the README's
// Performance section).
func DefaultPartitions() int {
	return max(1, min(bus.DefaultConfig().Partitions, runtime.GOMAXPROCS(0)/2))
}

// Registry is the instance's metrics registry.
func (in *Instance) Registry() *prometheus.Registry { return in.registry }

// Start starts everything in dependency order. If a part fails, the parts
// already started are stopped and the error returned. ctx bounds the start.
func (in *Instance) Start(ctx context.Context) error {
	in.stopGC = tuneGC()
	if err := os.MkdirAll(in.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data folder: %w", err)
	}
	token := in.cfg.AdminToken
	if token == "" {
		var err error
		if token, err = in.dataFile("admin-token", auth.NewAdminToken); err != nil {
			return err
		}
	}
	in.token = token
	box, err := in.masterKey()
	if err != nil {
		return err
	}
	if err := in.natsKeys(); err != nil {
		return err
	}

	if err := in.startBus(ctx); err != nil {
		return err
	}
	if in.choosePartitions {
		n, err := bus.PartitionsInUse(ctx, in.js)
		if err != nil {
			return in.fail(ctx, err)
		}
		if n == 0 {
			n = DefaultPartitions()
		}
		in.cfg.Bus.Partitions = n
	} else {
		n, raised, err := bus.ResolvePartitions(ctx, in.js, in.cfg.Bus.Partitions)
		if err != nil {
			return in.fail(ctx, err)
		}
		if raised {
			in.log.Warn("the configured partition count is less than this deployment runs with; running with those, as partitions never shrink",
				"configured", in.cfg.Bus.Partitions, "running", n)
			in.cfg.Bus.Partitions = n
		}
	}
	if err := bus.EnsureStreams(ctx, in.js, in.cfg.Bus); err != nil {
		return in.fail(ctx, err)
	}
	metrics := bus.NewMetrics(in.registry)
	in.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cpDB, err := in.openDB(ctx, "controlplane")
	if err != nil {
		return in.fail(ctx, err)
	}
	ledgerDB, err := in.openDB(ctx, "ledger")
	if err != nil {
		return in.fail(ctx, err)
	}
	logDB, err := in.openDB(ctx, "eventlog")
	if err != nil {
		return in.fail(ctx, err)
	}
	resources, err := resource.New(ctx, cpDB)
	if err != nil {
		return in.fail(ctx, err)
	}
	// One process: every API checks integrator tokens against the control
	// plane's store itself.
	authn, err := auth.NewAuthenticator(token, resources)
	if err != nil {
		return in.fail(ctx, err)
	}
	if in.issuer != nil {
		in.parts.Add("NATS auth callout", natsauth.NewResponder(in.conn, in.issuer, token, resources, in.log))
		if err := in.parts.Start(ctx); err != nil {
			return err
		}
	}
	ledgerStore, err := ledger.New(ctx, ledgerDB)
	if err != nil {
		return in.fail(ctx, err)
	}
	logStore, err := apilog.New(ctx, logDB)
	if err != nil {
		return in.fail(ctx, err)
	}
	letters, err := deadletter.New(ctx, logDB)
	if err != nil {
		return in.fail(ctx, err)
	}
	registry, err := connectors.Builtin()
	if err != nil {
		return in.fail(ctx, err)
	}
	egress, err := in.egress()
	if err != nil {
		return in.fail(ctx, err)
	}
	var leases *bus.Leases
	if in.cfg.Replicated {
		if leases, err = bus.OpenLeases(ctx, in.js, in.cfg.Bus.Replicas); err != nil {
			return in.fail(ctx, err)
		}
	}

	cp, err := controlplane.New(controlplane.Deps{JetStream: in.js, Resources: resources, Connectors: registry, Bus: in.cfg.Bus, Logger: in.log.With("service", "controlplane"), Secrets: box, Egress: egress})
	if err != nil {
		return in.fail(ctx, err)
	}
	in.parts.Add("controlplane", cp)
	if err := in.parts.Start(ctx); err != nil {
		return err
	}
	kv, err := flowconfig.OpenBucket(ctx, in.js, in.cfg.Bus.Replicas)
	if err != nil {
		return in.fail(ctx, err)
	}
	watcher := flowconfig.NewWatcher(kv, in.log)
	in.parts.Add("flow configs", watcher)
	flows := watcher.Index()

	el, err := eventlog.New(eventlog.Deps{Conn: in.conn, JetStream: in.js, Log: logStore, Flows: flows, Bus: in.cfg.Bus, Logger: in.log.With("service", stage.Eventlog), Tracer: in.cfg.Tracer, Metrics: metrics, Leases: leases,
		DeadLetters: letters, Secrets: box, Alerts: flows, AlertMetrics: eventlog.NewAlertMetrics(in.registry),
		Retention: flows.Retention, SweepEvery: in.cfg.RetentionSweepEvery})
	if err != nil {
		return in.fail(ctx, err)
	}
	budgetMetrics, err := sdk.NewBudgetMetrics(in.registry)
	if err != nil {
		return in.fail(ctx, err)
	}
	pollMetrics, err := connector.NewPollMetrics(in.registry)
	if err != nil {
		return in.fail(ctx, err)
	}
	co, err := connector.New(connector.Deps{JetStream: in.js, Flows: flows, Connectors: registry, Bus: in.cfg.Bus, Logger: in.log.With("service", stage.Connector), Tracer: in.cfg.Tracer, Metrics: metrics, Leases: leases, Secrets: box, Egress: egress, BudgetMetrics: budgetMetrics, PollMetrics: pollMetrics})
	if err != nil {
		return in.fail(ctx, err)
	}
	de, err := dedup.New(dedup.Deps{JetStream: in.js, Flows: flows, Ledger: ledgerStore, Bus: in.cfg.Bus, Logger: in.log.With("service", stage.Dedup), Tracer: in.cfg.Tracer, Metrics: metrics, Leases: leases})
	if err != nil {
		return in.fail(ctx, err)
	}
	ma, err := mapper.New(mapper.Deps{JetStream: in.js, Flows: flows, Bus: in.cfg.Bus, Logger: in.log.With("service", stage.Mapper), Tracer: in.cfg.Tracer, Metrics: metrics, Leases: leases})
	if err != nil {
		return in.fail(ctx, err)
	}
	// Downstream stages start first, so every stage's consumer is there
	// before anything upstream publishes to it.
	in.parts.Add("eventlog", el)
	in.parts.Add("connector", co)
	in.parts.Add("dedup", de)
	in.parts.Add("mapper", ma)

	// The APIs are behind the token check, which runs before a request's
	// body is read; health, metrics, reflection and the webhook receiver
	// are open.
	api := http.NewServeMux()
	cp.Mount(api)
	el.Mount(api)
	co.Mount(api)
	mux := http.NewServeMux()
	apis := authn.Handler(api)
	for _, service := range []string{controlplanev1connect.ResourceServiceName, eventlogv1connect.LogServiceName,
		eventlogv1connect.DeadLetterServiceName, ingestv1connect.IngestServiceName} {
		mux.Handle("/"+service+"/", apis)
	}
	// The web console is at /; it calls the APIs above with the signed-in user's token.
	web, err := console.New(console.Config{API: apis, Sessions: box, TraceURL: in.cfg.TraceURL, Logger: in.log, Connectors: registry})
	if err != nil {
		return in.fail(ctx, err)
	}
	mux.Handle("/", web.Handler())
	// Webhooks are checked by their endpoint's secret, not a token.
	co.MountHooks(mux)
	apiserver.MountReflection(mux, controlplanev1connect.ResourceServiceName, eventlogv1connect.LogServiceName, ingestv1connect.IngestServiceName, eventlogv1connect.DeadLetterServiceName)
	mux.Handle("GET /metrics", promhttp.HandlerFor(in.registry, promhttp.HandlerOpts{Registry: in.registry}))
	in.health.Add("nats", health.NATSProbe(in.conn))
	for _, db := range []*sqlstore.DB{cpDB, ledgerDB, logDB} {
		in.health.Add("store "+db.Dialect.String(), db.Ping)
	}
	in.health.Mount(mux, apiserver.ProbeLimit.Option())
	in.http = apiserver.New(in.cfg.HTTPAddr, mux, in.log)
	in.parts.Add("http", in.http)
	// Stopped before the server, so that its shutdown does not wait for the console's
	// live pages.
	in.parts.Add("console live pages", lifecycle.Funcs{OnStop: func(context.Context) error { web.Close(); return nil }})
	in.parts.Add("readiness", lifecycle.Funcs{
		OnStart: func(context.Context) error { in.health.SetReady(true); return nil },
		OnStop:  func(context.Context) error { in.health.SetReady(false); return nil },
	})
	if err := in.parts.Start(ctx); err != nil {
		return err
	}
	in.stopGC = tuneGC()
	return nil
}

// Stop stops everything in reverse order: readiness off, the API, the
// stages from upstream to downstream (each finishing or giving back what it
// holds), the stores, the bus. ctx bounds the whole stop.
func (in *Instance) Stop(ctx context.Context) error {
	defer in.untuneGC()
	return in.parts.Stop(ctx)
}

func (in *Instance) fail(ctx context.Context, err error) error {
	defer in.untuneGC()
	return errors.Join(err, in.parts.Stop(context.WithoutCancel(ctx)))
}

// untuneGC stops the collector's tuning (gc.go), once.
func (in *Instance) untuneGC() {
	if in.stopGC != nil {
		in.stopGC()
		in.stopGC = nil
	}
}

func (in *Instance) startBus(ctx context.Context) error {
	if in.cfg.NATSURL == "" {
		port := in.cfg.NATSPort
		s, err := natsserver.Start(natsserver.Config{Dir: filepath.Join(in.cfg.DataDir, "nats"), Port: port, SyncInterval: in.cfg.NATSSyncInterval, Auth: in.natsAuth})
		if err != nil {
			return err
		}
		in.nats = s
		in.parts.Add("embedded NATS", lifecycle.Funcs{OnStop: s.Stop})
	}
	in.parts.Add("NATS connection", lifecycle.Funcs{
		OnStart: func(context.Context) error {
			var err error
			if in.nats != nil {
				in.conn, err = in.nats.Connect("syncline-dev", bus.LogClientErrors(in.log))
			} else {
				var opts []nats.Option
				if opts, err = in.cfg.NATS.Options(); err != nil {
					return err
				}
				in.conn, err = nats.Connect(in.cfg.NATSURL, append(opts, nats.Name("syncline-dev"), nats.MaxReconnects(-1), bus.LogClientErrors(in.log))...)
				if err != nil {
					err = fmt.Errorf("connecting to NATS at %s: %w", in.cfg.NATSURL, err)
				}
			}
			if err != nil {
				return err
			}
			js, err := jetstream.New(in.conn, jetstream.WithPublishAsyncMaxPending(4096))
			// Replicas on a cluster create the same streams at once.
			in.js = bus.Retrying(js)
			return err
		},
		OnStop: func(context.Context) error {
			if in.conn == nil {
				return nil
			}
			return in.conn.Drain()
		},
	})
	return in.parts.Start(ctx)
}

// openDB opens one service's database and closes it when the instance stops.
func (in *Instance) openDB(ctx context.Context, name string) (*sqlstore.DB, error) {
	url := in.cfg.DatabaseURL
	if url == "" {
		// One SQLite file per service: each service owns its tables, and
		// separate files keep their writers from waiting on each other.
		url = "sqlite:" + filepath.Join(in.cfg.DataDir, name+".db")
	}
	db, err := sqlstore.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("opening %s store: %w", name, err)
	}
	in.parts.Add(name+" store", lifecycle.Funcs{OnStop: func(context.Context) error { db.Close(); return nil }})
	if err := in.parts.Start(ctx); err != nil {
		return nil, err
	}
	return db, nil
}

// natsKeys reads (or makes, the first time) the embedded server's service
// password and callout issuer in the data folder; for an external server it
// reads the callout issuer from the configuration, when given.
func (in *Instance) natsKeys() error {
	seed := in.cfg.NATSCalloutSeed
	if in.cfg.NATSURL == "" {
		password, err := in.dataFile("nats-password", natsauth.NewServicePassword)
		if err != nil {
			return err
		}
		if seed, err = in.dataFile("nats-callout-seed", natsauth.NewIssuerSeed); err != nil {
			return err
		}
		in.natsAuth = &natsserver.Auth{ServicePassword: password}
	}
	if seed == "" {
		return nil
	}
	issuer, err := natsauth.ParseIssuer(seed)
	if err != nil {
		return err
	}
	in.issuer = issuer
	if in.natsAuth != nil {
		in.natsAuth.Issuer = issuer
	}
	return nil
}

// egress is the instance's egress policy: the configured one, with the
// tenants' folders in the data folder and every store and NATS server of the
// instance protected, the data folder's own files too.
func (in *Instance) egress() (*sdk.Egress, error) {
	cfg := in.cfg.Egress
	if cfg.Files == "" {
		cfg.Files = filepath.Join(in.cfg.DataDir, "tenants")
	}
	cfg.Protected = slices.Clone(cfg.Protected)
	for _, name := range []string{"nats", "master-key", "admin-token"} {
		cfg.Protected = append(cfg.Protected, sdk.Protected{What: "Syncline's own data", Path: filepath.Join(in.cfg.DataDir, name)})
	}
	own := []string{in.NATSURL()}
	if in.cfg.DatabaseURL != "" {
		own = append(own, in.cfg.DatabaseURL)
	} else {
		for _, name := range []string{"controlplane", "ledger", "eventlog"} {
			own = append(own, "sqlite:"+filepath.Join(in.cfg.DataDir, name+".db"))
		}
	}
	for _, u := range own {
		p, err := sdk.Protect(u)
		if err != nil {
			return nil, fmt.Errorf("protecting Syncline's own servers from endpoints: %w", err)
		}
		cfg.Protected = append(cfg.Protected, p...)
	}
	return sdk.NewEgress(cfg)
}

// masterKey is SYNCLINE_MASTER_KEY if set, else the data folder's
// master-key file, made the first time.
func (in *Instance) masterKey() (*secret.Box, error) {
	if box, err := secret.FromEnvIfSet(); box != nil || err != nil {
		return box, err
	}
	k, err := in.dataFile("master-key", secret.NewKey)
	if err != nil {
		return nil, err
	}
	key, err := secret.ParseKey(k)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(in.cfg.DataDir, "master-key"), err)
	}
	return secret.New(key)
}

// dataFile reads a one-line secret file of the data folder, creating it
// (mode 0600) with make's value the first time.
func (in *Instance) dataFile(name string, make func() (string, error)) (string, error) {
	path := filepath.Join(in.cfg.DataDir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	v, err := make()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return v, nil
}
