// Command logbench measures the API log on PostgreSQL at scale: it creates a fresh database,
// loads a realistic API log (by default 1,000,000 records: several tenants, integrators,
// flows and entities, about 2% failures with a handful of error codes, remote ids that recur,
// 30 days of timestamps) through the store's own Insert in batches, and reports the ingest
// rate and, for every documented query — QueryLogs with each filter, the report and the
// providers report's traffic count — the median time of one page over several runs, with the
// indexes the plan uses and, for a query slower than the target, the whole plan.
//
// The database is dropped at the end unless -keep is given.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/services/eventlog/apilog"
)

type flags struct {
	url     string
	records int
	batch   int
	runs    int
	target  time.Duration
	keep    bool
}

func main() {
	var f flags
	flag.StringVar(&f.url, "url", cmp.Or(os.Getenv(pgtest.EnvURL), pgtest.DefaultURL), "PostgreSQL server where this user may create a database ($"+pgtest.EnvURL+")")
	flag.IntVar(&f.records, "records", 1_000_000, "records to load")
	flag.IntVar(&f.batch, "batch", 1000, "records per Insert")
	flag.IntVar(&f.runs, "runs", 7, "timed runs per query (the median is reported)")
	flag.DurationVar(&f.target, "target", 100*time.Millisecond, "a query slower than this (median) is shown with its whole plan")
	flag.BoolVar(&f.keep, "keep", false, "keep the database at the end, and print its URL")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "logbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, f flags) error {
	switch {
	case f.records < 1:
		return fmt.Errorf("-records %d: load at least one record", f.records)
	case f.batch < 1:
		return fmt.Errorf("-batch %d: use a positive batch size", f.batch)
	case f.runs < 1:
		return fmt.Errorf("-runs %d: time each query at least once", f.runs)
	}
	dbURL, drop, err := createDatabase(ctx, f.url)
	if err != nil {
		return err
	}
	if f.keep {
		fmt.Fprintf(os.Stderr, "logbench: keeping database %s\n", sqlstore.Redact(dbURL))
	} else {
		defer drop()
	}
	rec := &recorder{}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("reading the database URL: %w", err)
	}
	cfg.ConnConfig.Tracer = rec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", sqlstore.Redact(dbURL), err)
	}
	defer pool.Close()
	store, err := apilog.New(ctx, &sqlstore.DB{Dialect: sqlstore.Postgres, PG: pool})
	if err != nil {
		return err
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	data := newDataset(now, f.records)
	fmt.Fprintf(os.Stderr, "loading %d records in batches of %d…\n", f.records, f.batch)
	elapsed, err := load(ctx, store, data, f.batch)
	if err != nil {
		return err
	}
	fmt.Printf("ingest: %d records in %.1f s: %.0f records/s (Insert, batches of %d, one writer)\n",
		f.records, elapsed.Seconds(), float64(f.records)/elapsed.Seconds(), f.batch)
	// What autovacuum does to a table after this many inserts, done now rather than whenever
	// it comes round: statistics for the planner, and the visibility map for index-only scans.
	start := time.Now()
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE api_log_records, api_log_days, api_log_day_errors"); err != nil {
		return fmt.Errorf("vacuuming: %w", err)
	}
	var tableSize, indexSize, rollupSize int64
	if err := pool.QueryRow(ctx, `SELECT pg_table_size('api_log_records'), pg_indexes_size('api_log_records'),
	pg_total_relation_size('api_log_days') + pg_total_relation_size('api_log_day_errors')`).Scan(&tableSize, &indexSize, &rollupSize); err != nil {
		return fmt.Errorf("measuring the tables: %w", err)
	}
	fmt.Printf("VACUUM ANALYZE: %.1f s; table %d MB, indexes %d MB, daily rollups %d MB\n\n",
		time.Since(start).Seconds(), tableSize>>20, indexSize>>20, rollupSize>>20)

	var slow []result
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "query (tenant %s, %d of %d records)\tmedian\tmin\tmax\trows\tindexes in the plan\n", data.big, data.perTenant[data.big], f.records)
	for _, q := range queries(store, data, now) {
		r, err := measure(ctx, pool, rec, q, f.runs)
		if err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", q.name, ms(r.median), ms(r.min), ms(r.max), r.rows, r.indexes)
		if r.median > f.target {
			slow = append(slow, r)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range slow {
		fmt.Printf("\n%s takes %s, over %s:\n%s\n", r.name, ms(r.median), ms(f.target), r.plan)
	}
	return nil
}

// createDatabase creates an empty database on the server at adminURL and returns its URL and
// a function that drops it.
func createDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("-url %s: use a postgres:// URL such as %s", sqlstore.Redact(adminURL), pgtest.DefaultURL)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "syncline_logbench_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to %s: %w (start the machine's server with `make postgres`)", sqlstore.Redact(adminURL), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("creating database %s: %w", name, err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err == nil {
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "logbench: dropping database %s: %v\n", name, err)
		}
	}
	dbURL := *u
	dbURL.Path, dbURL.RawPath = "/"+name, ""
	return dbURL.String(), drop, nil
}

