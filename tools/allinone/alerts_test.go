package allinone_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/natsauth"
	"github.com/syncline/syncline/services/eventlog/eventlog"
	"github.com/syncline/syncline/tools/allinone"
)

const webhookSecret = "whsec-91c4e0d7b3a2-never-show"

// webhook receives alerts and checks each one's signature.
type webhook struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	alerts   []eventlog.Alert
	received []time.Time
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{t: t}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		if got, want := r.Header.Get(eventlog.HeaderAlertSignature), eventlog.Sign([]byte(webhookSecret), body); got != want {
			t.Errorf("an alert's signature %q does not verify with the secret", got)
		}
		var a eventlog.Alert
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("an alert that is not JSON: %v", err)
		}
		w.mu.Lock()
		w.alerts = append(w.alerts, a)
		w.received = append(w.received, at)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) got() []eventlog.Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.alerts)
}

// hangingWebhook answers no request until the test ends.
func hangingWebhook(t *testing.T) (string, func() int) {
	release := make(chan struct{})
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv.URL, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// downWebhook is a URL where nothing listens.
func downWebhook(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr + "/alerts"
}

func tenantWithAlerts(t *testing.T, tenant, webhook, interval string) *controlplanev1.Resource {
	return resourceOf(t, "Tenant", "", tenant, map[string]any{"alerts": map[string]any{
		"webhook": webhook, "secret": webhookSecret, "minInterval": interval}})
}

// product is a product whose price the products flow cannot map when bad.
func product(n int, bad bool) []byte {
	price := strconv.Itoa(n) + ".5"
	if bad {
		price = `"n/a"`
	}
	return fmt.Appendf(nil, `{"sku":"P-%d","price":%s}`, n, price)
}

// TestFailureAlerts runs a tenant with alerts and one without: a target's
// refusal is one signed alert within seconds, with the log query that shows
// it; a burst of 10,000 mapping failures is a few alerts whose counts add
// up; the tenant without alerts sends nothing; the secret shows nowhere.
func TestFailureAlerts(t *testing.T) {
	dir := t.TempDir()
	dsn := tenantFile(t, dir, "acme", "erp.db")
	ordersTableWithoutTotal(t, dsn)
	ordersTableWithoutTotal(t, tenantFile(t, dir, "globex", "erp.db"))
	logs := &syncBuffer{}
	e := start(t, options{dir: dir, driver: "sqlite", dsn: dsn, logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	hook := newWebhook(t)
	ctx := context.Background()
	var responses []string
	resources := func(tenant *controlplanev1.Resource) []*controlplanev1.Resource {
		name := tenant.Metadata.Name
		return []*controlplanev1.Resource{
			tenant,
			resourceOf(t, "Integrator", name, "sync", map[string]any{}),
			resourceOf(t, "Endpoint", name, "shop", map[string]any{"type": "nats", "description": "webshop"}),
			resourceOf(t, "Endpoint", name, "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{
				"driver": "sqlite", "dsn": "erp.db", "table": "orders"}}),
			resourceOf(t, "Endpoint", name, "pim", map[string]any{"type": "sql", "description": "PIM", "settings": map[string]any{
				"driver": "sqlite", "dsn": "erp.db", "table": name + "_products", "create_table": true}}),
			resourceOf(t, "Flow", name, "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order",
				"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number", "total": "double(source.total)"}, "exclude": []any{"*"}}}),
			resourceOf(t, "Flow", name, "products", map[string]any{"integrator": "sync", "source": "shop", "target": "pim", "entity": "product",
				"mapping": map[string]any{"fields": map[string]any{"sku": "source.sku", "price": "double(source.price)"}, "exclude": []any{"*"}}}),
		}
	}
	for _, tenant := range []*controlplanev1.Resource{
		tenantWithAlerts(t, "acme", hook.srv.URL+"/alerts/acme", "2s"),
		resourceOf(t, "Tenant", "", "globex", map[string]any{}),
	} {
		resp, err := e.resource.Apply(ctx, &controlplanev1.ApplyRequest{Resources: resources(tenant)})
		if err != nil {
			t.Fatal(err)
		}
		responses = append(responses, protojson.Format(resp))
	}

	// One refused record: one alert, with every field.
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "R1", Version: 1, Payload: order(1, "paid")})
	var a eventlog.Alert
	eventually(t, 30*time.Second, func() string {
		got := hook.got()
		if len(got) == 0 {
			return "no alert"
		}
		a = got[0]
		return ""
	})
	if a.Tenant != "acme" || a.Failures != 1 || len(a.Groups) != 1 || len(a.Groups[0].Samples) != 1 {
		t.Fatalf("first alert = %+v, want acme's one failure", a)
	}
	g, s := a.Groups[0], a.Groups[0].Samples[0]
	if g.Integrator != "sync" || g.Flow != "orders" || g.Codes["target_rejected"] != 1 ||
		s.RemoteID != "R1" || s.Stage != "connector" || s.Code != "target_rejected" || !strings.Contains(s.Error, "total") || s.TraceID == "" {
		t.Errorf("first alert's group %+v, sample %+v", g, s)
	}
	// The alert's log query shows the failure, with the alert's trace id.
	var req eventlogv1.QueryLogsRequest
	if err := protojson.Unmarshal(g.LogQuery.Request, &req); err != nil {
		t.Fatalf("the log query's request: %v: %s", err, g.LogQuery.Request)
	}
	recs := e.logRecords(&req)
	if len(recs) != 1 || recs[0].RemoteId != "R1" || recs[0].Status != "failure" || recs[0].TraceId != s.TraceID {
		t.Errorf("the alert's log query %s finds %v, want R1's failure with trace %s", g.LogQuery.Request, recs, s.TraceID)
	}
	if !strings.HasPrefix(g.LogQuery.Command, "syncline logs --tenant acme --status failure --flow orders --from ") {
		t.Errorf("log query command %q", g.LogQuery.Command)
	}
	// The refusal is an audit record and a dead letter: both logged, one
	// failure alerted.
	eventually(t, 30*time.Second, func() string {
		if n := finished(t, e, "eventlog"); n < 2 {
			return fmt.Sprintf("the eventlog finished %v messages, want the audit record and the dead letter", n)
		}
		return ""
	})
	if n := metric(t, e, "syncline_alert_failures_total"); n != 1 {
		t.Errorf("%v failures taken for alerting, want R1's 1", n)
	}

	// A burst: 10,000 products acme's flow cannot map, and a few of
	// globex's, whose tenant has no alerts.
	const burst = 10_000
	for from := 0; from < burst; from += 500 {
		changes := make([]ingest.Change, 0, 500)
		for i := from; i < from+500; i++ {
			changes = append(changes, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "product", Key: strconv.Itoa(i), Version: 1, Payload: product(i, true)})
		}
		e.publish(changes...)
	}
	for i := range 5 {
		e.publish(ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "product", Key: strconv.Itoa(i), Version: 1, Payload: product(i, true)})
	}
	eventually(t, 120*time.Second, func() string {
		total := 0
		for _, a := range hook.got() {
			total += a.Failures
		}
		if total != 1+burst {
			return fmt.Sprintf("alerts count %d failures, want %d", total, 1+burst)
		}
		return ""
	})
	alerts := hook.got()
	t.Logf("%d alerts for %d failures", len(alerts), 1+burst)
	if len(alerts) > 30 {
		t.Errorf("%d alerts for %d failures, want a few", len(alerts), 1+burst)
	}
	for _, a := range alerts {
		if a.Tenant != "acme" {
			t.Errorf("an alert of tenant %s, which has no alerts", a.Tenant)
		}
		for _, g := range a.Groups {
			if g.Flow != "products" {
				continue
			}
			for _, s := range g.Samples {
				if !s.DeadLetter || s.Stage != "mapper" || s.Code != "mapping_failed" {
					t.Fatalf("a mapping failure's sample %+v: want a dead letter of the mapper, mapping_failed", s)
				}
			}
		}
	}
	eventually(t, 60*time.Second, func() string {
		if n := len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "globex", Status: "failure"})); n != 5 {
			return fmt.Sprintf("globex has %d failures logged, want 5", n)
		}
		return ""
	})
	if n := metric(t, e, "syncline_alert_failures_total"); n != 1+burst {
		t.Errorf("%v failures taken for alerting, want acme's %d only", n, 1+burst)
	}

	// The secret shows in no API response and no log line.
	got, err := e.resource.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Tenant", Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	responses = append(responses, protojson.Format(got))
	list, err := e.resource.ListResources(ctx, &controlplanev1.ListResourcesRequest{Kind: "Tenant"})
	if err != nil {
		t.Fatal(err)
	}
	responses = append(responses, protojson.Format(list))
	for _, r := range recs {
		responses = append(responses, protojson.Format(r))
	}
	for what, texts := range map[string][]string{"API response": responses, "log": strings.Split(logs.String(), "\n")} {
		for _, s := range texts {
			if strings.Contains(s, webhookSecret) {
				t.Errorf("a %s shows the alert secret: %s", what, s)
			}
		}
	}
	if !strings.Contains(protojson.Format(got), "(secret)") {
		t.Errorf("get does not show that the secret is set: %s", protojson.Format(got))
	}
}

