package apilog

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The PostgreSQL backend keeps its records rolled up per tenant, UTC day, integrator, flow and
// entity (migration 0004: api_log_days and api_log_day_errors, kept by triggers in the
// transaction that writes the records). This file reads them: a report's whole days come from
// the rollups, and a filtered page reads only the days that hold matches.

// reportSpan splits a report's range [from, to) into the whole UTC days it covers, [first,
// end), which the rollups answer, and the parts of days before and after them, which are read
// off the records: less than a day on each side, less than two days in all.
type reportSpan struct {
	first, end time.Time // whole days; first == end when there are none
	partial    []timeRange
}

type timeRange struct{ from, to time.Time }

func splitRange(from, to time.Time) reportSpan {
	first, end := utcDay(from), utcDay(to)
	if first.Before(from) {
		first = first.AddDate(0, 0, 1)
	}
	if !first.Before(end) {
		return reportSpan{first: first, end: first, partial: []timeRange{{from, to}}}
	}
	s := reportSpan{first: first, end: end}
	if from.Before(first) {
		s.partial = append(s.partial, timeRange{from, first})
	}
	if end.Before(to) {
		s.partial = append(s.partial, timeRange{end, to})
	}
	return s
}

// utcDay is the UTC midnight at or before t.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// rollupFilter selects rows of api_log_days (or api_log_day_errors): one tenant's days in
// [from, to) (a zero bound is open) of an integrator, flow and entity, and for a QueryLogs
// filter rows that count records of an action or a status. Empty fields do not filter.
type rollupFilter struct {
	tenant                   string
	from, to                 time.Time
	integrator, flow, entity string
	action                   Action
	status                   Status
}

// where writes the filter as a WHERE clause and its arguments. The action and status must be
// valid (planQuery checks them): the action names its count column.
func (f rollupFilter) where() (string, []any) {
	args := []any{f.tenant}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var b strings.Builder
	b.WriteString("tenant = $1")
	if !f.from.IsZero() {
		b.WriteString(" AND day >= " + arg(pgtype.Date{Time: f.from, Valid: true}))
	}
	if !f.to.IsZero() {
		b.WriteString(" AND day < " + arg(pgtype.Date{Time: f.to, Valid: true}))
	}
	for _, c := range []struct{ column, value string }{
		{"integrator", f.integrator},
		{"flow", f.flow},
		{"entity", f.entity},
	} {
		if c.value != "" {
			b.WriteString(" AND " + c.column + " = " + arg(c.value))
		}
	}
	if f.action != "" {
		// Only a known action names a column: the value never reaches the SQL text.
		if !f.action.valid() {
			b.WriteString(" AND false")
		} else {
			b.WriteString(" AND " + string(f.action) + " > 0")
		}
	}
	switch f.status {
	case StatusFailure:
		b.WriteString(" AND failures > 0")
	case StatusSuccess:
		b.WriteString(" AND records > failures")
	}
	return b.String(), args
}

// narrowable says whether the rollups know q's filters, and so which days hold its matches.
// A remote id has an index of its own.
func narrowable(q Query) bool {
	return q.SourceKey == "" && (q.Integrator != "" || q.Flow != "" || q.Entity != "" || q.Action != "" || q.Status != "")
}

const pgMatchingDays = `SELECT min(day), max(day) FROM api_log_days WHERE `

// matchingRange narrows q's range to the days that hold records matching its filters, and
// says false when no day does. A filter that matches nothing (a typo) then reads no record,
// and one whose matches are all old starts reading on their last day.
func matchingRange(ctx context.Context, tx pgx.Tx, q Query) (from, to time.Time, ok bool, err error) {
	f := rollupFilter{tenant: q.Tenant, integrator: q.Integrator, flow: q.Flow, entity: q.Entity, action: q.Action, status: q.Status}
	if !q.From.IsZero() {
		f.from = utcDay(q.From)
	}
	if !q.To.IsZero() {
		// Records logged before To lie on To's day at the latest.
		f.to = utcDay(q.To.Add(-time.Nanosecond)).AddDate(0, 0, 1)
	}
	where, args := f.where()
	var first, last pgtype.Date
	if err := tx.QueryRow(ctx, pgMatchingDays+where, args...).Scan(&first, &last); err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("finding the days with matches: %w", err)
	}
	if !first.Valid {
		return time.Time{}, time.Time{}, false, nil
	}
	from, to = first.Time, last.Time.AddDate(0, 0, 1)
	if q.From.After(from) {
		from = q.From
	}
	if !q.To.IsZero() && q.To.Before(to) {
		to = q.To
	}
	return from, to, to.After(from), nil
}

// pgDayRows reads the day rows of a report, with their duration histograms.
const pgDayRows = `
SELECT integrator, flow, entity, day, records, created, updated, deleted, skipped, failed, failures, durations
FROM api_log_days
WHERE {where}`

// pgDayErrors ranks the error codes of each day row, as pgReportErrors does for records:
// by failures, ties by code, the first reason in byte order (the columns are COLLATE "C").
const pgDayErrors = `
SELECT integrator, flow, entity, day, error_code, failures, reason FROM (
	SELECT integrator, flow, entity, day, error_code, sum(failures)::bigint AS failures, min(reason) AS reason,
		row_number() OVER (PARTITION BY integrator, flow, entity, day ORDER BY sum(failures) DESC, error_code) AS rank
	FROM api_log_day_errors
	WHERE {where}
	GROUP BY integrator, flow, entity, day, error_code
) ranked
WHERE rank <= {top}`

