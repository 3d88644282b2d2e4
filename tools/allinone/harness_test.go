package allinone_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/tools/allinone"
)

// backend is one store backend the suite runs on.
type backend struct {
	name string
	// storeURL returns the instance's database URL ("" = SQLite files).
	storeURL func(t *testing.T) string
	// target returns the SQL target's driver and DSN.
	target func(t *testing.T, dir string) (driver, dsn string)
}

var backends = []backend{
	{
		name:     "sqlite",
		storeURL: func(*testing.T) string { return "" },
		target: func(t *testing.T, dir string) (string, string) {
			return "sqlite", tenantFile(t, dir, "acme", "erp.db")
		},
	},
	{
		name:     "postgres",
		storeURL: func(t *testing.T) string { return pgtest.NewDatabase(t) },
		target: func(t *testing.T, _ string) (string, string) {
			return "postgres", pgtest.NewDatabase(t)
		},
	},
}

// env is a running instance with clients and the flow of the walkthrough.
type env struct {
	t        *testing.T
	in       *allinone.Instance
	dir      string
	resource controlplanev1connect.ResourceServiceClient
	logs     eventlogv1connect.LogServiceClient
	pub      *ingest.Publisher
	js       jetstream.JetStream
	driver   string
	dsn      string
	stopped  bool
}

// replicasMasterKey is the master key of every replicated instance.
var replicasMasterKey = base64.StdEncoding.EncodeToString([]byte("replicas-share-this-master-key!!"))

type options struct {
	// resolver looks endpoints' hosts up; nil is the system's.
	resolver   connector.Resolver
	natsURL    string
	replicated bool
	tracer     trace.TracerProvider
	dir        string
	storeURL   string
	driver     string
	dsn        string
	logger     *slog.Logger
	// allow adds to the egress policy: the peers' host:port the test's
	// endpoints reach (a Tryton server, a json-server).
	allow []string
	// partitions is the partition count; 0 keeps the default.
	partitions int
}

