package apilog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// Postgres is the API log on PostgreSQL. An insert batch is one COPY, or one upsert of an
// array per column, in one transaction; triggers keep the daily rollups that reports and
// filtered pages read (migration 0004, rollup.go) in step in that transaction.
type Postgres struct {
	pool *pgxpool.Pool
}

var _ Store = (*Postgres)(nil)

// NewPostgres migrates the API log's tables in db, which must be a PostgreSQL database. ctx
// bounds the migration only.
func NewPostgres(ctx context.Context, db *sqlstore.DB) (*Postgres, error) {
	if db.Dialect != sqlstore.Postgres {
		return nil, fmt.Errorf("opening the PostgreSQL API log: the database is %s", db.Dialect)
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	return &Postgres{pool: db.PG}, nil
}

// DISTINCT ON keeps one record of each identity, because one INSERT … ON CONFLICT may not
// touch a row twice: the batch's first success, else its last record (highest ordinality),
// which is what applying the batch's records one by one keeps (see Store.Insert). A stored
// success is left as it is.
const pgInsert = `
INSERT INTO api_log_records (` + columns + `)
SELECT DISTINCT ON (tenant, event_id, flow) ` + columns + `
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::text[], $12::text[], $13::integer[], $14::bigint[], $15::text[],
            $16::timestamptz[], $17::timestamptz[])
     WITH ORDINALITY AS r(` + columns + `, ord)
ORDER BY tenant, event_id, flow, status <> 'success', CASE WHEN status = 'success' THEN ord ELSE -ord END
ON CONFLICT (tenant, event_id, flow) DO UPDATE SET
	integrator      = EXCLUDED.integrator,
	entity          = EXCLUDED.entity,
	source_endpoint = EXCLUDED.source_endpoint,
	source_key      = EXCLUDED.source_key,
	target_id       = EXCLUDED.target_id,
	action          = EXCLUDED.action,
	status          = EXCLUDED.status,
	reason          = EXCLUDED.reason,
	error_code      = EXCLUDED.error_code,
	attempts        = EXCLUDED.attempts,
	duration_ns     = EXCLUDED.duration_ns,
	trace_id        = EXCLUDED.trace_id,
	occurred_at     = EXCLUDED.occurred_at,
	logged_at       = EXCLUDED.logged_at
WHERE api_log_records.status <> 'success'`

// Insert implements Store. It writes a batch with COPY, PostgreSQL's fastest
// way in; a batch that holds a record already logged (a redelivery) or one
// record twice makes COPY fail as a whole, and is then upserted instead, so
// the second write of a record replaces the first unless that was a success. Either way the batch is
// one transaction under its tenants' write locks (see write), and the
// triggers of migration 0004 roll it up in the same transaction.
func (p *Postgres) Insert(ctx context.Context, rs []Record) error {
	if len(rs) == 0 {
		return nil
	}
	stamp := now()
	for i := range rs {
		if err := validateRecord(i, &rs[i]); err != nil {
			return fmt.Errorf("inserting API log records: %w", err)
		}
	}
	loggedAt := func(r *Record) time.Time {
		if r.LoggedAt.IsZero() {
			return stamp
		}
		return r.LoggedAt
	}
	tenants := tenantsOf(rs)
	// One row slice for all (sqlstore.CopyRow); the strings go as
	// sqlstore.Text, without an allocation each.
	row := sqlstore.CopyRow(len(copyColumns))
	err := p.write(ctx, tenants, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"api_log_records"}, copyColumns, pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
			r := &rs[i]
			row[0], row[1], row[2], row[3] = sqlstore.Text(&r.Tenant), sqlstore.Text(&r.EventID), sqlstore.Text(&r.Flow), sqlstore.Text(&r.Integrator)
			row[4], row[5], row[6], row[7] = sqlstore.Text(&r.Entity), sqlstore.Text(&r.SourceEndpoint), sqlstore.Text(&r.SourceKey), sqlstore.Text(&r.TargetID)
			row[8], row[9], row[10], row[11] = sqlstore.Text((*string)(&r.Action)), sqlstore.Text((*string)(&r.Status)), sqlstore.Text(&r.Reason), sqlstore.Text(&r.ErrorCode)
			row[12], row[13], row[14] = int32(min(r.Attempts, 1<<31-1)), int64(r.Duration), sqlstore.Text(&r.TraceID)
			row[15], row[16] = pgtype.Timestamptz{Time: r.OccurredAt, Valid: !r.OccurredAt.IsZero()}, loggedAt(r)
			return row, nil
		}))
		return err
	})
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		if err := p.write(ctx, tenants, func(tx pgx.Tx) error { return upsert(ctx, tx, rs, stamp) }); err != nil {
			return fmt.Errorf("inserting %d API log records: %w", len(rs), err)
		}
		return nil
	default:
		return fmt.Errorf("copying %d records into api_log_records: %w", len(rs), err)
	}
}