// load inserts the dataset in time order, batch by batch, as the eventlog service does, and
// returns the time the inserts took (generating the records is not counted).
func load(ctx context.Context, store apilog.Store, data *dataset, batch int) (time.Duration, error) {
	rs := make([]apilog.Record, batch)
	var elapsed time.Duration
	for done := 0; done < data.n; {
		n := min(batch, data.n-done)
		for i := range n {
			data.record(done+i, &rs[i])
		}
		start := time.Now()
		if err := store.Insert(ctx, rs[:n]); err != nil {
			return 0, err
		}
		elapsed += time.Since(start)
		done += n
	}
	return elapsed, nil
}

// query is one documented query.
type query struct {
	name string
	run  func(ctx context.Context) (rows int, err error)
}

// queries are the documented queries on the largest tenant, each filter on its rarest value
// (the most rows to skip), and the reports over their default range.
func queries(store apilog.Store, d *dataset, now time.Time) []query {
	page := func(q apilog.Query) func(context.Context) (int, error) {
		q.Tenant = d.big
		return func(ctx context.Context) (int, error) {
			p, err := store.Query(ctx, q)
			return len(p.Records), err
		}
	}
	rareFlow := d.rarest(func(f *flowSpec) string { return f.name })
	rareIntegrator := d.rarest(func(f *flowSpec) string { return f.integrator })
	rareEntity := d.rarest(func(f *flowSpec) string { return f.entity })
	day := now.Truncate(24*time.Hour).AddDate(0, 0, -10)
	weekFrom := now.Truncate(24*time.Hour).AddDate(0, 0, -6)
	weekTo := weekFrom.AddDate(0, 0, 7)
	report := func(q apilog.ReportQuery) func(context.Context) (int, error) {
		q.Tenant = d.big
		return func(ctx context.Context) (int, error) {
			rows, err := store.Report(ctx, q)
			return len(rows), err
		}
	}
	var cursor string
	return []query{
		{"QueryLogs: no filter", page(apilog.Query{})},
		{"QueryLogs: next page (cursor)", func(ctx context.Context) (int, error) {
			if cursor == "" {
				p, err := store.Query(ctx, apilog.Query{Tenant: d.big})
				if err != nil {
					return 0, err
				}
				cursor = p.NextCursor
			}
			p, err := store.Query(ctx, apilog.Query{Tenant: d.big, Cursor: cursor})
			return len(p.Records), err
		}},
		{"QueryLogs: remote id", page(apilog.Query{SourceKey: d.remoteID})},
		{"QueryLogs: status=failure", page(apilog.Query{Status: apilog.StatusFailure})},
		{"QueryLogs: one day, 10 days ago", page(apilog.Query{From: day, To: day.AddDate(0, 0, 1)})},
		{"QueryLogs: integrator " + rareIntegrator, page(apilog.Query{Integrator: rareIntegrator})},
		{"QueryLogs: flow " + rareFlow, page(apilog.Query{Flow: rareFlow})},
		{"QueryLogs: entity " + rareEntity, page(apilog.Query{Entity: rareEntity})},
		{"QueryLogs: action=deleted", page(apilog.Query{Action: apilog.ActionDeleted})},
		{"QueryLogs: action=failed", page(apilog.Query{Action: apilog.ActionFailed})},
		{"QueryLogs: integrator matching nothing", page(apilog.Query{Integrator: "no-such-integrator"})},
		{"Report: last 7 days", report(apilog.ReportQuery{From: weekFrom, To: weekTo})},
		{"Report: last 7 days, flow " + rareFlow, report(apilog.ReportQuery{From: weekFrom, To: weekTo, Flow: rareFlow})},
		{"Report: last 30 days", report(apilog.ReportQuery{From: weekTo.AddDate(0, 0, -30), To: weekTo})},
		{"Report: last 24 hours (parts of two days)", report(apilog.ReportQuery{From: now.Add(-24 * time.Hour), To: now})},
		{"Providers traffic: last 7 days", func(ctx context.Context) (int, error) {
			rows, err := store.Traffic(ctx, apilog.TrafficQuery{Tenant: d.big, From: weekFrom, To: weekTo})
			return len(rows), err
		}},
	}
}

