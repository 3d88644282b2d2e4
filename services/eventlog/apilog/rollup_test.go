package apilog

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
)

func TestSplitRange(t *testing.T) {
	d := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	at := func(days int, h time.Duration) time.Time { return d.AddDate(0, 0, days).Add(h) }
	tests := []struct {
		name       string
		from, to   time.Time
		first, end time.Time
		partial    []timeRange
	}{
		{"whole days", at(0, 0), at(7, 0), at(0, 0), at(7, 0), nil},
		{"starts inside a day", at(0, time.Hour), at(7, 0), at(1, 0), at(7, 0), []timeRange{{at(0, time.Hour), at(1, 0)}}},
		{"ends inside a day", at(0, 0), at(6, time.Hour), at(0, 0), at(6, 0), []timeRange{{at(6, 0), at(6, time.Hour)}}},
		{"both", at(0, time.Nanosecond), at(3, -time.Nanosecond), at(1, 0), at(2, 0),
			[]timeRange{{at(0, time.Nanosecond), at(1, 0)}, {at(2, 0), at(3, -time.Nanosecond)}}},
		{"inside one day", at(0, time.Hour), at(0, 2*time.Hour), at(1, 0), at(1, 0), []timeRange{{at(0, time.Hour), at(0, 2*time.Hour)}}},
		{"across one midnight", at(0, time.Hour), at(1, time.Hour), at(1, 0), at(1, 0), []timeRange{{at(0, time.Hour), at(1, time.Hour)}}},
		{"one whole day", at(0, 0), at(1, 0), at(0, 0), at(1, 0), nil},
		{"another zone, the same instants", at(0, 0).In(time.FixedZone("UTC+14", 14*3600)), at(2, 0).In(time.FixedZone("UTC-5", -5*3600)),
			at(0, 0), at(2, 0), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := splitRange(tc.from, tc.to)
			if !got.first.Equal(tc.first) || !got.end.Equal(tc.end) || !slices.EqualFunc(got.partial, tc.partial, func(a, b timeRange) bool {
				return a.from.Equal(b.from) && a.to.Equal(b.to)
			}) {
				t.Fatalf("splitRange(%s, %s) = %+v; want whole days %s to %s and parts %+v", tc.from, tc.to, got, tc.first, tc.end, tc.partial)
			}
		})
	}
}

func TestLocateRank(t *testing.T) {
	h := []int32{2, 0, 3, 1} // durations in buckets 0, 0, 2, 2, 2, 3
	tests := []struct {
		rank   int64
		bucket int
		skip   int64
	}{
		{1, 0, 0}, {2, 0, 1}, {3, 2, 0}, {5, 2, 2}, {6, 3, 0},
	}
	for _, tc := range tests {
		if b, skip := locateRank(h, tc.rank); b != tc.bucket || skip != tc.skip {
			t.Errorf("locateRank(%v, %d) = %d, %d; want %d, %d", h, tc.rank, b, skip, tc.bucket, tc.skip)
		}
	}
	for _, tc := range []struct {
		p    float64
		n    int64
		want int64
	}{{0.5, 1, 1}, {0.95, 1, 1}, {0.5, 20, 10}, {0.95, 20, 19}, {0.95, 21, 20}, {0.5, 101, 51}, {0.95, 100, 95}} {
		if got := nearestRank(tc.p, tc.n); got != tc.want || got != int64(math.Max(math.Ceil(tc.p*float64(tc.n)), 1)) {
			t.Errorf("nearestRank(%v, %d) = %d, want %d", tc.p, tc.n, got, tc.want)
		}
	}
}

// rollupDrift counts the rows of the rollups that differ from the records' own aggregates,
// and the empty rows they keep.
const rollupDrift = `
WITH days AS (
	SELECT tenant, (logged_at AT TIME ZONE 'UTC')::date AS day, integrator COLLATE "C" AS integrator, flow,
		entity COLLATE "C" AS entity, count(*) AS records,
		count(*) FILTER (WHERE action = 'created') AS created, count(*) FILTER (WHERE action = 'updated') AS updated,
		count(*) FILTER (WHERE action = 'deleted') AS deleted, count(*) FILTER (WHERE action = 'skipped') AS skipped,
		count(*) FILTER (WHERE action = 'failed') AS failed, count(*) FILTER (WHERE status = 'failure') AS failures,
		api_log_histogram(array_agg(api_log_duration_bucket(duration_ns)), 1) AS durations
	FROM api_log_records
	GROUP BY 1, 2, 3, 4, 5
), errors AS (
	SELECT tenant, (logged_at AT TIME ZONE 'UTC')::date AS day, integrator COLLATE "C" AS integrator, flow,
		entity COLLATE "C" AS entity, api_log_error_hash(error_code, reason) AS error_hash, error_code, reason,
		count(*) AS failures
	FROM api_log_records
	WHERE status = 'failure'
	GROUP BY 1, 2, 3, 4, 5, 7, 8
)
SELECT
	(SELECT count(*) FROM days AS r FULL JOIN api_log_days AS d USING (tenant, day, integrator, flow, entity)
	 WHERE (r.records, r.created, r.updated, r.deleted, r.skipped, r.failed, r.failures, r.durations)
		IS DISTINCT FROM (d.records, d.created, d.updated, d.deleted, d.skipped, d.failed, d.failures, d.durations)),
	(SELECT count(*) FROM errors AS r FULL JOIN api_log_day_errors AS e USING (tenant, day, integrator, flow, entity, error_hash)
	 WHERE (r.error_code, r.reason, r.failures) IS DISTINCT FROM (e.error_code, e.reason, e.failures)),
	(SELECT count(*) FROM api_log_days WHERE records <= 0) + (SELECT count(*) FROM api_log_day_errors WHERE failures <= 0),
	(SELECT count(*) FROM api_log_days)`

