package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/syncline/syncline/connectors/rest/jsonservertest"
	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	eventv1 "github.com/syncline/syncline/pkg/api/syncline/event/v1"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/tools/allinone"
	"github.com/syncline/syncline/tools/internal/bench"
)

// report is one backend's figures; the child prints it as JSON.
type report struct {
	Backend string
	Target  string
	// Budget is the target endpoint's budget; BudgetWaitSeconds the time
	// pushes waited on it in all, and Throttles how often the target asked
	// to slow down.
	Budget            string
	BudgetWaitSeconds float64
	Throttles         int
	Partitions        int
	Events            int
	EventsPerSecond   float64
	BurstP50          time.Duration
	BurstP99          time.Duration
	PacedRate         int
	PacedP50          time.Duration
	PacedP99          time.Duration
	PeakRSSBytes      int64
	// PacedRSSBytes is the peak resident set of the paced run, which runs
	// first: the memory of steady traffic rather than of a burst's backlog.
	// PeakRSSBytes is the burst's.
	PacedRSSBytes int64
	// Cost is what the burst cost per event.
	Cost cost
}

func child(ctx context.Context, f flags) error {
	dir, err := os.MkdirTemp("", "syncline-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	cfg := allinone.Config{DataDir: dir, NATSPort: -1, HTTPAddr: "127.0.0.1:0", AdminToken: "bench-admin-token-0123456789", Bus: bus.DefaultConfig()}
	cfg.Bus.Partitions = f.parts
	// Warnings and errors show: a stage that rewinds or retries in a run
	// explains its figures.
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// WAL with synchronous=NORMAL: how anyone who cares about write speed
	// runs a SQLite database (see the sql target's README).
	// The file is in the bench tenant's folder of the data folder.
	driver, dsn := "sqlite", "erp.db?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	var pg *bench.Server
	if f.backend == "postgres" {
		storeURL, dropStore, err := bench.FreshDatabase(ctx, "syncline_bench_store")
		if err != nil {
			return err
		}
		defer dropStore()
		targetURL, dropTarget, err := bench.FreshDatabase(ctx, "syncline_bench_target")
		if err != nil {
			return err
		}
		defer dropTarget()
		cfg.DatabaseURL, driver, dsn = storeURL, "postgres", targetURL
		// The meter's connection is to the store's database, so that its
		// own queries are not another database's transactions.
		pg, err = bench.OpenServer(ctx, storeURL, bench.DatabaseName(storeURL), bench.DatabaseName(targetURL))
		if err != nil {
			fmt.Fprintf(os.Stderr, "  PostgreSQL's CPU time is not measured: %v\n", err)
		} else {
			defer pg.Close()
		}
		// The target is another database on the store's server, which
		// the egress policy allows as an operator would.
		u, err := url.Parse(targetURL)
		if err != nil {
			return err
		}
		cfg.Egress.Allow = []string{u.Host}
	} else if f.backend != "sqlite" {
		return fmt.Errorf("backend %q: use sqlite or postgres", f.backend)
	}
	target := targetSQL(driver, dsn)
	if f.target == "rest" {
		peer, err := jsonservertest.Start()
		if err != nil {
			return err
		}
		defer peer.Stop()
		if err := resetPeer(ctx, peer.URL, `{"db":{"orders":[]}}`); err != nil {
			return err
		}
		u, err := url.Parse(peer.URL)
		if err != nil {
			return err
		}
		cfg.Egress.Allow = append(cfg.Egress.Allow, u.Host)
		target = targetREST(peer.URL)
	} else if f.target != "sql" {
		return fmt.Errorf("target %q: use sql or rest", f.target)
	}
	in, err := allinone.New(cfg)
	if err != nil {
		return err
	}
	if err := in.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = in.Stop(stopCtx)
	}()
	if err := applyFlow(ctx, in, target); err != nil {
		return err
	}

	// The load generator reads the audit stream for its latencies, so it
	// connects with the services' rights, not a publisher's token.
	nc, js, err := serviceConn(in)
	if err != nil {
		return err
	}
	defer nc.Close()
	lat := newLatencies()
	sub, err := nc.Subscribe("audit.bench.orders.*", lat.observe)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	pub := ingest.NewPublisher(js, nil)

	r := report{Backend: f.backend, Target: f.target, Partitions: in.Partitions(), Events: f.events, PacedRate: f.rate, Budget: budgetOf(target)}

	// Warm up (the target table is created, statements prepared), unmeasured.
	warm, err := paced(ctx, pub, "W", f.rate, 2*time.Second)
	if err != nil {
		return err
	}
	if err := lat.waitFor(ctx, warm, time.Minute); err != nil {
		return err
	}
	lat.reset()

	// Latency and memory at a steady rate, first, while the process is fresh.
	resetPeakRSS()
	n, err := paced(ctx, pub, "P", f.rate, f.paced)
	if err != nil {
		return err
	}
	if err := lat.waitFor(ctx, n, 5*time.Minute); err != nil {
		return err
	}
	r.PacedP50, r.PacedP99 = lat.percentiles()
	printStages(in)
	r.PacedRSSBytes = bench.PeakRSS(0)
	lat.reset()
	heapProfile(f.profile, ".pacedheap."+f.backend)

	// Then throughput: publish everything as fast as the bus takes it, from a few
	// publishers at once, and time until the last event reached the target.
	stopProfile, err := cpuProfile(f.profile, "."+f.backend)
	if err != nil {
		return err
	}
	defer stopProfile()
	resetPeakRSS()
	m, err := startMeter(ctx, pg)
	if err != nil {
		return err
	}
	start := m.start
	publisherCPU, err := publishElsewhere(ctx, "ingest", in.NATSURL(), in.AdminToken(), f.events, f.batch)
	if err != nil {
		return err
	}
	if err := lat.waitFor(ctx, f.events, 10*time.Minute); err != nil {
		return err
	}
	if r.Cost, err = m.stop(ctx, f.events); err != nil {
		return err
	}
	r.Cost.PublisherCPUMicros = float64(publisherCPU.Microseconds()) / float64(f.events)
	stopProfile()
	printStages(in)
	heapProfile(f.profile, ".heap."+f.backend)

	elapsed := lat.last().Sub(start)
	r.EventsPerSecond = float64(f.events) / elapsed.Seconds()
	r.BurstP50, r.BurstP99 = lat.percentiles()

	r.PeakRSSBytes = bench.PeakRSS(0)
	r.BudgetWaitSeconds, r.Throttles = budgetFigures(in)
	return json.NewEncoder(os.Stdout).Encode(r)
}