// pgLockTenants takes the write locks of the tenants in $1: transaction advisory locks keyed
// by 1634757735 ("aplg", the API log's class) and the tenant's hash, in the hashes' order for
// every caller. Two tenants sharing a hash only share a lock.
const pgLockTenants = `
SELECT pg_advisory_xact_lock(1634757735, h)
FROM (SELECT DISTINCT hashtext(t) AS h FROM unnest($1::text[]) AS t ORDER BY h) AS locks`

// write runs fn in a transaction that first takes the write locks of tenants, and commits it.
// Every change to the records goes through write, so one transaction at a time changes a
// tenant's records and, through the triggers, its rollup rows. An upsert fires three triggers
// (replaced values, replacing values, new records), each locking rollup rows in key order;
// without the tenant lock two upserts, or an upsert and a COPY, could take the same rows in
// opposite orders and deadlock. Writes of different tenants do not wait for each other, and
// writers of one tenant would wait for each other on the tenant's rollup rows of the day anyway.
func (p *Postgres) write(ctx context.Context, tenants []string, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, pgLockTenants, tenants); err != nil {
			return fmt.Errorf("locking the API log of %s: %w", strings.Join(tenants, ", "), err)
		}
		return fn(tx)
	})
}

// tenantsOf lists the distinct tenants of a batch.
func tenantsOf(rs []Record) []string {
	var tenants []string
	for i := range rs {
		if !slices.Contains(tenants, rs[i].Tenant) {
			tenants = append(tenants, rs[i].Tenant)
		}
	}
	return tenants
}

// copyColumns are the columns in the order Insert's COPY sends them.
var copyColumns = strings.Split(strings.Join(strings.Fields(columns), ""), ",")

// upsert writes a batch that may repeat records, the last of each winning.
func upsert(ctx context.Context, tx pgx.Tx, rs []Record, stamp time.Time) error {
	n := len(rs)
	var (
		tenants, eventIDs, flows, integrators = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		entities, endpoints, sourceKeys       = make([]string, n), make([]string, n), make([]string, n)
		targetIDs, actions, statuses          = make([]string, n), make([]string, n), make([]string, n)
		reasons, codes, traceIDs              = make([]string, n), make([]string, n), make([]string, n)
		attempts                              = make([]int32, n)
		durations                             = make([]int64, n)
		occurred                              = make([]pgtype.Timestamptz, n)
		logged                                = make([]time.Time, n)
	)
	for i := range rs {
		r := &rs[i]
		tenants[i], eventIDs[i], flows[i], integrators[i] = r.Tenant, r.EventID, r.Flow, r.Integrator
		entities[i], endpoints[i], sourceKeys[i] = r.Entity, r.SourceEndpoint, r.SourceKey
		targetIDs[i], actions[i], statuses[i] = r.TargetID, string(r.Action), string(r.Status)
		reasons[i], codes[i], traceIDs[i] = r.Reason, r.ErrorCode, r.TraceID
		attempts[i] = int32(min(r.Attempts, 1<<31-1))
		durations[i] = int64(r.Duration)
		occurred[i] = pgtype.Timestamptz{Time: r.OccurredAt, Valid: !r.OccurredAt.IsZero()}
		logged[i] = stamp
		if !r.LoggedAt.IsZero() {
			logged[i] = r.LoggedAt
		}
	}
	if _, err := tx.Exec(ctx, pgInsert, tenants, eventIDs, flows, integrators, entities, endpoints,
		sourceKeys, targetIDs, actions, statuses, reasons, codes, attempts, durations, traceIDs,
		occurred, logged); err != nil {
		return err
	}
	return nil
}