func start(t *testing.T, o options) *env {
	t.Helper()
	cfg := allinone.Config{
		// The test server is on loopback: allowed as an operator allows a
		// database on the machine or the private network; so is the port
		// of the tests' unreachable targets.
		Egress:      connector.EgressConfig{Allow: append([]string{"public", pgtest.Host(t), downTarget}, o.allow...), Resolver: o.resolver},
		DataDir:     o.dir,
		NATSPort:    -1,
		HTTPAddr:    "127.0.0.1:0",
		DatabaseURL: o.storeURL,
		AdminToken:  "test-admin-token-0123456789",
		Tracer:      o.tracer,
		NATSURL:     o.natsURL,
		Replicated:  o.replicated,
		Logger:      o.logger,
	}
	cfg.Bus = bus.DefaultConfig()
	cfg.Bus.Backoff = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	cfg.Bus.MaxDeliver = 3
	if o.partitions > 0 {
		cfg.Bus.Partitions = o.partitions
	}
	if o.replicated {
		// Replicas share the master key, as a deployment's do: any of them
		// may seal a credential or a dead letter that another opens.
		if err := os.MkdirAll(o.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(o.dir, "master-key"), []byte(replicasMasterKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in, err := allinone.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := in.Start(ctx); err != nil {
		t.Fatalf("starting: %v", err)
	}
	e := &env{t: t, in: in, dir: o.dir, driver: o.driver, dsn: o.dsn}
	t.Cleanup(func() {
		if !e.stopped {
			e.stop()
		}
	})
	opts := connect.WithInterceptors(auth.Bearer(in.AdminToken()))
	e.resource = controlplanev1connect.NewResourceServiceClient(http.DefaultClient, in.APIURL(), opts)
	e.logs = eventlogv1connect.NewLogServiceClient(http.DefaultClient, in.APIURL(), opts)
	// The tests read the streams, as the services do.
	natsOpts, err := in.ServiceNATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(in.NATSURL(), natsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e.pub = ingest.NewPublisher(e.js, o.tracer)
	return e
}

func (e *env) stop() {
	e.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.in.Stop(ctx); err != nil {
		e.t.Errorf("stopping: %v", err)
	}
}

func resourceOf(t *testing.T, kind, tenant, name string, spec map[string]any) *controlplanev1.Resource {
	t.Helper()
	s, err := structpb.NewStruct(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &controlplanev1.Resource{ApiVersion: "syncline.dev/v1", Kind: kind, Metadata: &controlplanev1.Metadata{Name: name, Tenant: tenant}, Spec: s}
}

// tenantFile is the path of a file in a tenant's folder of the data folder
// dir, where the tenant's SQLite endpoints may write; the folder is made.
func tenantFile(t testing.TB, dir, tenant, name string) string {
	t.Helper()
	folder := filepath.Join(dir, "tenants", tenant)
	if err := os.MkdirAll(folder, 0o700); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(folder, name)
}

// downTarget is where the tests' targets that cannot be reached are: a port
// nothing listens on, which the tests' egress policy allows.
const downTarget = "127.0.0.1:1"

// endpointDSN is the DSN of tenant's SQL endpoint: for SQLite the file's
// name, which is in the tenant's own folder.
func (e *env) endpointDSN() string {
	if e.driver == "sqlite" {
		return filepath.Base(e.dsn)
	}
	return e.dsn
}

// applyOrders applies the walkthrough's tenant, endpoints and flow for
// tenant, with the SQL target table, and the extra resources in the same
// call.
func (e *env) applyOrders(tenant, table string, extra ...*controlplanev1.Resource) {
	e.t.Helper()
	_, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: append([]*controlplanev1.Resource{
		resourceOf(e.t, "Tenant", "", tenant, map[string]any{}),
		resourceOf(e.t, "Integrator", tenant, "shop-to-erp", map[string]any{}),
		resourceOf(e.t, "Endpoint", tenant, "shop", map[string]any{"type": "nats", "description": "webshop"}),
		resourceOf(e.t, "Endpoint", tenant, "erp", map[string]any{"type": "sql", "description": "ERP orders", "settings": map[string]any{
			"driver": e.driver, "dsn": e.endpointDSN(), "table": table, "create_table": true,
		}}),
		resourceOf(e.t, "Flow", tenant, "orders", map[string]any{
			"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "order", "duplicates": "update",
			"mapping": map[string]any{
				"filter": `source.status != "draft"`,
				"fields": map[string]any{
					"order_number":   "source.number",
					"customer_email": "source.customer.email.lowerAscii()",
					"total":          "double(source.total)",
					"status":         "source.status",
				},
				"defaults": map[string]any{"employee_number": 999999},
			},
		}),
	}, extra...)})
	if err != nil {
		e.t.Fatalf("applying the orders flow: %v", err)
	}
}

func order(n int, status string) []byte {
	return fmt.Appendf(nil, `{"number":"SO-%d","status":%q,"total":%d.5,"customer":{"email":"Buyer%d@Example.com"}}`, n, status, n, n)
}

func (e *env) publish(changes ...ingest.Change) []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids, err := e.pub.Publish(ctx, changes...)
	if err != nil {
		e.t.Fatalf("publishing: %v", err)
	}
	return ids
}

// eventually polls cond until it returns "" or the deadline passes, then
// fails with cond's last explanation.
func eventually(t *testing.T, d time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// row is what the target table holds for one key.
type row struct {
	orderNumber, email, status string
	total                      float64
	employee                   int64
	version                    int64
}

// rows reads acme's target table by key; a missing table reads as empty.
func (e *env) rows(table string) map[string]row {
	e.t.Helper()
	return e.rowsOf("acme", table)
}

// rowsOf reads a tenant's target table by key; a missing table reads as
// empty.
func (e *env) rowsOf(tenant, table string) map[string]row {
	e.t.Helper()
	q := fmt.Sprintf(`SELECT external_ref, order_number, customer_email, status, total, employee_number, source_version FROM %s`, table)
	out := map[string]row{}
	scan := func(next func() bool, scan func(...any) error) {
		for next() {
			var key string
			var r row
			if err := scan(&key, &r.orderNumber, &r.email, &r.status, &r.total, &r.employee, &r.version); err != nil {
				e.t.Fatalf("reading target row: %v", err)
			}
			out[key] = r
		}
	}
	switch e.driver {
	case "sqlite":
		db, err := sql.Open("sqlite", filepath.Join(e.dir, "tenants", tenant, filepath.Base(e.dsn)))
		if err != nil {
			e.t.Fatal(err)
		}
		defer db.Close()
		rs, err := db.Query(q)
		if err != nil {
			return out
		}
		defer rs.Close()
		scan(rs.Next, rs.Scan)
	case "postgres":
		pool, err := pgxpool.New(context.Background(), e.dsn)
		if err != nil {
			e.t.Fatal(err)
		}
		defer pool.Close()
		rs, err := pool.Query(context.Background(), q)
		if err != nil {
			return out
		}
		defer rs.Close()
		scan(rs.Next, rs.Scan)
	}
	return out
}

// logRecords returns every API log record of a tenant matching req's filters.
func (e *env) logRecords(req *eventlogv1.QueryLogsRequest) []*eventlogv1.LogRecord {
	e.t.Helper()
	var out []*eventlogv1.LogRecord
	req.PageSize = 1000
	for {
		resp, err := e.logs.QueryLogs(context.Background(), req)
		if err != nil {
			e.t.Fatalf("querying logs: %v", err)
		}
		out = append(out, resp.Records...)
		if resp.NextPageToken == "" {
			return out
		}
		req.PageToken = resp.NextPageToken
	}
}

// publishEnvelope publishes a hand-made envelope, bypassing pkg/ingest's
// checks, as a publisher in another language might.
func publishEnvelope(t *testing.T, js jetstream.JetStream, subject, key string, payload []byte) {
	t.Helper()
	publishNamed(t, js, subject, bus.TenantOf(subject), "shop", "order", key, payload)
}

// publishNamed publishes on subject a hand-made envelope naming tenant,
// endpoint and entity, whatever the subject says, as a careless or hostile
// publisher might.
func publishNamed(t *testing.T, js jetstream.JetStream, subject, tenant, endpoint, entity, key string, payload []byte) {
	t.Helper()
	e := &eventv1.Envelope{
		SchemaVersion: envelope.SchemaVersion, EventId: envelope.NewEventID(), Tenant: tenant,
		SourceEndpoint: endpoint, Entity: entity, Operation: eventv1.Operation_OPERATION_UPSERT,
		SourceKey: key, SourceVersion: 1, Payload: payload,
	}
	data, err := envelope.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	m.Header.Set(bus.HeaderMsgID, e.EventId)
	m.Data = data
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// waitCreatedOnly waits until the tenant acme's API log holds exactly n
// records, all created: every event applied once, none failed or skipped.
func (e *env) waitCreatedOnly(n int) {
	e.t.Helper()
	eventually(e.t, 60*time.Second, func() string {
		created, other := 0, 0
		kinds := map[string]int{}
		for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme"}) {
			if r.Action == "created" {
				created++
			} else {
				other++
				kinds[r.Action+" "+r.Status+" "+r.Code]++
			}
		}
		if created != n || other != 0 {
			return fmt.Sprintf("API log has %d created and %d other records (%v), want %d created only", created, other, kinds, n)
		}
		return ""
	})
}

// publishOrders publishes n paid orders of tenant acme, keyed 0 to n-1, in
// batches of 500.
func (e *env) publishOrders(n int) {
	e.t.Helper()
	for from := 0; from < n; from += 500 {
		changes := make([]ingest.Change, 0, 500)
		for i := from; i < min(from+500, n); i++ {
			changes = append(changes, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: strconv.Itoa(i), Version: 1, Payload: order(i, "paid")})
		}
		e.publish(changes...)
	}
}

// finished returns how many messages an instance's stage has finished, from
// its metrics.
func finished(t *testing.T, e *env, stage string) float64 {
	t.Helper()
	return metric(t, e, "syncline_stage_messages_finished_total", "stage", stage)
}

// metric reads an instance's counter or gauge name, of the series with the
// given label pairs (name, value, ...); 0 when there is none yet.
func metric(t *testing.T, e *env, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := e.in.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
