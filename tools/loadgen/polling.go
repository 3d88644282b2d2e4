package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver, to read the target back

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/tools/allinone"
	"github.com/syncline/syncline/tools/internal/bench"
)

// The polling run (-targets polling): an initial load, a shop's order table of -poll-rows
// rows in PostgreSQL read by the sql source page by page, into the sql target. Its rows
// were written before the run and changed a day ago, as a table that has been in use; the
// source's settle is its default (5s), which holds back only rows changed in the last five
// seconds, so the run never waits on it.

// pollReport is the polling run's figures; the child prints it as JSON.
type pollReport struct {
	Backend    string
	Partitions int
	Rows       int
	PageSize   int
	// SeedSeconds is the time to create and fill the source table, before anything is
	// measured.
	SeedSeconds float64
	// ReadSeconds is the first poll's own time, from its start to its last page's changes
	// stored on the ingest stream and its cursor stored (the flow's poll status). The
	// stages map and write the rows while it reads, on the same cores.
	ReadSeconds float64
	// Seconds runs from the first poll's start to the last row's audit event.
	Seconds       float64
	RowsPerSecond float64
	// Changes is what the first poll published, by its status.
	Changes int64
	// Outcomes counts the connector's outcomes of the rows ("created"); TargetRows the
	// rows the target table holds after the run, and Matching those whose order number is
	// the source row's.
	Outcomes             map[string]int
	TargetRows, Matching int
	PeakRSSBytes         int64
	Cost                 cost
	Problems             []string
}

// maxPollPageSize is the sql source's largest page_size.
const maxPollPageSize = 10000