var pgDialect = dialect{
	placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
	timeArg:     func(t time.Time) any { return t },
}

// Query implements Store. A page filtered by integrator, flow, entity, action or status
// first asks the daily rollups which days hold matches (rollup.go), in the same snapshot as
// the page, and reads only those days: nothing at all when no day does.
func (p *Postgres) Query(ctx context.Context, q Query) (Page, error) {
	plan, err := planQuery(q, pgDialect)
	if err != nil {
		return Page{}, err
	}
	if !narrowable(q) {
		records, err := queryRecords(ctx, p.pool, plan)
		if err != nil {
			return Page{}, fmt.Errorf("querying the API log of tenant %s: %w", q.Tenant, err)
		}
		return plan.page(records), nil
	}
	page := Page{Records: []Record{}}
	err = pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		from, to, ok, err := matchingRange(ctx, tx, q)
		if err != nil || !ok {
			return err
		}
		narrowed := q
		narrowed.From, narrowed.To = from, to
		plan, err := planQuery(narrowed, pgDialect)
		if err != nil {
			return err
		}
		// Planned for the narrowed range's values each time (an unnamed statement): a plan
		// cached for any range could read a whole tenant for a range of one day, or sort one.
		records, err := queryRecords(ctx, tx, plan, pgx.QueryExecModeCacheDescribe)
		if err != nil {
			return err
		}
		page = plan.page(records)
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("querying the API log of tenant %s: %w", q.Tenant, err)
	}
	return page, nil
}

// querier is what queryRecords reads through: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryRecords runs a page's statement; options (a pgx.QueryExecMode) go before its arguments.
func queryRecords(ctx context.Context, db querier, plan queryPlan, options ...any) ([]Record, error) {
	rows, err := db.Query(ctx, plan.sql, append(options, plan.args...)...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanPGRecord)
}

func scanPGRecord(row pgx.CollectableRow) (Record, error) {
	var r Record
	var action, status string
	var attempts int32
	var duration int64
	var occurred pgtype.Timestamptz
	err := row.Scan(&r.Tenant, &r.EventID, &r.Flow, &r.Integrator, &r.Entity, &r.SourceEndpoint, &r.SourceKey,
		&r.TargetID, &action, &status, &r.Reason, &r.ErrorCode, &attempts, &duration, &r.TraceID,
		&occurred, &r.LoggedAt)
	if err != nil {
		return Record{}, err
	}
	r.Action, r.Status = Action(action), Status(status)
	r.Attempts, r.Duration = int(attempts), time.Duration(duration)
	if occurred.Valid {
		r.OccurredAt = occurred.Time.UTC()
	}
	r.LoggedAt = r.LoggedAt.UTC()
	return r, nil
}

// DeleteTenant implements Store.
func (p *Postgres) DeleteTenant(ctx context.Context, tenant string) (int64, error) {
	if tenant == "" {
		return 0, errors.New("deleting a tenant's API log: the tenant is empty")
	}
	n, err := p.delete(ctx, tenant, "DELETE FROM api_log_records WHERE tenant = $1", tenant)
	if err != nil {
		return 0, fmt.Errorf("deleting the API log of tenant %s: %w", tenant, err)
	}
	return n, nil
}

