package apilog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/services/eventlog/apilog"
)

// TestPostgresWritePlansNeverScan: the API log's write path (COPY, or the
// upsert of redelivered records, and the rollup triggers) runs prepared and
// cached plans, made many times while the log is small. Once it holds tens
// of thousands of records, no statement of a write may scan the records
// table — plans read with auto_explain, which logs the EXPLAIN of every
// statement, including those of the triggers.
func TestPostgresWritePlansNeverScan(t *testing.T) {
	ctx := context.Background()
	// One session, so the statements warmed on the small table are the
	// ones whose plans are read.
	plans := pgtest.NewPlans(t, pgtest.NewDatabase(t))
	pool := plans.Pool
	s, err := apilog.NewPostgres(ctx, &sqlstore.DB{Dialect: sqlstore.Postgres, PG: pool})
	if err != nil {
		t.Fatal(err)
	}
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