// TestAlertWebhookNeverSlowsThePipeline: with one tenant's webhook hanging
// and another's down, every event still reaches its target and the API
// log, and the failures were taken for alerting.
func TestAlertWebhookNeverSlowsThePipeline(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	hanging, attempts := hangingWebhook(t)
	webhooks := map[string]string{"acme": hanging, "globex": downWebhook(t)}
	const good, bad = 1000, 100
	for _, tenant := range []string{"acme", "globex"} {
		// The tenant's entry is published before its flows, so its alerts
		// are on before any of its events is mapped.
		if _, err := e.resource.Apply(context.Background(), &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
			tenantWithAlerts(t, tenant, webhooks[tenant], "1s"),
			resourceOf(t, "Integrator", tenant, "shop-to-erp", map[string]any{}),
			resourceOf(t, "Endpoint", tenant, "shop", map[string]any{"type": "nats", "description": "webshop"}),
			resourceOf(t, "Endpoint", tenant, "erp", map[string]any{"type": "sql", "description": "ERP orders", "settings": map[string]any{
				"driver": e.driver, "dsn": e.endpointDSN(), "table": tenant + "_orders", "create_table": true}}),
			resourceOf(t, "Flow", tenant, "orders", map[string]any{"integrator": "shop-to-erp", "source": "shop", "target": "erp", "entity": "order",
				"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number", "total": "double(source.total)"}}}),
		}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tenant := range []string{"acme", "globex"} {
		changes := make([]ingest.Change, 0, good+bad)
		for i := range good + bad {
			payload := order(i, "paid")
			if i%11 == 0 && i/11 < bad {
				payload = fmt.Appendf(nil, `{"number":"SO-%d","status":"paid","total":"n/a","customer":{"email":"b@example.com"}}`, i)
			}
			changes = append(changes, ingest.Change{Tenant: tenant, Endpoint: "shop", Entity: "order", Key: strconv.Itoa(i), Version: 1, Payload: payload})
		}
		e.publish(changes...)
	}
	for _, tenant := range []string{"acme", "globex"} {
		eventually(t, 120*time.Second, func() string {
			recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: tenant})
			failures := 0
			for _, r := range recs {
				if r.Status == "failure" {
					failures++
				}
			}
			if len(recs) != good+bad || failures != bad {
				return fmt.Sprintf("tenant %s's API log has %d records, %d failures; want %d and %d", tenant, len(recs), failures, good+bad, bad)
			}
			if n := len(e.rowsOf(tenant, tenant+"_orders")); n != good {
				return fmt.Sprintf("tenant %s's target has %d rows, want %d", tenant, n, good)
			}
			return ""
		})
	}
	eventually(t, 30*time.Second, func() string {
		if n := metric(t, e, "syncline_alert_failures_total"); n != 2*bad {
			return fmt.Sprintf("%v failures taken for alerting, want %d", n, 2*bad)
		}
		if attempts() == 0 {
			return "the hanging webhook was never called"
		}
		return ""
	})
}