func burst(ctx context.Context, pub *ingest.Publisher, events, batch int) error {
	return inBatches(events, batch, func() func(from, to int) error {
		changes := make([]ingest.Change, 0, batch)
		return func(from, to int) error {
			changes = changes[:0]
			for i := from; i < to; i++ {
				changes = append(changes, change("B", i))
			}
			_, err := pub.Publish(ctx, changes...)
			return err
		}
	})
}

// inBatches sends events in batches of batch from four publishers at once, as a busy source
// does: each publisher (made by publisher, with what it reuses between batches) takes the
// next batch [from, to) until none is left. It returns the publishers' errors.
func inBatches(events, batch int, publisher func() func(from, to int) error) error {
	const publishers = 4
	var next atomic.Int64
	errs := make(chan error, publishers)
	for range publishers {
		send := publisher()
		go func() {
			for {
				from := int(next.Add(int64(batch))) - batch
				if from >= events {
					errs <- nil
					return
				}
				if err := send(from, min(from+batch, events)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
	for range publishers {
		err = errors.Join(err, <-errs)
	}
	return err
}

func paced(ctx context.Context, pub *ingest.Publisher, prefix string, rate int, d time.Duration) (int, error) {
	const tick = 10 * time.Millisecond
	perTick := max(rate/int(time.Second/tick), 1)
	t := time.NewTicker(tick)
	defer t.Stop()
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-t.C:
		}
		changes := make([]ingest.Change, perTick)
		for i := range changes {
			changes[i] = change(prefix, n+i)
		}
		if _, err := pub.Publish(ctx, changes...); err != nil {
			return n, err
		}
		n += perTick
	}
	return n, nil
}

// filler pads each order to about 1 KiB.
var filler = strings.Repeat("x", 420)

func change(prefix string, i int) ingest.Change {
	key := prefix + strconv.Itoa(i)
	payload := fmt.Appendf(nil, `{"number":"SO-%s","status":"paid","currency":"EUR","total":%d.95,`+
		`"customer":{"name":"Customer %d","email":"Customer%d@Example.com","company":"Company %d BV","phone":"+31 20 555 %04d"},`+
		`"shipping":{"street":"Keizersgracht %d","city":"Amsterdam","zip":"1015 CJ","country":"NL"},`+
		`"lines":[{"sku":"100%04d","qty":2,"price":19.95},{"sku":"200%04d","qty":1,"price":%d.05}],"note":%q}`,
		key, i%1000, i, i, i, i%10000, i%500, i%10000, i%10000, i%900, filler)
	return ingest.Change{Tenant: "bench", Endpoint: "shop", Entity: "order", Key: key, Version: 1, Payload: payload}
}

// targetSQL is the sql target endpoint's spec: a table the target creates.
func targetSQL(driver, dsn string) map[string]any {
	return map[string]any{"type": "sql", "description": "target table",
		"settings": map[string]any{"driver": driver, "dsn": dsn, "table": "orders", "create_table": true}}
}

// restConcurrency is the rest target's budget in the bench: requests at once
// to the shop, as an operator would cap a webshop's API.
const restConcurrency = 8

// targetREST is the rest target endpoint's spec: json-server's orders
// collection, within a budget.
func targetREST(base string) map[string]any {
	return map[string]any{"type": "rest", "description": "webshop API (json-server)",
		"settings": map[string]any{"base_url": base, "max_concurrency": restConcurrency,
			"entities": map[string]any{"order": map[string]any{"path": "/orders"}}}}
}

// budgetOf describes a target endpoint spec's budget.
func budgetOf(target map[string]any) string {
	settings, _ := target["settings"].(map[string]any)
	rate, _ := settings["max_requests_per_second"].(int)
	conc, _ := settings["max_concurrency"].(int)
	if rate == 0 && conc == 0 {
		return "none"
	}
	var parts []string
	if rate > 0 {
		parts = append(parts, fmt.Sprintf("%d/s", rate))
	}
	if conc > 0 {
		parts = append(parts, fmt.Sprintf("%d at once", conc))
	}
	return strings.Join(parts, ", ")
}

// resetPeer replaces json-server's state with state (see jsonservertest's
// server.js).
func resetPeer(ctx context.Context, base, state string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/__peer/reset", strings.NewReader(state))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("resetting json-server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("resetting json-server: %s", resp.Status)
	}
	return nil
}

// budgetFigures reads the target budget's metrics: seconds waited in all and
// throttles.
func budgetFigures(in *allinone.Instance) (wait float64, throttles int) {
	mfs, err := in.Registry().Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "syncline_budget_wait_seconds":
				wait += m.GetHistogram().GetSampleSum()
			case "syncline_budget_throttles_total":
				throttles += int(m.GetCounter().GetValue())
			}
		}
	}
	return wait, throttles
}