// pollChild measures the polling run on one store backend.
func pollChild(ctx context.Context, f flags) error {
	if f.pollRows < 1 || f.pollPageSize < 1 || f.pollPageSize > maxPollPageSize {
		return fmt.Errorf("polling: -poll-rows %d (at least 1), -poll-page-size %d (1 to %d, the sql source's page_size)", f.pollRows, f.pollPageSize, maxPollPageSize)
	}
	dir, err := os.MkdirTemp("", "syncline-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	r := pollReport{Backend: f.backend, Rows: f.pollRows, PageSize: f.pollPageSize}
	seeded := time.Now()
	sourceURL, dropSource, err := bench.FreshDatabase(ctx, "syncline_bench_source")
	if err != nil {
		return err
	}
	defer dropSource()
	if err := seedSourceOrders(ctx, sourceURL, f.pollRows); err != nil {
		return err
	}
	r.SeedSeconds = time.Since(seeded).Seconds()
	fmt.Fprintf(os.Stderr, "  %d source rows written and indexed in %.1f s\n", f.pollRows, r.SeedSeconds)

	u, err := url.Parse(sourceURL)
	if err != nil {
		return err
	}
	cfg := allinone.Config{DataDir: dir, NATSPort: -1, HTTPAddr: "127.0.0.1:0", AdminToken: "bench-admin-token-0123456789", Bus: bus.DefaultConfig()}
	cfg.Bus.Partitions = f.parts
	// The source (and, on the postgres backend, the target) is another database on the
	// machine's server, which the egress policy allows as an operator would.
	cfg.Egress.Allow = []string{u.Host}
	// The meter's connection is to a database of the bench, so that its own queries are
	// not another database's transactions.
	meterURL, benchDBs := sourceURL, []string{bench.DatabaseName(sourceURL)}
	// As in the sql target's run: WAL with synchronous=NORMAL on SQLite, in the bench
	// tenant's folder of the data folder, read back through the "sqlite" driver that the
	// all-in-one mode's stores register.
	driver, dsn := "sqlite", "erp.db?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	readDriver, readDSN := "sqlite", filepath.Join(dir, "tenants", "bench", "erp.db")
	switch f.backend {
	case "postgres":
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
		readDriver, readDSN = "pgx", targetURL
		meterURL = storeURL
		benchDBs = append(benchDBs, bench.DatabaseName(storeURL), bench.DatabaseName(targetURL))
	case "sqlite":
	default:
		return fmt.Errorf("backend %q: use sqlite or postgres", f.backend)
	}
	pg, err := bench.OpenServer(ctx, meterURL, benchDBs...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "  PostgreSQL's CPU time is not measured: %v\n", err)
		pg = nil
	} else {
		defer pg.Close()
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
	r.Partitions = in.Partitions()
	nc, _, err := serviceConn(in)
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
	resources := controlplanev1connect.NewResourceServiceClient(http.DefaultClient, in.APIURL(), connect.WithInterceptors(auth.Bearer(in.AdminToken())))

	// The flow's first poll starts within a second of its apply (a source never polled is
	// due at once): the meter runs from just before the apply, the rows/s from the poll's
	// start.
	stopProfile, err := cpuProfile(f.profile, ".polling."+f.backend)
	if err != nil {
		return err
	}
	defer stopProfile()
	resetPeakRSS()
	m, err := startMeter(ctx, pg)
	if err != nil {
		return err
	}
	applied := time.Now()
	if err := apply(ctx, in, polledFlow(sourceURL, targetSQL(driver, dsn), f.pollPageSize)); err != nil {
		return err
	}
	polls, err := waitPolled(ctx, resources, lat, f.pollRows, 10*time.Minute)
	if err != nil {
		return err
	}
	if r.Cost, err = m.stop(ctx, f.pollRows); err != nil {
		return err
	}
	r.Cost.PublisherCPUMicros = -1
	stopProfile()
	r.PeakRSSBytes = bench.PeakRSS(0)
	printStages(in)
	heapProfile(f.profile, ".pollingheap."+f.backend)

	started := polls.GetStarted().AsTime()
	fmt.Fprintf(os.Stderr, "  the first poll began %.1f s after the flow's apply and read for %.1f s; the last row landed %.1f s after it began\n",
		started.Sub(applied).Seconds(), polls.GetFinished().AsTime().Sub(started).Seconds(), lat.last().Sub(started).Seconds())
	r.ReadSeconds = polls.GetFinished().AsTime().Sub(started).Seconds()
	r.Seconds = lat.last().Sub(started).Seconds()
	r.RowsPerSecond = float64(f.pollRows) / r.Seconds
	r.Changes = polls.GetChanges()
	if r.Changes != int64(f.pollRows) {
		r.Problems = append(r.Problems, fmt.Sprintf("the first poll published %d changes, want %d", r.Changes, f.pollRows))
	}
	lat.mu.Lock()
	r.Outcomes = maps.Clone(lat.outcomes)
	lat.mu.Unlock()
	if r.TargetRows, r.Matching, err = readPolledTarget(ctx, readDriver, readDSN); err != nil {
		return err
	}
	if r.TargetRows != f.pollRows || r.Matching != f.pollRows {
		r.Problems = append(r.Problems, fmt.Sprintf("the target holds %d rows, %d of them with their source row's order number; want %d", r.TargetRows, r.Matching, f.pollRows))
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// seedSourceOrders creates the shop's orders table in the database at dsn with rows orders
// of about 1 KiB as JSON (as the other runs' events), an index on (updated_at, id) as the
// sql source's README asks for, and its statistics. Three rows share each updated_at, as a
// batch update leaves them, so page boundaries fall among ties.
func seedSourceOrders(ctx context.Context, dsn string, rows int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to the source database: %w", err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{
		`CREATE TABLE orders (
			id bigint PRIMARY KEY,
			number text NOT NULL,
			status text NOT NULL,
			currency text NOT NULL,
			total numeric(12, 2) NOT NULL,
			customer_name text NOT NULL,
			customer_email text NOT NULL,
			company text,
			phone text,
			street text NOT NULL,
			city text NOT NULL,
			zip text NOT NULL,
			country text NOT NULL,
			lines integer NOT NULL,
			note text,
			created_at timestamptz NOT NULL,
			updated_at timestamptz NOT NULL)`,
		`INSERT INTO orders
		 SELECT i, 'SO-' || i, CASE WHEN i % 4 = 0 THEN 'shipped' ELSE 'paid' END, 'EUR', i % 1000 + 0.95,
			'Customer ' || i, 'Customer' || i || '@Example.com', 'Company ' || i || ' BV', '+31 20 555 ' || lpad((i % 10000)::text, 4, '0'),
			'Keizersgracht ' || i % 500, 'Amsterdam', '1015 CJ', 'NL', 1 + i % 20, repeat('x', 420),
			t - interval '2 hours', t
		 FROM generate_series(1, $1::int) AS i,
			LATERAL (SELECT date_trunc('second', now()) - interval '1 day' + (i - 1) / 3 * interval '50 ms' AS t) AS changed`,
		`CREATE INDEX orders_updated_at_id ON orders (updated_at, id)`,
		`VACUUM ANALYZE orders`,
	} {
		var args []any
		if strings.HasPrefix(stmt, "INSERT") {
			args = append(args, rows)
		}
		if _, err := conn.Exec(ctx, stmt, args...); err != nil {
			return fmt.Errorf("seeding the source table: %w", err)
		}
	}
	return nil
}

// polledFlow is the bench tenant with the shop's orders table as a polled sql endpoint and
// a flow from it into target, polled every hour, so that the run holds one poll.
func polledFlow(sourceURL string, target map[string]any, pageSize int) []*controlplanev1.Resource {
	return []*controlplanev1.Resource{
		resource("Tenant", "", "bench", map[string]any{}),
		resource("Integrator", "bench", "load", map[string]any{}),
		resource("Endpoint", "bench", "shop", map[string]any{"type": "sql", "description": "the shop's orders table, polled", "settings": map[string]any{
			"driver": "postgres", "dsn": sourceURL, "table": "orders",
			"poll": map[string]any{"order": map[string]any{"key_column": "id", "change_column": "updated_at", "page_size": pageSize}},
		}}),
		resource("Endpoint", "bench", "erp", target),
		resource("Flow", "bench", "orders", map[string]any{
			"integrator": "load", "source": "shop", "target": "erp", "entity": "order",
			"schedule": map[string]any{"mode": "interval", "every": "1h", "jitter": "0s"},
			// The sql run's mapping, on the table's columns.
			"mapping": map[string]any{
				"filter": `source.status in ["paid", "shipped"]`,
				"fields": map[string]any{
					"order_number":   "source.number",
					"status":         "source.status",
					"currency":       "source.currency",
					"total":          "double(source.total)",
					"customer_name":  "source.customer_name",
					"customer_email": "source.customer_email.lowerAscii()",
					"company":        "source.company",
					"city":           "source.city",
					"country":        "source.country",
					"lines":          "source.lines",
				},
				"defaults": map[string]any{"employee_number": 999999},
			},
		}),
	}
}

// waitPolled waits until rows rows reached the target and the first poll has ended, and
// returns that poll's status. A failed poll, or an event that failed, ends the wait.
func waitPolled(ctx context.Context, resources controlplanev1connect.ResourceServiceClient, lat *latencies, rows int, limit time.Duration) (*controlplanev1.SourcePolls, error) {
	deadline := time.Now().Add(limit)
	var polls *controlplanev1.SourcePolls
	var asked time.Time
	for {
		if err := lat.failed(); err != nil {
			return nil, err
		}
		// The status is asked for once a second while rows land, as an operator's
		// `syncline get flows` would, and at once when they all have.
		landed := lat.count() >= rows
		if landed || time.Since(asked) >= time.Second {
			asked = time.Now()
			res, err := resources.GetResource(ctx, &controlplanev1.GetResourceRequest{Kind: "Flow", Tenant: "bench", Name: "orders"})
			if err != nil {
				return nil, fmt.Errorf("reading the flow's poll status: %w", err)
			}
			polls = res.GetResource().GetStatus().GetPolls()
			switch polls.GetOutcome() {
			case "failed":
				return nil, fmt.Errorf("the first poll failed: %s", polls.GetError())
			case "ok":
				if landed {
					return polls, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d rows reached the target within %s (the poll: %q, %d changes)", lat.count(), rows, limit, polls.GetOutcome(), polls.GetChanges())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// readPolledTarget counts the target table's rows, and those whose order number is the
// one of the source row of their key.
func readPolledTarget(ctx context.Context, driver, dsn string) (rows, matching int, err error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(CASE WHEN order_number = 'SO-' || external_ref THEN 1 END) FROM orders`).Scan(&rows, &matching); err != nil {
		return 0, 0, fmt.Errorf("reading the target table back: %w", err)
	}
	return rows, matching, nil
}

// printPolling prints the polling runs' table, and fails when a run's rows did not all
// land once.
func printPolling(reports []pollReport) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "polled table into\tpartitions\trows\tpage size\trows/s\tfirst poll (read)\tread rows/s\tprocess CPU/row\tPostgreSQL CPU/row\tallocated/row\tallocations/row\tpeak RSS\toutcomes\tlanded once\t")
	var shared, failed []string
	for _, r := range reports {
		pg := micros(r.Cost.PostgresCPUMicros)
		if r.Cost.PostgresOthers > 0 {
			pg += " *"
			shared = append(shared, fmt.Sprintf("* polling into %s: PostgreSQL's other databases ran %d transactions during the run; the figure includes their work.", r.Backend, r.Cost.PostgresOthers))
		}
		landed := "yes"
		if len(r.Problems) > 0 {
			landed = "NO"
			failed = append(failed, fmt.Sprintf("polling into %s: %s", r.Backend, strings.Join(r.Problems, "; ")))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.1f s\t%.0f\t%s\t%s\t%s\t%.0f\t%.0f MB\t%s\t%s\t\n", r.Backend, r.Partitions, r.Rows, r.PageSize, r.RowsPerSecond,
			r.ReadSeconds, float64(r.Rows)/r.ReadSeconds, micros(r.Cost.CPUMicros), pg, kb(r.Cost.AllocBytes), r.Cost.AllocObjects, mb(r.PeakRSSBytes), states(r.Outcomes), landed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range shared {
		fmt.Println(line)
	}
	if len(failed) > 0 {
		fmt.Fprintln(os.Stderr, "\n*** POLLED ROWS DID NOT ALL LAND ONCE: the figures above do not count ***")
		for _, f := range failed {
			fmt.Fprintln(os.Stderr, "***", f)
		}
		return fmt.Errorf("polled rows did not all land once in %d of %d runs", len(failed), len(reports))
	}
	return nil
}
