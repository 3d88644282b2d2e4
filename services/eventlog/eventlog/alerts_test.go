package eventlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/encoding/protojson"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/services/eventlog/apilog"
)

const alertSecret = "alert-secret-0b5e7d2a9c-never-show"

// configs is a fixed AlertConfigs.
type configs map[string]*flowconfig.Alerts

func (c configs) Alerts(tenant string) *flowconfig.Alerts { return c[tenant] }

// received is one request the webhook got.
type received struct {
	header http.Header
	body   []byte
	alert  Alert
}

// receiver is a webhook: status says what to answer the nth request (from
// 0); hang makes it wait until the test ends instead.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	status func(n int) int
	hang   chan struct{}

	mu   sync.Mutex
	reqs []received
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{t: t, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("an alert that is not JSON: %v: %s", err, body)
		}
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, received{header: req.Header.Clone(), body: body, alert: a})
		hang := r.hang
		r.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-req.Context().Done():
			}
			return
		}
		code := http.StatusOK
		if r.status != nil {
			code = r.status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

// fixture is an alerter with short back-off, its log and its metrics.
type alertFixture struct {
	a       *alerter
	box     *secret.Box
	logs    *bytes.Buffer
	logMu   *sync.Mutex
	metrics *AlertMetrics
}

func (f *alertFixture) log() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.logs.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func testBox(t *testing.T) *secret.Box {
	t.Helper()
	k, err := secret.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := secret.ParseKey(k)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// alertsTo is a tenant's alert config for webhook, with alertSecret sealed
// under box.
func alertsTo(t *testing.T, box *secret.Box, tenant, webhook string, interval time.Duration) *flowconfig.Alerts {
	t.Helper()
	sealed, err := box.Seal(flowconfig.AlertsBinding(tenant), []byte(alertSecret))
	if err != nil {
		t.Fatal(err)
	}
	return &flowconfig.Alerts{Webhook: webhook, Secret: sealed, MinInterval: interval}
}

func startAlerter(t *testing.T, box *secret.Box, c configs) *alertFixture {
	t.Helper()
	f := &alertFixture{box: box, logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, metrics: NewAlertMetrics(prometheus.NewRegistry())}
	log := slog.New(slog.NewJSONHandler(lockedWriter{f.logMu, f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.a = newAlerter(c, box, f.metrics, log)
	f.a.backoff = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	if err := f.a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.a.Stop(ctx)
	})
	return f
}

func failed(tenant, flow, key string, at time.Time) failure {
	return failure{stage: "connector", rec: apilog.Record{
		Tenant: tenant, EventID: "ev-" + tenant + "-" + flow + "-" + key, Integrator: "sync", Flow: flow, Entity: "order",
		SourceKey: key, Action: apilog.ActionFailed, Status: apilog.StatusFailure, Reason: "column total does not exist",
		ErrorCode: "target_rejected", Attempts: 1, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", LoggedAt: at,
	}}
}

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
		time.Sleep(10 * time.Millisecond)
	}
}

func waitRequests(t *testing.T, r *receiver, n int) []received {
	t.Helper()
	eventually(t, 30*time.Second, func() string {
		if got := len(r.requests()); got < n {
			return fmt.Sprintf("the webhook got %d requests, want %d", got, n)
		}
		return ""
	})
	return r.requests()
}

// TestOneFailureOneAlert: one failure is one signed alert with every field
// a tenant needs, and the log query that finds it.
func TestOneFailureOneAlert(t *testing.T) {
	box := testBox(t)
	r := newReceiver(t, nil)
	f := startAlerter(t, box, configs{"acme": alertsTo(t, box, "acme", r.srv.URL+"/hooks/acme", time.Minute)})
	at := time.Date(2026, 3, 4, 10, 20, 30, 123456000, time.UTC)
	f.a.notify([]failure{failed("acme", "orders", "R1", at)})

	got := waitRequests(t, r, 1)[0]
	a := got.alert
	if a.Tenant != "acme" || a.Failures != 1 || len(a.Groups) != 1 || a.ID == "" || a.OtherFlowFailures != 0 {
		t.Fatalf("alert = %+v, want one failure of acme in one group", a)
	}
	g := a.Groups[0]
	if g.Integrator != "sync" || g.Flow != "orders" || g.Failures != 1 || g.Codes["target_rejected"] != 1 || g.SamplesOmitted != 0 || len(g.Samples) != 1 {
		t.Errorf("group = %+v", g)
	}
	s := g.Samples[0]
	want := AlertSample{EventID: "ev-acme-orders-R1", RemoteID: "R1", Entity: "order", Stage: "connector", Code: "target_rejected",
		Error: "column total does not exist", Attempts: 1, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", LoggedAt: at}
	if !s.LoggedAt.Equal(at) {
		t.Errorf("sample logged at %s, want %s", s.LoggedAt, at)
	}
	s.LoggedAt = at
	if s != want {
		t.Errorf("sample = %+v,\nwant %+v", s, want)
	}
	if !strings.Contains(a.Summary, "1 failed event of tenant acme") || !strings.Contains(a.Summary, "flow orders") {
		t.Errorf("summary %q", a.Summary)
	}
	wantCmd := "syncline logs --tenant acme --status failure --flow orders --from 2026-03-04T10:20:30Z --to 2026-03-04T10:20:31Z"
	if g.LogQuery.Command != wantCmd || g.LogQuery.Method != "/syncline.eventlog.v1.LogService/QueryLogs" {
		t.Errorf("log query = %+v, want command %q", g.LogQuery, wantCmd)
	}
	var req eventlogv1.QueryLogsRequest
	if err := protojson.Unmarshal(g.LogQuery.Request, &req); err != nil {
		t.Fatalf("the log query's request is no QueryLogsRequest: %v: %s", err, g.LogQuery.Request)
	}
	if req.Tenant != "acme" || req.Flow != "orders" || req.Status != "failure" || req.From.AsTime().After(at) || !req.To.AsTime().After(at) {
		t.Errorf("log query request %s does not select the failure logged at %s", g.LogQuery.Request, at)
	}

	// The signature verifies with the secret, over the body as sent; the
	// timestamp header is the body's sentAt.
	if sig := got.header.Get(HeaderAlertSignature); !hmac.Equal([]byte(sig), []byte(Sign([]byte(alertSecret), got.body))) {
		t.Errorf("signature %q does not verify with the secret", sig)
	}
	if Sign([]byte("another secret of some length"), got.body) == got.header.Get(HeaderAlertSignature) {
		t.Error("the signature verifies with another secret")
	}
	if ts := got.header.Get(HeaderAlertTimestamp); ts != strconv.FormatInt(a.SentAt.Unix(), 10) || a.SentAt.IsZero() {
		t.Errorf("timestamp header %q, sentAt %s", ts, a.SentAt)
	}
	if got.header.Get(HeaderAlertID) != a.ID || got.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", got.header)
	}
	if strings.Contains(string(got.body), alertSecret) || strings.Contains(f.log(), alertSecret) {
		t.Error("the secret is in the alert or the log")
	}
	// The alert counts as sent once the webhook's answer is back, which
	// may be a moment after the receiver has the request.
	eventually(t, 10*time.Second, func() string {
		if v := testutil.ToFloat64(f.metrics.sent); v != 1 {
			return fmt.Sprintf("alerts sent = %v, want 1", v)
		}
		return ""
	})
}

// TestBurstIsAFewAlerts: 10,000 failures over a few intervals are a few
// alerts whose counts add up, each with at most 10 samples per flow and
// saying how many it left out.
func TestBurstIsAFewAlerts(t *testing.T) {
	box := testBox(t)
	r := newReceiver(t, nil)
	f := startAlerter(t, box, configs{"acme": alertsTo(t, box, "acme", r.srv.URL, time.Second)})
	const n = 10_000
	for b := range 100 {
		batch := make([]failure, 0, 100)
		for i := range 100 {
			flow := "orders"
			if i%10 == 0 {
				flow = "invoices"
			}
			batch = append(batch, failed("acme", flow, strconv.Itoa(b*100+i), time.Now()))
		}
		f.a.notify(batch)
		time.Sleep(20 * time.Millisecond)
	}
	var total int
	eventually(t, 60*time.Second, func() string {
		total = 0
		for _, rq := range r.requests() {
			total += rq.alert.Failures
		}
		if total != n {
			return fmt.Sprintf("alerts count %d failures, want %d", total, n)
		}
		return ""
	})
	reqs := r.requests()
	if len(reqs) > 20 {
		t.Errorf("%d alerts for a burst of %d failures, want a few", len(reqs), n)
	}
	perFlow := map[string]int{}
	for _, rq := range reqs {
		sum := 0
		for _, g := range rq.alert.Groups {
			sum += g.Failures
			perFlow[g.Flow] += g.Failures
			if len(g.Samples) > alertSamples || g.SamplesOmitted != g.Failures-len(g.Samples) {
				t.Errorf("group %s: %d failures, %d samples, %d omitted", g.Flow, g.Failures, len(g.Samples), g.SamplesOmitted)
			}
			if g.SamplesOmitted > 0 && !strings.Contains(rq.alert.Summary, "latest 10") {
				t.Errorf("an alert leaves samples out without saying so: %q", rq.alert.Summary)
			}
		}
		if sum != rq.alert.Failures {
			t.Errorf("an alert says %d failures and its groups %d", rq.alert.Failures, sum)
		}
	}
	if perFlow["orders"] != 9000 || perFlow["invoices"] != 1000 {
		t.Errorf("failures per flow %v, want orders 9000 and invoices 1000", perFlow)
	}
	if v := testutil.ToFloat64(f.metrics.failures); v != n {
		t.Errorf("failures taken = %v, want %d", v, n)
	}
}

// TestAlertIsRetried: a webhook that fails (500) and then works gets the
// same alert again, and it counts as sent.
func TestAlertIsRetried(t *testing.T) {
	box := testBox(t)
	r := newReceiver(t, func(n int) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	f := startAlerter(t, box, configs{"acme": alertsTo(t, box, "acme", r.srv.URL+"/hook/tok-3e8a1f", time.Minute)})
	f.a.notify([]failure{failed("acme", "orders", "R1", time.Now())})
	reqs := waitRequests(t, r, 2)
	if reqs[0].alert.ID != reqs[1].alert.ID || reqs[1].alert.Groups[0].Samples[0].RemoteID != "R1" {
		t.Errorf("the retry is another alert: %s then %s", reqs[0].alert.ID, reqs[1].alert.ID)
	}
	eventually(t, 10*time.Second, func() string {
		if s, fl := testutil.ToFloat64(f.metrics.sent), testutil.ToFloat64(f.metrics.failed); s != 1 || fl != 1 {
			return fmt.Sprintf("sent %v, failed attempts %v; want 1 and 1", s, fl)
		}
		return ""
	})
	if l := f.log(); !strings.Contains(l, "retrying") || strings.Contains(l, "tok-3e8a1f") || strings.Contains(l, alertSecret) {
		t.Errorf("the log does not say it retries, or shows the webhook's path or the secret:\n%s", l)
	}
}

// TestAlertIsDroppedInTheEnd: a webhook that keeps failing gets a bounded
// number of attempts, then the alert is dropped with a log line and
// counted; one that refuses it (4xx) gets one attempt.
func TestAlertIsDroppedInTheEnd(t *testing.T) {
	box := testBox(t)
	down := newReceiver(t, func(int) int { return http.StatusBadGateway })
	refusing := newReceiver(t, func(int) int { return http.StatusNotFound })
	f := startAlerter(t, box, configs{
		"acme":   alertsTo(t, box, "acme", down.srv.URL+"/hook/tok-3e8a1f", time.Minute),
		"globex": alertsTo(t, box, "globex", refusing.srv.URL, time.Minute),
	})
	f.a.notify([]failure{failed("acme", "orders", "R1", time.Now()), failed("globex", "orders", "G1", time.Now())})
	eventually(t, 30*time.Second, func() string {
		if v := testutil.ToFloat64(f.metrics.dropped); v != 2 {
			return fmt.Sprintf("%v alerts dropped, want 2", v)
		}
		return ""
	})
	if got, want := len(down.requests()), 1+len(f.a.backoff); got != want {
		t.Errorf("a failing webhook got %d attempts, want %d", got, want)
	}
	if got := len(refusing.requests()); got != 1 {
		t.Errorf("a refusing webhook got %d attempts, want 1", got)
	}
	l := f.log()
	if strings.Count(l, `"msg":"alert dropped"`) != 2 || !strings.Contains(l, "502 Bad Gateway") || !strings.Contains(l, "404 Not Found") {
		t.Errorf("the log does not say which alerts were dropped and why:\n%s", l)
	}
	if strings.Contains(l, "tok-3e8a1f") || strings.Contains(l, alertSecret) {
		t.Errorf("the log shows the webhook's path or the secret:\n%s", l)
	}
}

// TestHangingWebhookNeverBlocks: while a webhook hangs, failures are still
// taken (notify returns, counts go on), and a tenant's second alert waits
// for its first instead of piling up requests.
func TestHangingWebhookNeverBlocks(t *testing.T) {
	box := testBox(t)
	r := newReceiver(t, nil)
	r.hang = make(chan struct{})
	f := startAlerter(t, box, configs{"acme": alertsTo(t, box, "acme", r.srv.URL, time.Second)})
	f.a.notify([]failure{failed("acme", "orders", "first", time.Now())})
	waitRequests(t, r, 1)
	for i := range 1000 {
		f.a.notify([]failure{failed("acme", "orders", strconv.Itoa(i), time.Now())})
	}
	if v := testutil.ToFloat64(f.metrics.failures); v != 1001 {
		t.Errorf("failures taken while the webhook hangs = %v, want 1001", v)
	}
	if n := f.a.pending(); n != 1000 {
		t.Errorf("%d failures pending, want 1000", n)
	}
	if n := len(r.requests()); n != 1 {
		t.Errorf("the webhook got %d requests while the first hangs, want 1", n)
	}
	close(r.hang)
	r.mu.Lock()
	r.hang = nil
	r.mu.Unlock()
	eventually(t, 30*time.Second, func() string {
		total := 0
		for _, rq := range r.requests() {
			total += rq.alert.Failures
		}
		if total != 1001 {
			return fmt.Sprintf("alerts count %d failures, want 1001", total)
		}
		return ""
	})
}

// TestOnlyTenantsWithAlerts: failures of a tenant without alerts are not
// taken, and a tenant's alert holds its own failures only.
func TestOnlyTenantsWithAlerts(t *testing.T) {
	box := testBox(t)
	r := newReceiver(t, nil)
	f := startAlerter(t, box, configs{"acme": alertsTo(t, box, "acme", r.srv.URL, time.Minute)})
	f.a.notify([]failure{failed("globex", "orders", "G1", time.Now()), failed("acme", "orders", "A1", time.Now()), failed("globex", "orders", "G2", time.Now())})
	reqs := waitRequests(t, r, 1)
	if a := reqs[0].alert; a.Tenant != "acme" || a.Failures != 1 || a.Groups[0].Samples[0].RemoteID != "A1" {
		t.Errorf("acme's alert = %+v, want its one failure only", a)
	}
	if v := testutil.ToFloat64(f.metrics.failures); v != 1 {
		t.Errorf("failures taken = %v, want acme's 1", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.requests()); n != 1 {
		t.Errorf("%d requests, want acme's 1", n)
	}
}

// TestFailureCountsOnce: a target's refusal arrives as an audit record and
// as a dead letter; it is one failure, shown as dead-lettered.
func TestFailureCountsOnce(t *testing.T) {
	box := testBox(t)
	r := newReceiver(t, nil)
	f := startAlerter(t, box, configs{"acme": alertsTo(t, box, "acme", r.srv.URL, time.Minute)})
	audit := failed("acme", "orders", "R1", time.Now())
	dead := audit
	dead.deadLetter = true
	f.a.notify([]failure{audit, dead})
	a := waitRequests(t, r, 1)[0].alert
	if a.Failures != 1 || !a.Groups[0].Samples[0].DeadLetter {
		t.Errorf("alert = %+v, want one dead-lettered failure", a)
	}
	// A redelivered batch after the alert adds nothing either.
	f.a.notify([]failure{audit, dead})
	if n := f.a.pending(); n != 0 {
		t.Errorf("%d failures pending after a redelivery, want 0", n)
	}
}

// TestStopSendsWhatIsPending: failures waiting for the tenant's interval
// are sent when the eventlog stops, not lost.
func TestStopSendsWhatIsPending(t *testing.T) {
	box := testBox(t)
	r := newReceiver(t, nil)
	f := startAlerter(t, box, configs{"acme": alertsTo(t, box, "acme", r.srv.URL, time.Hour)})
	f.a.notify([]failure{failed("acme", "orders", "R1", time.Now())})
	waitRequests(t, r, 1)
	f.a.notify([]failure{failed("acme", "orders", "R2", time.Now())})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := r.requests()
	if len(reqs) != 2 || reqs[1].alert.Groups[0].Samples[0].RemoteID != "R2" {
		t.Fatalf("after stopping, the webhook got %d alerts, want R1's and then R2's", len(reqs))
	}
}

// TestPausedFlowAlerts: a flow paused by its circuit breaker is an alert of
// its own, with the endpoint and the target's error; the same pause told by
// a second connector replica is not told twice; the resume is told, and is
// grouped with failures that come with it.
func TestPausedFlowAlerts(t *testing.T) {
	box := testBox(t)
	r := newReceiver(t, nil)
	f := startAlerter(t, box, configs{"acme": alertsTo(t, box, "acme", r.srv.URL, 0)})
	since := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	paused := &stage.FlowNotice{Kind: stage.NoticeFlowPaused, Tenant: "acme", Integrator: "sync", Flow: "orders", Endpoint: "erp",
		Reason: "dial tcp 10.0.0.5:5432: connect: connection refused", Failures: 3, Since: since, At: since.Add(3 * time.Second)}
	f.a.flowNotices([]*stage.FlowNotice{paused})

	a := waitRequests(t, r, 1)[0].alert
	want := FlowChange{Flow: "orders", Integrator: "sync", Endpoint: "erp", State: FlowPaused, Reason: paused.Reason, Failures: 3,
		Since: since, At: since.Add(3 * time.Second)}
	if a.Tenant != "acme" || a.Failures != 0 || len(a.Groups) != 0 || len(a.Flows) != 1 || a.Flows[0] != want {
		t.Fatalf("alert = %+v, want only the pause %+v", a, want)
	}
	if !a.From.Equal(want.At) || !a.To.Equal(want.At) {
		t.Errorf("alert from %s to %s, want the pause's time %s", a.From, a.To, want.At)
	}
	for _, s := range []string{"tenant acme", "flow orders paused", "target erp", "connection refused", "held"} {
		if !strings.Contains(a.Summary, s) {
			t.Errorf("summary %q does not say %q", a.Summary, s)
		}
	}

	// Another replica tells of the same pause: nothing new to say.
	again := *paused
	again.At = again.At.Add(time.Second)
	f.a.flowNotices([]*stage.FlowNotice{&again})
	resumed := *paused
	resumed.Kind, resumed.Reason, resumed.Failures, resumed.At = stage.NoticeFlowResumed, "", 7, since.Add(2*time.Minute)
	f.a.notify([]failure{failed("acme", "orders", "R1", time.Now())})
	f.a.flowNotices([]*stage.FlowNotice{&resumed})
	reqs := waitRequests(t, r, 2)
	a = reqs[1].alert
	if a.Failures != 1 || len(a.Flows) != 1 || a.Flows[0].State != FlowResumed || a.Flows[0].Endpoint != "erp" {
		t.Fatalf("second alert = %+v, want the failure and the resume, not the repeated pause", a)
	}
	if !strings.Contains(a.Summary, "1 failed event of tenant acme") || !strings.Contains(a.Summary, "flow orders resumed") || !strings.Contains(a.Summary, "2m0s") {
		t.Errorf("summary %q", a.Summary)
	}
	time.Sleep(3 * alertGather)
	if n := len(r.requests()); n != 2 {
		t.Errorf("%d alerts, want 2", n)
	}
}