func applyFlow(ctx context.Context, in *allinone.Instance, target map[string]any) error {
	return apply(ctx, in, []*controlplanev1.Resource{
		resource("Tenant", "", "bench", map[string]any{}),
		resource("Integrator", "bench", "load", map[string]any{}),
		resource("Endpoint", "bench", "shop", map[string]any{"type": "nats", "description": "load generator"}),
		resource("Endpoint", "bench", "erp", target),
		resource("Flow", "bench", "orders", map[string]any{
			"integrator": "load", "source": "shop", "target": "erp", "entity": "order",
			"mapping": map[string]any{
				"filter": `source.status in ["paid", "shipped"]`,
				"fields": map[string]any{
					"order_number":   "source.number",
					"status":         "source.status",
					"currency":       "source.currency",
					"total":          "double(source.total)",
					"customer_name":  "source.customer.name",
					"customer_email": "source.customer.email.lowerAscii()",
					"company":        "source.customer.company",
					"city":           "source.shipping.city",
					"country":        "source.shipping.country",
					"lines":          "size(source.lines)",
				},
				"defaults": map[string]any{"employee_number": 999999},
			},
		}),
	})
}

// resource is a resource of the control plane's API with spec.
func resource(kind, tenant, name string, spec map[string]any) *controlplanev1.Resource {
	s, err := structpb.NewStruct(spec)
	if err != nil {
		panic(err) // the bench's specs are literals
	}
	return &controlplanev1.Resource{ApiVersion: "syncline.dev/v1", Kind: kind, Metadata: &controlplanev1.Metadata{Name: name, Tenant: tenant}, Spec: s}
}

// apply applies resources with the admin token.
func apply(ctx context.Context, in *allinone.Instance, resources []*controlplanev1.Resource) error {
	client := controlplanev1connect.NewResourceServiceClient(http.DefaultClient, in.APIURL(), connect.WithInterceptors(auth.Bearer(in.AdminToken())))
	if _, err := client.Apply(ctx, &controlplanev1.ApplyRequest{Resources: resources}); err != nil {
		return fmt.Errorf("applying the bench's resources: %w", err)
	}
	return nil
}

// latencies collects publish-to-target times from the connector's audit
// events, and the failures any stage reports: a failure is final (the event
// is dead-lettered), so a run waiting for its events stops at the first.
type latencies struct {
	mu       sync.Mutex
	seen     map[string]bool
	times    []time.Duration
	lastAt   time.Time
	failures []string
	// outcomes counts the connector's outcomes by action and code
	// ("created", "skipped duplicate"), over every event since the start.
	outcomes map[string]int
}