// pgDayPercentiles reads, for each (integrator, flow, entity, day, bucket, skip), the
// duration after the first skip durations of the bucket among that row's records, in order,
// off api_log_records_by_day_bucket (migration 0006): the index yields the bucket's records,
// and the statement sorts their durations. Bucket b holds the durations d with
// api_log_duration_bucket(d) = b, the buckets the histograms count.
const pgDayPercentiles = `
SELECT (SELECT r.duration_ns FROM api_log_records AS r
		WHERE r.tenant = $1 AND (r.logged_at AT TIME ZONE 'UTC')::date = p.day
			AND r.flow = p.flow AND api_log_duration_bucket(r.duration_ns) = p.bucket
			AND r.integrator = p.integrator AND r.entity = p.entity
		ORDER BY r.duration_ns
		OFFSET p.skip LIMIT 1)
FROM unnest($2::text[], $3::text[], $4::text[], $5::date[], $6::integer[], $7::bigint[]) WITH ORDINALITY
		AS p(integrator, flow, entity, day, bucket, skip, i)
ORDER BY p.i`

// reportPercentiles are the percentiles a report row shows, in ReportRow's order.
var reportPercentiles = [...]float64{0.5, 0.95}

// reportDays reads the report rows of whole days [first, end) off the rollups, and adds their
// top errors to errs.
func reportDays(ctx context.Context, tx pgx.Tx, q ReportQuery, first, end time.Time, top int, errs map[rowKey][]ErrorCount) ([]ReportRow, error) {
	f := rollupFilter{tenant: q.Tenant, from: first, to: end, integrator: q.Integrator, flow: q.Flow, entity: q.Entity}
	where, args := f.where()
	fill := strings.NewReplacer("{where}", where, "{top}", strconv.Itoa(top)).Replace

	rows, err := tx.Query(ctx, fill(pgDayRows), args...)
	if err != nil {
		return nil, fmt.Errorf("reading the days: %w", err)
	}
	var (
		report     []ReportRow
		histograms [][]int32
	)
	var r ReportRow
	var histogram []int32
	_, err = pgx.ForEachRow(rows, []any{&r.Integrator, &r.Flow, &r.Entity, &r.Day, &r.Total, &r.Created, &r.Updated,
		&r.Deleted, &r.Skipped, &r.Failed, &r.Failures, &histogram}, func() error {
		r.Day = r.Day.UTC()
		report = append(report, r)
		histograms = append(histograms, histogram)
		histogram = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the days: %w", err)
	}

	if err := readErrors(ctx, tx, fill(pgDayErrors), args, errs); err != nil {
		return nil, fmt.Errorf("ranking the days' errors: %w", err)
	}

	if len(report) == 0 {
		return nil, nil
	}
	if err := dayPercentiles(ctx, tx, q.Tenant, report, histograms); err != nil {
		return nil, err
	}
	return report, nil
}

// dayPercentiles fills in the P50 and P95 of day rows: each histogram says which bucket holds
// the duration of the wanted rank, and one statement reads those durations off the index.
func dayPercentiles(ctx context.Context, tx pgx.Tx, tenant string, report []ReportRow, histograms [][]int32) error {
	n := len(report) * len(reportPercentiles)
	var (
		integrators, flows, entities = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		days                         = make([]pgtype.Date, 0, n)
		buckets                      = make([]int32, 0, n)
		skips                        = make([]int64, 0, n)
	)
	for i := range report {
		r := &report[i]
		if sum := histogramTotal(histograms[i]); sum != r.Total {
			return fmt.Errorf("the duration histogram of %s/%s/%s on %s counts %d records, the row %d",
				r.Integrator, r.Flow, r.Entity, r.Day.Format(time.DateOnly), sum, r.Total)
		}
		for _, p := range reportPercentiles {
			bucket, skip := locateRank(histograms[i], nearestRank(p, r.Total))
			integrators, flows, entities = append(integrators, r.Integrator), append(flows, r.Flow), append(entities, r.Entity)
			days = append(days, pgtype.Date{Time: r.Day, Valid: true})
			buckets, skips = append(buckets, int32(bucket)), append(skips, skip)
		}
	}
	rows, err := tx.Query(ctx, pgDayPercentiles, tenant, integrators, flows, entities, days, buckets, skips)
	if err != nil {
		return fmt.Errorf("reading the days' percentiles: %w", err)
	}
	i := 0
	var d *int64
	_, err = pgx.ForEachRow(rows, []any{&d}, func() error {
		r := &report[i/len(reportPercentiles)]
		if d == nil {
			return fmt.Errorf("no record of %s/%s/%s on %s has the duration its histogram places in bucket %d",
				r.Integrator, r.Flow, r.Entity, r.Day.Format(time.DateOnly), buckets[i])
		}
		if i%len(reportPercentiles) == 0 {
			r.P50 = time.Duration(*d)
		} else {
			r.P95 = time.Duration(*d)
		}
		i++
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the days' percentiles: %w", err)
	}
	return nil
}

// nearestRank is the 1-based rank of the nearest-rank percentile p among n sorted durations:
// ceil(p * n) in double precision, as PostgreSQL's percentile_disc computes it, and at least 1.
func nearestRank(p float64, n int64) int64 {
	return max(int64(math.Ceil(p*float64(n))), 1)
}

// locateRank finds the bucket of a histogram that holds the duration of the given 1-based
// rank, and how many of the bucket's durations come before it. rank must be at most the
// histogram's total.
func locateRank(histogram []int32, rank int64) (bucket int, skip int64) {
	for b, n := range histogram {
		if rank <= int64(n) {
			return b, rank - 1
		}
		rank -= int64(n)
	}
	return len(histogram) - 1, rank - 1
}

func histogramTotal(histogram []int32) int64 {
	var sum int64
	for _, n := range histogram {
		sum += int64(n)
	}
	return sum
}