// BenchmarkAlertLatency measures the time from publishing a change that
// the target refuses to its alert arriving at the webhook, in the
// all-in-one mode (SQLite stores, embedded NATS), one failure at a time,
// each after its tenant's interval has passed:
//
//	go test ./tools/allinone -run '^$' -bench AlertLatency -benchtime 20x
func BenchmarkAlertLatency(b *testing.B) {
	dir := b.TempDir()
	dsn := tenantFile(b, dir, "acme", "erp.db")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE orders (external_ref TEXT PRIMARY KEY, order_number TEXT, source_version INTEGER)`); err != nil {
		b.Fatal(err)
	}
	cfg := allinone.Config{DataDir: dir, NATSPort: -1, HTTPAddr: "127.0.0.1:0", AdminToken: "bench-admin-token-0123456789"}
	in, err := allinone.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := in.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = in.Stop(ctx) }()
	arrived := make(chan time.Time, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { arrived <- time.Now() }))
	defer srv.Close()
	const interval = time.Second
	client := controlplanev1connect.NewResourceServiceClient(http.DefaultClient, in.APIURL(), connect.WithInterceptors(auth.Bearer(in.AdminToken())))
	rb := func(kind, tenant, name string, spec map[string]any) *controlplanev1.Resource {
		st, err := structpb.NewStruct(spec)
		if err != nil {
			b.Fatal(err)
		}
		return &controlplanev1.Resource{ApiVersion: "syncline.dev/v1", Kind: kind, Metadata: &controlplanev1.Metadata{Name: name, Tenant: tenant}, Spec: st}
	}
	if _, err := client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: []*controlplanev1.Resource{
		rb("Tenant", "", "acme", map[string]any{"alerts": map[string]any{"webhook": srv.URL, "secret": webhookSecret, "minInterval": interval.String()}}),
		rb("Integrator", "acme", "sync", map[string]any{}),
		rb("Endpoint", "acme", "shop", map[string]any{"type": "nats", "description": "webshop"}),
		rb("Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": map[string]any{"driver": "sqlite", "dsn": dsn, "table": "orders"}}),
		rb("Flow", "acme", "orders", map[string]any{"integrator": "sync", "source": "shop", "target": "erp", "entity": "order",
			"mapping": map[string]any{"fields": map[string]any{"order_number": "source.number", "total": "double(source.total)"}, "exclude": []any{"*"}}}),
	}}); err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect(in.NATSURL(), natsauth.ClientOptions(in.AdminToken())...)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	pub := ingest.NewPublisher(js, nil)
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// A quiet spell: the failure is the first after the interval.
		time.Sleep(interval + 100*time.Millisecond)
		b.StartTimer()
		sent := time.Now()
		if _, err := pub.Publish(ctx, ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "L" + strconv.Itoa(i), Version: 1, Payload: order(i, "paid")}); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-arrived:
			latencies = append(latencies, at.Sub(sent))
		case <-time.After(time.Minute):
			b.Fatal("no alert within a minute")
		}
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Milliseconds()), "ms-median")
	b.ReportMetric(float64(latencies[len(latencies)-1].Milliseconds()), "ms-max")
}
