package apilog_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/services/eventlog/apilog"
)

// plannedLog is an API log on a new database of one session, whose plans the test hears: the
// statements warmed on a small table are the ones whose plans are read.
func plannedLog(t *testing.T) (*pgtest.Plans, *apilog.Postgres) {
	t.Helper()
	plans := pgtest.NewPlans(t, pgtest.NewDatabase(t))
	s, err := apilog.NewPostgres(context.Background(), &sqlstore.DB{Dialect: sqlstore.Postgres, PG: plans.Pool})
	if err != nil {
		t.Fatal(err)
	}
	return plans, s
}

// TestPostgresWritePlansNeverScan: the API log's write path (COPY, or the
// upsert of redelivered records, and the rollup triggers) runs prepared and
// cached plans, made many times while the log is small. Once it holds tens
// of thousands of records, no statement of a write may scan the records
// table — plans read with auto_explain, which logs the EXPLAIN of every
// statement, including those of the triggers.
func TestPostgresWritePlansNeverScan(t *testing.T) {
	ctx := context.Background()
	plans, s := plannedLog(t)
	day := time.Now().UTC().Truncate(time.Microsecond)
	records := func(prefix string, n int) []apilog.Record {
		rs := make([]apilog.Record, n)
		for i := range rs {
			rs[i] = apilog.Record{Tenant: "acme", EventID: fmt.Sprintf("%s-%d", prefix, i), Integrator: "sync", Flow: "orders", Entity: "order",
				SourceKey: fmt.Sprintf("SO-%d", i), Action: apilog.ActionCreated, Status: apilog.StatusSuccess, Duration: time.Millisecond,
				LoggedAt: day}
			if i%10 == 0 {
				rs[i].Action, rs[i].Status, rs[i].ErrorCode, rs[i].Reason = apilog.ActionFailed, apilog.StatusFailure, "target_rejected", "refused"
			}
		}
		return rs
	}
	write := func(rs []apilog.Record) {
		t.Helper()
		if err := s.Insert(ctx, rs); err != nil {
			t.Fatalf("Insert: %v", err)
		}
	}
	// Small: new records, and the same again (a redelivery: the upsert).
	for i := range 10 {
		rs := records(fmt.Sprintf("warm%d", i), 5)
		write(rs)
		write(rs)
	}
	// Realistic: 60,000 records.
	for i := range 12 {
		write(records(fmt.Sprintf("bulk%d", i), 5000))
	}
	plans.Explain(t)
	rs := records("measured", 500)
	write(rs)
	write(rs)
	got := plans.Take()
	if !strings.Contains(got, "api_log_days") {
		t.Fatalf("auto_explain logged no plan of the rollup triggers:\n%s", got)
	}
	if pgtest.Scans(got, "api_log_records") {
		t.Errorf("a write at 60,000 records scans the records table:\n%s", got)
	}
}

// bucketScan matches a scan of api_log_records_by_day_bucket whose index condition holds the
// duration's bucket (api_log_duration_bucket, as the planner writes it out).
var bucketScan = regexp.MustCompile(`Index Only Scan using api_log_records_by_day_bucket on api_log_records r[^\n]*\n\s*Index Cond: [^\n]*width_bucket\(duration_ns,`)

// TestPostgresReportReadsPercentilesByBucket: a report's percentiles read the durations of one
// histogram bucket off api_log_records_by_day_bucket (migration 0006), never the whole table,
// and they are the nearest-rank percentiles of the records, as percentile_disc gives them.
func TestPostgresReportReadsPercentilesByBucket(t *testing.T) {
	ctx := context.Background()
	plans, s := plannedLog(t)
	pool := plans.Pool
	// Two whole days of two flows, 30,000 records each, with durations over a few dozen
	// buckets, written as the eventlog writes them.
	first := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for d := range 2 {
		for b := range 12 {
			rs := make([]apilog.Record, 5000)
			for i := range rs {
				n := (b*len(rs) + i) * 7919 % 60000
				rs[i] = apilog.Record{Tenant: "acme", EventID: fmt.Sprintf("d%d-%d-%d", d, b, i), Integrator: "sync",
					Flow: []string{"orders", "customers"}[i%2], Entity: "order", SourceKey: fmt.Sprintf("SO-%d", i),
					Action: apilog.ActionCreated, Status: apilog.StatusSuccess,
					Duration: time.Duration(100_000 + n*n/40), LoggedAt: first.Add(time.Duration(d)*24*time.Hour + time.Duration(b)*time.Hour)}
			}
			if err := s.Insert(ctx, rs); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE api_log_records"); err != nil {
		t.Fatal(err)
	}
	plans.Explain(t)
	rows, err := s.Report(ctx, apilog.ReportQuery{Tenant: "acme", From: first, To: first.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got := plans.Take()
	// The bucket is a condition of the index scan, not a filter on every record of the day:
	// a day's records of a flow are read by bucket alone.
	if !bucketScan.MatchString(got) {
		t.Errorf("the report's percentiles do not read one bucket off api_log_records_by_day_bucket:\n%s", got)
	}
	if pgtest.Scans(got, "api_log_records") {
		t.Errorf("the report scans the records table:\n%s", got)
	}
	if len(rows) != 4 {
		t.Fatalf("%d report rows, want 4 (2 days of 2 flows): %+v", len(rows), rows)
	}
	for _, r := range rows {
		var p50, p95 int64
		if err := pool.QueryRow(ctx, `
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ns), percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ns)
FROM api_log_records WHERE tenant = 'acme' AND flow = $1 AND (logged_at AT TIME ZONE 'UTC')::date = $2::date`,
			r.Flow, r.Day.Format(time.DateOnly)).Scan(&p50, &p95); err != nil {
			t.Fatal(err)
		}
		if r.P50 != time.Duration(p50) || r.P95 != time.Duration(p95) {
			t.Errorf("%s on %s: P50 %v, P95 %v; percentile_disc gives %v and %v",
				r.Flow, r.Day.Format(time.DateOnly), r.P50, r.P95, time.Duration(p50), time.Duration(p95))
		}
	}
}