type result struct {
	name             string
	median, min, max time.Duration
	rows             int
	indexes          string
	plan             string
}

// measure runs q once to warm the cache, then runs times, and explains the statements of its
// last run.
func measure(ctx context.Context, pool *pgxpool.Pool, rec *recorder, q query, runs int) (result, error) {
	r := result{name: q.name}
	if _, err := q.run(ctx); err != nil {
		return r, err
	}
	times := make([]time.Duration, runs)
	for i := range times {
		rec.reset()
		start := time.Now()
		n, err := q.run(ctx)
		if err != nil {
			return r, err
		}
		times[i], r.rows = time.Since(start), n
	}
	slices.Sort(times)
	r.median, r.min, r.max = times[len(times)/2], times[0], times[len(times)-1]
	// The statements are explained as they ran: in one transaction, with its settings.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return r, err
	}
	defer tx.Rollback(ctx)
	var plans, indexes []string
	for _, s := range rec.statements() {
		switch verb := strings.ToUpper(strings.Fields(s.sql)[0]); verb {
		case "SET":
			if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
				return r, err
			}
			continue
		case "SELECT", "WITH":
		default:
			continue
		}
		var lines []string
		rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+s.sql, s.args...)
		if err != nil {
			return r, fmt.Errorf("explaining: %w", err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return r, err
			}
			lines = append(lines, line)
			for _, m := range indexUse.FindAllStringSubmatch(line, -1) {
				use := m[1] + " " + m[2]
				if !slices.Contains(indexes, use) {
					indexes = append(indexes, use)
				}
			}
		}
		if err := rows.Err(); err != nil {
			return r, fmt.Errorf("explaining: %w", err)
		}
		plans = append(plans, strings.Join(lines, "\n"))
	}
	r.plan = strings.Join(plans, "\n\n")
	r.indexes = cmp.Or(strings.Join(indexes, ", "), "none (sequential scan)")
	return r, nil
}

// indexUse finds the index scans in a plan's lines.
var indexUse = regexp.MustCompile(`(Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\S+)`)

// recorder is a pgx tracer that keeps the statements of the last run, to explain them.
type recorder struct {
	mu    sync.Mutex
	stmts []statement
}

type statement struct {
	sql  string
	args []any
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(data.SQL, "EXPLAIN") {
		return ctx
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = append(r.stmts, statement{data.SQL, data.Args})
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = nil
}

func (r *recorder) statements() []statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stmts)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// flowSpec is one flow of the dataset.
type flowSpec struct {
	tenant, integrator, name, entity, endpoint string
	weight                                     float64 // share of the tenant's records
	keys                                       int     // distinct remote ids
}

// dataset generates the records, deterministically, in time order.
type dataset struct {
	n         int
	start     time.Time
	step      time.Duration
	flows     []flowSpec
	cum       []float64 // cumulative shares of the flows over all records
	perTenant map[string]int
	perFlow   []int
	big       string // the tenant with the most records
	remoteID  string // a remote id of an order of the largest tenant
	rng       *mrand.Rand
}

// The tenants and their share of the traffic, and the error codes of failures.
var (
	tenantShares = []struct {
		name  string
		share float64
	}{{"acme", 0.40}, {"globex", 0.25}, {"initech", 0.15}, {"umbrella", 0.12}, {"hooli", 0.08}}
	errorCodes = []struct {
		code, reason string
		share        float64
	}{
		{"sku_missing", "product with SKU %d does not exist in the target", 0.40},
		{"target_rejected", "target answered 422: field %d is invalid", 0.25},
		{"timeout", "target did not answer within 30s (attempt %d)", 0.15},
		{"customer_not_found", "no debtor with e-mail buyer%d@example.com", 0.12},
		{"mapping_failed", "flow: fields.total: no such key: total (%d)", 0.08},
	}
)

