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

// sqliteInsertQuery returns the upsert for n records. SQLite applies the rows in order, so the
// last of two rows with the same identity is the one kept.
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
	logged_at       = excluded.logged_at`)
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