func newLatencies() *latencies {
	return &latencies{seen: map[string]bool{}, outcomes: map[string]int{}}
}

// observe takes the audit records of m, a message or a frame of them.
func (l *latencies) observe(m *nats.Msg) {
	now := time.Now()
	events, err := bus.Unframe(m.Header, m.Data)
	if err != nil {
		return
	}
	for _, ev := range events {
		l.observeOne(now, ev.Data)
	}
}

func (l *latencies) observeOne(now time.Time, data []byte) {
	e, err := envelope.DecodeStaged(data)
	if err != nil {
		return
	}
	if r := e.GetResult(); r.GetAction() == eventv1.Action_ACTION_FAILED {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.failures = append(l.failures, fmt.Sprintf("%s %s failed at the %s (%s): %s", e.Entity, e.SourceKey, r.GetStage(), r.GetCode(), r.GetReason()))
		return
	}
	if e.GetResult().GetStage() != "connector" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[e.EventId] {
		return
	}
	// A clone: the decoded id shares one allocation with the rest of its
	// envelope, which the map would otherwise keep for every event.
	l.seen[strings.Clone(e.EventId)] = true
	l.outcomes[strings.TrimSpace(strings.ToLower(strings.TrimPrefix(e.GetResult().GetAction().String(), "ACTION_"))+" "+e.GetResult().GetCode())]++
	l.times = append(l.times, now.Sub(e.PublishedAt.AsTime()))
	l.lastAt = now
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.times)
}

func (l *latencies) last() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastAt
}

func (l *latencies) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.times = nil
}

func (l *latencies) waitFor(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for l.count() < n {
		if err := l.failed(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d events reached the target within %s", l.count(), n, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// failed says which events failed, if any did.
func (l *latencies) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) == 0 {
		return nil
	}
	more := ""
	if len(l.failures) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(l.failures)-1)
	}
	return fmt.Errorf("%s%s", l.failures[0], more)
}

func (l *latencies) percentiles() (p50, p99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.times)
	slices.Sort(s)
	if len(s) == 0 {
		return 0, 0
	}
	return s[len(s)*50/100], s[min(len(s)*99/100, len(s)-1)]
}

// printStages writes each stage's batch count, mean batch size and time
// spent handling batches to stderr: where the time of the run went. The
// line before them says how much CPU time the process has used so far and
// how much of it went to garbage collection, which noise from other
// programs on the machine changes less than the wall-clock figures.
func printStages(in *allinone.Instance) {
	samples := []metrics.Sample{{Name: "/cpu/classes/total:cpu-seconds"}, {Name: "/cpu/classes/idle:cpu-seconds"}, {Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(samples)
	busy := samples[0].Value.Float64() - samples[1].Value.Float64()
	fmt.Fprintf(os.Stderr, "  cpu %.2f s, of which gc %.2f s (runtime estimates); Go memory %.0f MB, of which heap objects %.0f MB, released %.0f MB\n",
		busy, samples[2].Value.Float64(), mb(int64(samples[3].Value.Uint64())), mb(int64(samples[4].Value.Uint64())), mb(int64(samples[5].Value.Uint64())))
	mfs, err := in.Registry().Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "syncline_stage_batch_size", "syncline_stage_batch_seconds":
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				stage := m.GetLabel()[0].GetValue()
				fmt.Fprintf(os.Stderr, "  %-10s %-30s batches %6d  mean %.4f  sum %.2f\n", stage, mf.GetName(), h.GetSampleCount(), h.GetSampleSum()/float64(max(h.GetSampleCount(), 1)), h.GetSampleSum())
			}
		}
	}
}

// serviceConn connects to in's NATS server with the services' rights (the load generator
// reads the audit stream for its latencies) and publishes asynchronously with a deep queue.
func serviceConn(in *allinone.Instance) (*nats.Conn, jetstream.JetStream, error) {
	natsOpts, err := in.ServiceNATSOptions()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(in.NATSURL(), natsOpts...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// cpuProfile starts a CPU profile into prefix+suffix when prefix (-cpuprofile) is set; stop
// ends it, and may be called more than once.
func cpuProfile(prefix, suffix string) (stop func(), err error) {
	if prefix == "" {
		return func() {}, nil
	}
	out, err := os.Create(prefix + suffix)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			out.Close()
		})
	}, nil
}

// heapProfile writes a heap profile to prefix+suffix when prefix (-cpuprofile) is set.
func heapProfile(prefix, suffix string) {
	if prefix == "" {
		return
	}
	if out, err := os.Create(prefix + suffix); err == nil {
		_ = pprof.WriteHeapProfile(out)
		out.Close()
	}
}
