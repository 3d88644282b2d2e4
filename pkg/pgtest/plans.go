package pgtest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Plans is one session of a test database that hears the plans the server
// makes, as PostgreSQL's auto_explain logs them: a test warms its
// statements on a small table, grows the table, calls Explain and reads the
// plans its statements then run with (Take), to check that none scans a
// table it should probe by key.
type Plans struct {
	// Pool has one connection, so the statements warmed on the small table
	// are the ones whose plans are read.
	Pool *pgxpool.Pool

	mu    sync.Mutex
	plans []string
}

// NewPlans opens the session on the database at url; it closes when the
// test ends.
func NewPlans(t testing.TB, url string) *Plans {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	p := &Plans{}
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if strings.Contains(n.Message, "plan:") {
			p.mu.Lock()
			p.plans = append(p.plans, n.Message)
			p.mu.Unlock()
		}
	}
	if p.Pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Pool.Close)
	return p
}

// Explain makes the session log the plan of every statement from now on,
// the statements of functions and triggers included.
func (p *Plans) Explain(t testing.TB) {
	t.Helper()
	for _, q := range []string{
		`LOAD 'auto_explain'`,
		`SET auto_explain.log_min_duration = 0`,
		`SET auto_explain.log_nested_statements = on`,
		`SET client_min_messages = log`,
	} {
		if _, err := p.Pool.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	p.Take()
}

// Take returns the plans logged since the last Take, one after another, and
// forgets them.
func (p *Plans) Take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := strings.Join(p.plans, "\n")
	p.plans = nil
	return got
}

// Scans says whether plans read the whole of table or a bitmap of it,
// instead of probing an index.
func Scans(plans, table string) bool {
	return strings.Contains(plans, "Seq Scan on "+table) || strings.Contains(plans, "Bitmap Heap Scan on "+table)
}
