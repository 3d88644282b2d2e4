package apilog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/syncline/syncline/pkg/sqlstore"
)

// SQLite is the API log on embedded SQLite. An insert batch is one immediate transaction, so
// the commit (the costly part) is paid once per batch; inside it, multi-row statements keep the
// number of calls into SQLite low.
type SQLite struct {
	db *sqlstore.DB
	// insertChunk is the upsert for a full chunk of rows.
	insertChunk string
}

var _ Store = (*SQLite)(nil)

// insertChunkRows is how many records one INSERT carries: 17 variables each keeps the
// statement far below SQLite's variable limit.
const insertChunkRows = 50

// NewSQLite migrates the API log's tables in db, which must be a SQLite database. ctx bounds
// the migration only.
func NewSQLite(ctx context.Context, db *sqlstore.DB) (*SQLite, error) {
	if db.Dialect != sqlstore.SQLite {
		return nil, fmt.Errorf("opening the SQLite API log: the database is %s", db.Dialect)
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	return &SQLite{db: db, insertChunk: sqliteInsertQuery(insertChunkRows)}, nil
}

// sqliteInsertQuery returns the upsert for n records. SQLite applies the rows in order, each
// by Store.Insert's rule: it replaces a stored record of its identity unless that is a success.
func sqliteInsertQuery(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO api_log_records (" + columns + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	}
	b.WriteString(`
ON CONFLICT (tenant, event_id, flow) DO UPDATE SET
	integrator      = excluded.integrator,
	entity          = excluded.entity,
	source_endpoint = excluded.source_endpoint,
	source_key      = excluded.source_key,
	target_id       = excluded.target_id,
	action          = excluded.action,
	status          = excluded.status,
	reason          = excluded.reason,
	error_code      = excluded.error_code,
	attempts        = excluded.attempts,
	duration_ns     = excluded.duration_ns,
	trace_id        = excluded.trace_id,
	occurred_at     = excluded.occurred_at,
	logged_at       = excluded.logged_at
WHERE api_log_records.status <> 'success'`)
	return b.String()
}

// Insert implements Store.
func (s *SQLite) Insert(ctx context.Context, rs []Record) error {
	if len(rs) == 0 {
		return nil
	}
	for i := range rs {
		if err := validateRecord(i, &rs[i]); err != nil {
			return fmt.Errorf("inserting API log records: %w", err)
		}
	}
	stamp := now().UnixMicro()
	args := make([]any, 0, 17*min(len(rs), insertChunkRows))
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		var full *sql.Stmt
		if len(rs) >= insertChunkRows {
			stmt, err := tx.PrepareContext(ctx, s.insertChunk)
			if err != nil {
				return err
			}
			defer stmt.Close()
			full = stmt
		}
		for start := 0; start < len(rs); start += insertChunkRows {
			chunk := rs[start:min(start+insertChunkRows, len(rs))]
			args = args[:0]
			for i := range chunk {
				r := &chunk[i]
				var occurred any
				if !r.OccurredAt.IsZero() {
					occurred = r.OccurredAt.UnixMicro()
				}
				logged := stamp
				if !r.LoggedAt.IsZero() {
					logged = r.LoggedAt.UnixMicro()
				}
				args = append(args, r.Tenant, r.EventID, r.Flow, r.Integrator, r.Entity, r.SourceEndpoint,
					r.SourceKey, r.TargetID, string(r.Action), string(r.Status), r.Reason, r.ErrorCode,
					int64(r.Attempts), int64(r.Duration), r.TraceID, occurred, logged)
			}
			var err error
			if len(chunk) == insertChunkRows {
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, sqliteInsertQuery(len(chunk)), args...)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("inserting %d API log records: %w", len(rs), err)
	}
	return nil
}

var sqliteDialect = dialect{
	placeholder: func(n int) string { return "?" + strconv.Itoa(n) },
	timeArg:     func(t time.Time) any { return t.UnixMicro() },
}

// Query implements Store. Reads go to the read-only pool, so they do not wait for a batch
// being written.
func (s *SQLite) Query(ctx context.Context, q Query) (Page, error) {
	plan, err := planQuery(q, sqliteDialect)
	if err != nil {
		return Page{}, err
	}
	records, err := s.query(ctx, plan)
	if err != nil {
		return Page{}, fmt.Errorf("querying the API log of tenant %s: %w", q.Tenant, err)
	}
	return plan.page(records), nil
}

func (s *SQLite) query(ctx context.Context, plan queryPlan) ([]Record, error) {
	rows, err := s.db.SQLRead.QueryContext(ctx, plan.sql, plan.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	records := make([]Record, 0, plan.limit+1)
	for rows.Next() {
		var r Record
		var action, status string
		var attempts, duration, logged int64
		var occurred sql.NullInt64
		if err := rows.Scan(&r.Tenant, &r.EventID, &r.Flow, &r.Integrator, &r.Entity, &r.SourceEndpoint,
			&r.SourceKey, &r.TargetID, &action, &status, &r.Reason, &r.ErrorCode, &attempts, &duration,
			&r.TraceID, &occurred, &logged); err != nil {
			return nil, fmt.Errorf("reading a row: %w", err)
		}
		r.Action, r.Status = Action(action), Status(status)
		r.Attempts, r.Duration = int(attempts), time.Duration(duration)
		if occurred.Valid {
			r.OccurredAt = time.UnixMicro(occurred.Int64).UTC()
		}
		r.LoggedAt = time.UnixMicro(logged).UTC()
		records = append(records, r)
	}
	return records, rows.Err()
}

// DeleteTenant implements Store.
func (s *SQLite) DeleteTenant(ctx context.Context, tenant string) (int64, error) {
	if tenant == "" {
		return 0, errors.New("deleting a tenant's API log: the tenant is empty")
	}
	n, err := s.delete(ctx, "DELETE FROM api_log_records WHERE tenant = ?", tenant)
	if err != nil {
		return 0, fmt.Errorf("deleting the API log of tenant %s: %w", tenant, err)
	}
	return n, nil
}

// DeleteBefore implements Store.
func (s *SQLite) DeleteBefore(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == "" {
		return 0, errors.New("expiring API log records: the tenant is empty")
	}
	n, err := s.delete(ctx, "DELETE FROM api_log_records WHERE tenant = ? AND logged_at < ?", tenant, before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("expiring the API log of tenant %s before %s: %w", tenant, before.Format(time.RFC3339), err)
	}
	return n, nil
}

func (s *SQLite) delete(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.db.SQLiteWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// sqliteDay is the UTC day of logged_at (unix microseconds) as days since 1970-01-01, rounded
// down also before 1970 (SQLite's integer division rounds towards zero).
const sqliteDay = `((logged_at - ((logged_at % 86400000000) + 86400000000) % 86400000000) / 86400000000)`

// sqliteRank is the 1-based rank of the nearest-rank percentile p among n sorted durations:
// ceil(p * n), computed in double precision as PostgreSQL's percentile_disc does, so that
// both backends pick the same record. SQLite may lack ceil(), so it is written out.
func sqliteRank(p string) string {
	x := "(" + p + " * n)"
	return "(CAST(" + x + " AS INTEGER) + (" + x + " > CAST(" + x + " AS INTEGER)))"
}

// sqliteReportRows has no percentile function to call: it numbers each group's records by
// duration with a window and keeps the durations at the percentiles' ranks. SQLite sorts the
// window in its own sorter (spilling to temporary files when large), so memory stays bounded;
// only one row per group reaches Go.
var sqliteReportRows = `
WITH r AS (
	SELECT integrator, flow, entity, ` + sqliteDay + ` AS day, action, status, duration_ns
	FROM api_log_records WHERE {where}
), w AS (
	SELECT integrator, flow, entity, day, action, status, duration_ns,
		row_number() OVER (PARTITION BY integrator, flow, entity, day ORDER BY duration_ns) AS rn,
		count(*) OVER (PARTITION BY integrator, flow, entity, day) AS n
	FROM r
)
SELECT integrator, flow, entity, day,
	count(*),
	sum(action = 'created'), sum(action = 'updated'), sum(action = 'deleted'), sum(action = 'skipped'), sum(action = 'failed'),
	sum(status = 'failure'),
	max(CASE WHEN rn = ` + sqliteRank("0.5") + ` THEN duration_ns END),
	max(CASE WHEN rn = ` + sqliteRank("0.95") + ` THEN duration_ns END)
FROM w
GROUP BY integrator, flow, entity, day`

// sqliteReportErrors ranks the error codes of each row's failures; SQLite compares text
// bytewise, as PostgreSQL's statement asks for.
var sqliteReportErrors = `
SELECT integrator, flow, entity, day, error_code, n, reason FROM (
	SELECT integrator, flow, entity, day, error_code, count(*) AS n, min(reason) AS reason,
		row_number() OVER (PARTITION BY integrator, flow, entity, day ORDER BY count(*) DESC, error_code) AS rank
	FROM (SELECT integrator, flow, entity, ` + sqliteDay + ` AS day, error_code, reason
	      FROM api_log_records WHERE {where} AND status = 'failure')
	GROUP BY integrator, flow, entity, day, error_code
)
WHERE rank <= {top}`

func sqliteDate(days int64) time.Time { return time.Unix(days*86400, 0).UTC() }

// Report implements Store.
func (s *SQLite) Report(ctx context.Context, q ReportQuery) ([]ReportRow, error) {
	plan, err := planReport(q, sqliteDialect)
	if err != nil {
		return nil, err
	}
	report, err := s.reportRows(ctx, plan)
	if err != nil {
		return nil, fmt.Errorf("reporting on the API log of tenant %s: %w", q.Tenant, err)
	}
	errs, err := s.reportErrors(ctx, plan)
	if err != nil {
		return nil, fmt.Errorf("reporting the errors of tenant %s: %w", q.Tenant, err)
	}
	return assembleReport(report, errs), nil
}

func (s *SQLite) reportRows(ctx context.Context, plan reportPlan) ([]ReportRow, error) {
	rows, err := s.db.SQLRead.QueryContext(ctx, plan.fill(sqliteReportRows), plan.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ReportRow
	for rows.Next() {
		var r ReportRow
		var day, p50, p95 int64
		if err := rows.Scan(&r.Integrator, &r.Flow, &r.Entity, &day, &r.Total, &r.Created, &r.Updated, &r.Deleted,
			&r.Skipped, &r.Failed, &r.Failures, &p50, &p95); err != nil {
			return nil, fmt.Errorf("reading a row: %w", err)
		}
		r.Day, r.P50, r.P95 = sqliteDate(day), time.Duration(p50), time.Duration(p95)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *SQLite) reportErrors(ctx context.Context, plan reportPlan) (map[rowKey][]ErrorCount, error) {
	rows, err := s.db.SQLRead.QueryContext(ctx, plan.fill(sqliteReportErrors), plan.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	errs := map[rowKey][]ErrorCount{}
	for rows.Next() {
		var k rowKey
		var e ErrorCount
		var day int64
		if err := rows.Scan(&k.integrator, &k.flow, &k.entity, &day, &e.Code, &e.Count, &e.Reason); err != nil {
			return nil, fmt.Errorf("reading a row: %w", err)
		}
		k.day = sqliteDate(day)
		errs[k] = append(errs[k], e)
	}
	return errs, rows.Err()
}

// Traffic implements Store.
func (s *SQLite) Traffic(ctx context.Context, q TrafficQuery) ([]FlowTraffic, error) {
	if err := validateRange(q.Tenant, q.From, q.To); err != nil {
		return nil, err
	}
	rows, err := s.db.SQLRead.QueryContext(ctx, `
SELECT flow, source_endpoint, count(*), sum(status = 'failure')
FROM api_log_records
WHERE tenant = ?1 AND logged_at >= ?2 AND logged_at < ?3
GROUP BY flow, source_endpoint`, q.Tenant, q.From.UnixMicro(), q.To.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("counting the traffic of tenant %s: %w", q.Tenant, err)
	}
	defer rows.Close()
	var out []FlowTraffic
	for rows.Next() {
		var t FlowTraffic
		if err := rows.Scan(&t.Flow, &t.SourceEndpoint, &t.Records, &t.Failures); err != nil {
			return nil, fmt.Errorf("counting the traffic of tenant %s: reading a row: %w", q.Tenant, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting the traffic of tenant %s: %w", q.Tenant, err)
	}
	return out, nil
}

// Tenants implements Store.
func (s *SQLite) Tenants(ctx context.Context) ([]string, error) {
	rows, err := s.db.SQLRead.QueryContext(ctx, "SELECT DISTINCT tenant FROM api_log_records ORDER BY tenant")
	if err != nil {
		return nil, fmt.Errorf("listing the API log's tenants: %w", err)
	}
	defer rows.Close()
	var tenants []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("listing the API log's tenants: %w", err)
		}
		tenants = append(tenants, t)
	}
	return tenants, rows.Err()
}