func newDataset(now time.Time, n int) *dataset {
	d := &dataset{n: n, start: now.Add(-30 * 24 * time.Hour), perTenant: map[string]int{}, rng: mrand.New(mrand.NewPCG(2026, 11))}
	d.step = 30 * 24 * time.Hour / time.Duration(n)
	// Each tenant: a shop integrator with orders, customers and products; an ERP integrator
	// with stock and invoices back; a POS integrator with payments. Shares within a tenant
	// are uneven, as they are in life: orders and stock dominate, payments are rare.
	for _, t := range tenantShares {
		for _, f := range []flowSpec{
			{integrator: "shop-to-erp", name: "orders", entity: "order", endpoint: "shop", weight: 0.35, keys: 40000},
			{integrator: "shop-to-erp", name: "customers", entity: "customer", endpoint: "shop", weight: 0.15, keys: 20000},
			{integrator: "shop-to-erp", name: "products", entity: "product", endpoint: "pim", weight: 0.10, keys: 5000},
			{integrator: "erp-to-shop", name: "stock", entity: "stock", endpoint: "erp", weight: 0.30, keys: 5000},
			{integrator: "erp-to-shop", name: "invoices", entity: "invoice", endpoint: "erp", weight: 0.095, keys: 30000},
			{integrator: "pos-to-erp", name: "payments", entity: "payment", endpoint: "pos", weight: 0.005, keys: 2000},
		} {
			f.tenant = t.name
			f.weight *= t.share
			d.flows = append(d.flows, f)
		}
	}
	total := 0.0
	for _, f := range d.flows {
		total += f.weight
		d.cum = append(d.cum, total)
	}
	// Count what will be generated, so that the queries can pick their values.
	d.perFlow = make([]int, len(d.flows))
	probe := *d
	probe.rng = mrand.New(mrand.NewPCG(2026, 11))
	var r apilog.Record
	orderKeys := map[string]string{} // tenant -> the remote id of its last order
	for i := range n {
		fi := probe.record(i, &r)
		d.perFlow[fi]++
		d.perTenant[r.Tenant]++
		if r.Flow == "orders" {
			orderKeys[r.Tenant] = r.SourceKey
		}
	}
	for t, c := range d.perTenant {
		if c > d.perTenant[d.big] || (c == d.perTenant[d.big] && t < d.big) {
			d.big = t
		}
	}
	d.remoteID = orderKeys[d.big]
	return d
}

// record fills r with the i-th record and returns its flow's index; it must be called with
// i = 0, 1, 2, … in order.
func (d *dataset) record(i int, r *apilog.Record) int {
	x := d.rng.Float64() * d.cum[len(d.cum)-1]
	fi, _ := slices.BinarySearch(d.cum, x)
	fi = min(fi, len(d.flows)-1)
	f := &d.flows[fi]
	at := d.start.Add(time.Duration(i) * d.step)
	key := d.rng.IntN(f.keys)
	prefix := strings.ToUpper(f.entity[:2])
	*r = apilog.Record{
		Tenant:         f.tenant,
		EventID:        fmt.Sprintf("%016x-%08x", at.UnixMicro(), i),
		Integrator:     f.integrator,
		Flow:           f.name,
		Entity:         f.entity,
		SourceEndpoint: f.endpoint,
		SourceKey:      fmt.Sprintf("%s-%d", prefix, key),
		TargetID:       fmt.Sprintf("T%d", key),
		Attempts:       1,
		// Log-normal around 20 ms: most pushes are quick, a few take seconds.
		Duration:   time.Duration(math.Exp(d.rng.NormFloat64()*0.8+math.Log(20e6))) * time.Nanosecond,
		TraceID:    fmt.Sprintf("%032x", d.rng.Uint64()),
		OccurredAt: at.Add(-time.Duration(d.rng.IntN(5000)) * time.Millisecond),
		LoggedAt:   at,
	}
	r.Status = apilog.StatusSuccess
	switch p := d.rng.Float64(); {
	case p < 0.02:
		r.Action, r.Status = apilog.ActionFailed, apilog.StatusFailure
		r.Attempts = 1 + d.rng.IntN(5)
		c := d.rng.Float64()
		for _, e := range errorCodes {
			if c < e.share || e.code == errorCodes[len(errorCodes)-1].code {
				r.ErrorCode, r.Reason = e.code, fmt.Sprintf(e.reason, key)
				break
			}
			c -= e.share
		}
	case p < 0.03:
		r.Action = apilog.ActionDeleted
	case p < 0.18:
		r.Action, r.Reason = apilog.ActionSkipped, "unchanged"
	case p < 0.55:
		r.Action = apilog.ActionUpdated
	default:
		r.Action = apilog.ActionCreated
	}
	return fi
}

// rarest returns the value of a flow attribute with the fewest records in the largest tenant.
func (d *dataset) rarest(attr func(*flowSpec) string) string {
	counts := map[string]int{}
	for i := range d.flows {
		if d.flows[i].tenant == d.big {
			counts[attr(&d.flows[i])] += d.perFlow[i]
		}
	}
	best := ""
	for v, c := range counts {
		if best == "" || c < counts[best] || (c == counts[best] && v < best) {
			best = v
		}
	}
	return best
}