// DeleteBefore implements Store.
func (p *Postgres) DeleteBefore(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == "" {
		return 0, errors.New("expiring API log records: the tenant is empty")
	}
	n, err := p.delete(ctx, tenant, "DELETE FROM api_log_records WHERE tenant = $1 AND logged_at < $2", tenant, before)
	if err != nil {
		return 0, fmt.Errorf("expiring the API log of tenant %s before %s: %w", tenant, before.Format(time.RFC3339), err)
	}
	return n, nil
}

// delete runs a DELETE of tenant's records under its write lock and returns how many it removed.
func (p *Postgres) delete(ctx context.Context, tenant, query string, args ...any) (int64, error) {
	var n int64
	err := p.write(ctx, []string{tenant}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, query, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// pgReportRows aggregates in one pass: counts with FILTER, and the percentiles with
// percentile_disc, which sorts each group's durations in the server. The group keys compare
// bytewise (COLLATE "C"): the order does not matter, and a locale's comparison made the sort
// of a week's records five times slower.
const pgReportRows = `
SELECT integrator COLLATE "C", flow, entity COLLATE "C", (logged_at AT TIME ZONE 'UTC')::date AS day,
	count(*),
	count(*) FILTER (WHERE action = 'created'),
	count(*) FILTER (WHERE action = 'updated'),
	count(*) FILTER (WHERE action = 'deleted'),
	count(*) FILTER (WHERE action = 'skipped'),
	count(*) FILTER (WHERE action = 'failed'),
	count(*) FILTER (WHERE status = 'failure'),
	percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ns),
	percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ns)
FROM api_log_records
WHERE {where}
GROUP BY 1, 2, 3, 4`

// pgReportErrors ranks the error codes of each row's failures. Codes and reasons compare
// bytewise (COLLATE "C"), as in SQLite, so that ties and samples do not depend on the locale.
const pgReportErrors = `
SELECT integrator, flow, entity, day, error_code, n, reason FROM (
	SELECT integrator, flow, entity, day, error_code, count(*) AS n, min(reason COLLATE "C") AS reason,
		row_number() OVER (PARTITION BY integrator, flow, entity, day ORDER BY count(*) DESC, error_code COLLATE "C") AS rank
	FROM (SELECT integrator COLLATE "C" AS integrator, flow, entity COLLATE "C" AS entity,
	             (logged_at AT TIME ZONE 'UTC')::date AS day, error_code, reason
	      FROM api_log_records WHERE {where} AND status = 'failure') f
	GROUP BY integrator, flow, entity, day, error_code
) ranked
WHERE rank <= {top}`

// reportSettings apply to the statements of a report and a traffic count. The percentiles of
// the parts of days read off the records sort a row's durations: at PostgreSQL's default
// work_mem (4 MB) a busy tenant's day can spill to disk. A report reads one tenant's range off
// an index, which one process does in tens of milliseconds, less than parallel workers take to
// start on a busy server; JIT compilation, which PostgreSQL starts for a plan it estimates as
// costly, takes tens of milliseconds too (40 ms of a 30-day report read off the records).
var reportSettings = []string{
	"SET LOCAL work_mem = '64MB'",
	"SET LOCAL max_parallel_workers_per_gather = 0",
	"SET LOCAL jit = off",
}

// reportTx runs fn in a read-only transaction with reportSettings, so that a report's
// statements see the same records.
func (p *Postgres) reportTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		for _, set := range reportSettings {
			if _, err := tx.Exec(ctx, set); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// Report implements Store. The range's whole UTC days come from the daily rollups
// (rollup.go); a range that starts or ends inside a day reads those parts of days off the
// records. Both sides give the same figures, and one transaction reads them all.
func (p *Postgres) Report(ctx context.Context, q ReportQuery) ([]ReportRow, error) {
	plan, err := planReport(q, pgDialect)
	if err != nil {
		return nil, err
	}
	span := splitRange(q.From, q.To)
	var report []ReportRow
	errs := map[rowKey][]ErrorCount{}
	err = p.reportTx(ctx, func(tx pgx.Tx) error {
		for _, part := range span.partial {
			sub := q
			sub.From, sub.To = part.from, part.to
			subPlan, err := planReport(sub, pgDialect)
			if err != nil {
				return err
			}
			rows, err := reportRecords(ctx, tx, subPlan, errs)
			if err != nil {
				return err
			}
			report = append(report, rows...)
		}
		if span.first.Before(span.end) {
			rows, err := reportDays(ctx, tx, q, span.first, span.end, plan.topErrors, errs)
			if err != nil {
				return err
			}
			report = append(report, rows...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reporting on the API log of tenant %s: %w", q.Tenant, err)
	}
	return assembleReport(report, errs), nil
}

// reportRecords aggregates the records plan selects into report rows, and adds their top
// errors to errs.
func reportRecords(ctx context.Context, tx pgx.Tx, plan reportPlan, errs map[rowKey][]ErrorCount) ([]ReportRow, error) {
	rows, err := tx.Query(ctx, plan.fill(pgReportRows), plan.args...)
	if err != nil {
		return nil, err
	}
	report, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReportRow, error) {
		var r ReportRow
		var p50, p95 int64
		err := row.Scan(&r.Integrator, &r.Flow, &r.Entity, &r.Day, &r.Total, &r.Created, &r.Updated, &r.Deleted,
			&r.Skipped, &r.Failed, &r.Failures, &p50, &p95)
		r.Day = r.Day.UTC()
		r.P50, r.P95 = time.Duration(p50), time.Duration(p95)
		return r, err
	})
	if err != nil {
		return nil, err
	}
	if err := readErrors(ctx, tx, plan.fill(pgReportErrors), plan.args, errs); err != nil {
		return nil, fmt.Errorf("ranking errors: %w", err)
	}
	return report, nil
}

// readErrors adds to errs the ranked error codes a report query returns, per row: integrator,
// flow, entity, day, code, count and sample reason.
func readErrors(ctx context.Context, tx pgx.Tx, query string, args []any, errs map[rowKey][]ErrorCount) error {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	var k rowKey
	var e ErrorCount
	_, err = pgx.ForEachRow(rows, []any{&k.integrator, &k.flow, &k.entity, &k.day, &e.Code, &e.Count, &e.Reason}, func() error {
		k.day = k.day.UTC()
		errs[k] = append(errs[k], e)
		return nil
	})
	return err
}

// Traffic implements Store.
func (p *Postgres) Traffic(ctx context.Context, q TrafficQuery) ([]FlowTraffic, error) {
	if err := validateRange(q.Tenant, q.From, q.To); err != nil {
		return nil, err
	}
	var out []FlowTraffic
	err := p.reportTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT flow, source_endpoint COLLATE "C", count(*), count(*) FILTER (WHERE status = 'failure')
FROM api_log_records
WHERE tenant = $1 AND logged_at >= $2 AND logged_at < $3
GROUP BY 1, 2`, q.Tenant, q.From, q.To)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (FlowTraffic, error) {
			var t FlowTraffic
			err := row.Scan(&t.Flow, &t.SourceEndpoint, &t.Records, &t.Failures)
			return t, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("counting the traffic of tenant %s: %w", q.Tenant, err)
	}
	return out, nil
}

// Tenants implements Store.
func (p *Postgres) Tenants(ctx context.Context) ([]string, error) {
	rows, err := p.pool.Query(ctx, "SELECT DISTINCT tenant FROM api_log_records ORDER BY tenant")
	if err != nil {
		return nil, fmt.Errorf("listing the API log's tenants: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing the API log's tenants: %w", err)
	}
	return tenants, nil
}