func assertRollupsMatch(t *testing.T, ctx context.Context, db *sqlstore.DB) {
	t.Helper()
	var days, errs, empty, rows int
	if err := db.PG.QueryRow(ctx, rollupDrift).Scan(&days, &errs, &empty, &rows); err != nil {
		t.Fatalf("comparing the rollups with the records: %v", err)
	}
	if days != 0 || errs != 0 || empty != 0 {
		t.Fatalf("the rollups drifted from the records: %d day rows and %d error rows differ, %d empty rows kept", days, errs, empty)
	}
	if rows == 0 {
		t.Fatal("the rollups are empty: nothing was compared")
	}
}

// workload logs n records of tenant over three days, with repeated durations and failures.
func workload(rng *rand.Rand, tenant, prefix string, n int) []Record {
	d := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	flows := [][3]string{{"shop-to-erp", "orders", "order"}, {"pos-to-erp", "payments", "payment"}, {"pos-to-erp", "", "payment"}}
	rs := make([]Record, n)
	for i := range rs {
		f := flows[rng.IntN(len(flows))]
		rs[i] = Record{
			Tenant: tenant, EventID: fmt.Sprintf("%s-%d", prefix, i), Integrator: f[0], Flow: f[1], Entity: f[2],
			Action: ActionCreated, Status: StatusSuccess, Duration: time.Duration(rng.IntN(5000)) * time.Microsecond,
			LoggedAt: d.Add(time.Duration(rng.Int64N(int64(72 * time.Hour)))).Truncate(time.Microsecond),
		}
		if rng.IntN(5) == 0 {
			rs[i].Action, rs[i].Status = ActionFailed, StatusFailure
			rs[i].ErrorCode, rs[i].Reason = fmt.Sprintf("code-%d", rng.IntN(3)), fmt.Sprintf("reason %d", rng.IntN(4))
		}
	}
	return rs
}

// TestPostgresRollupsFollowTheRecords checks the rollup tables themselves, not only the
// reports read from them: after inserts, redeliveries, retention and an erase they equal the
// records' aggregates and keep no empty row.
func TestPostgresRollupsFollowTheRecords(t *testing.T) {
	ctx := t.Context()
	db := sqlstoretest.OpenPostgres(t)
	s, err := NewPostgres(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	acme, globex := workload(rng, "acme", "ev", 500), workload(rng, "globex", "ev", 300)
	steps := []struct {
		name string
		do   func() error
	}{
		{"insert", func() error { return s.Insert(ctx, append(slices.Clone(acme), globex...)) }},
		{"redeliver with other values", func() error {
			again := workload(rng, "acme", "ev", 200) // the same identities as the first 200 where the flow matches
			return s.Insert(ctx, append(again, acme[300:]...))
		}},
		{"expire part of a day", func() error {
			_, err := s.DeleteBefore(ctx, "acme", time.Date(2026, 5, 2, 9, 30, 0, 0, time.UTC))
			return err
		}},
		{"erase a tenant", func() error { _, err := s.DeleteTenant(ctx, "globex"); return err }},
		{"log again", func() error { return s.Insert(ctx, workload(rng, "globex", "again", 50)) }},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		assertRollupsMatch(t, ctx, db)
	}
}

// TestPostgresMigrationRollsUpLoggedRecords checks that records logged before the rollups
// existed are rolled up when the migration runs.
func TestPostgresMigrationRollsUpLoggedRecords(t *testing.T) {
	ctx := t.Context()
	db := sqlstoretest.OpenPostgres(t)
	before := fstest.MapFS{}
	err := fs.WalkDir(migrationFiles, "migrations/postgres", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() >= "0004" {
			return err
		}
		body, err := fs.ReadFile(migrationFiles, path)
		before["postgres/"+e.Name()] = &fstest.MapFile{Data: body}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, migrationOwner, before); err != nil {
		t.Fatalf("migrating to 0003: %v", err)
	}
	old := &Postgres{pool: db.PG}
	if err := old.Insert(ctx, workload(rand.New(rand.NewPCG(2, 2)), "acme", "ev", 400)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPostgres(ctx, db); err != nil {
		t.Fatalf("migrating the rest: %v", err)
	}
	assertRollupsMatch(t, ctx, db)
}

// TestPostgresDurationBuckets checks the buckets the histograms count: each bound starts its
// bucket, and the durations just below it fall in the bucket before.
func TestPostgresDurationBuckets(t *testing.T) {
	ctx := t.Context()
	db := sqlstoretest.OpenPostgres(t)
	if _, err := NewPostgres(ctx, db); err != nil {
		t.Fatal(err)
	}
	var n, ok int
	err := db.PG.QueryRow(ctx, `
SELECT count(*), count(*) FILTER (WHERE api_log_duration_bucket(b) = i AND api_log_duration_bucket(b - 1) = i - 1 AND b > previous)
FROM (SELECT b, i, coalesce(lag(b) OVER (ORDER BY i), 0) AS previous
      FROM unnest(api_log_duration_bounds()) WITH ORDINALITY AS u(b, i)) AS bounds`).Scan(&n, &ok)
	if err != nil || n == 0 || ok != n {
		t.Fatalf("%d of %d bounds start their bucket (%v)", ok, n, err)
	}
	var first, last int
	if err := db.PG.QueryRow(ctx, "SELECT api_log_duration_bucket(0), api_log_duration_bucket(9223372036854775807)").Scan(&first, &last); err != nil || first != 0 || last != n {
		t.Fatalf("buckets of 0 and the longest duration: %d, %d (%v); want 0 and %d", first, last, err, n)
	}
}
