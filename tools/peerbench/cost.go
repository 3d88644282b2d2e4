package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// costs are a run's CPU times per event, in µs (see report).
type costs struct {
	bento, nats, postgres, self float64
	postgresOthers              int64
}

// meter measures the CPU time of Bento, the nats-server, PostgreSQL's
// server and this program from start to stop.
type meter struct {
	start time.Time
	// bento is Bento's process, set once it runs; bentoCPU its CPU time at
	// the start (0 when it started after it).
	bento            int
	bentoCPU         time.Duration
	nats             int
	natsCPU, selfCPU time.Duration
	pg               *pgServer
	pgCPU            time.Duration
	pgOthers         int64
}

// startMeter reads the counters the costs are the difference of; pg, when
// not nil, is the PostgreSQL server the run uses, nats the nats-server's
// process.
func startMeter(ctx context.Context, pg *pgServer, nats int) (*meter, error) {
	m := &meter{pg: pg, nats: nats}
	if pg != nil {
		var err error
		if m.pgCPU, m.pgOthers, err = pg.counters(ctx); err != nil {
			return nil, err
		}
	}
	var err error
	if m.natsCPU, err = processCPU(nats); err != nil {
		return nil, fmt.Errorf("reading the nats-server's CPU time: %w", err)
	}
	m.selfCPU = selfCPU()
	m.start = time.Now()
	return m, nil
}

// stop returns the costs per event of what happened since startMeter.
func (m *meter) stop(ctx context.Context, events int) (costs, error) {
	bento, err := processCPU(m.bento)
	if err != nil {
		return costs{}, fmt.Errorf("reading Bento's CPU time: %w", err)
	}
	nats, err := processCPU(m.nats)
	if err != nil {
		return costs{}, fmt.Errorf("reading the nats-server's CPU time: %w", err)
	}
	self := selfCPU()
	n := float64(events)
	perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
	c := costs{bento: perEvent(bento - m.bentoCPU), nats: perEvent(nats - m.natsCPU), self: perEvent(self - m.selfCPU), postgres: -1}
	if m.pg != nil {
		pgCPU, others, err := m.pg.counters(ctx)
		if err != nil {
			return costs{}, err
		}
		c.postgres = perEvent(pgCPU - m.pgCPU)
		c.postgresOthers = others - m.pgOthers
	}
	return c, nil
}

// selfCPU is the CPU time this process has used, user and system.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freshDatabase creates a database on the machine's PostgreSQL and returns
// its URL and a function that drops it (as tools/loadgen's).
func freshDatabase(ctx context.Context, prefix string) (string, func(), error) {
	admin := os.Getenv("SYNCLINE_TEST_POSTGRES_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to PostgreSQL at %s (run `make postgres`): %w", admin, err)
	}
	name := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("creating database %s: %w", name, err)
	}
	drop := func() {
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(context.Background())
	}
	u := strings.Replace(admin, "/postgres?", "/"+name+"?", 1)
	return u, drop, nil
}

// databaseName is the database of a PostgreSQL URL.
func databaseName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(p.Path, "/")
}

// pgServer reads the CPU time of a PostgreSQL server on this machine from
// /proc, as tools/loadgen's cost.go does: the postmaster's own, that of the
// children it has reaped (the backends of connections that closed,
// autovacuum workers that finished: the kernel adds them to the parent's
// cutime and cstime when it waits for them), and that of every child still
// running (backends, the WAL writer, the checkpointer, the background
// writer). That is the whole server's CPU, the background work the bench's
// writes cause included; it includes other databases' work too, which is
// why counters also counts their transactions.
type pgServer struct {
	conn       *pgx.Conn
	postmaster int
	// bench are the bench's databases, whose transactions are not others'.
	bench []string
}

// openPGServer finds the postmaster of the server at url, through the
// parent of the backend serving this connection.
func openPGServer(ctx context.Context, url string, bench ...string) (*pgServer, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL at %s to read its CPU time: %w", url, err)
	}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("asking PostgreSQL for its backend's process id: %w", err)
	}
	st, err := readStat(backend)
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("PostgreSQL's backend %d is not a process of this machine (%w): its CPU time cannot be read; run the bench against a local server", backend, err)
	}
	return &pgServer{conn: conn, postmaster: st.ppid, bench: bench}, nil
}

func (s *pgServer) close() { s.conn.Close(context.Background()) }

// counters returns the server's CPU time so far, and the transactions
// other databases than the bench's have committed or rolled back so far
// (PostgreSQL's statistics, which a backend reports within a second or so
// of its transaction's end).
func (s *pgServer) counters(ctx context.Context) (time.Duration, int64, error) {
	var others int64
	if err := s.conn.QueryRow(ctx, "SELECT coalesce(sum(xact_commit + xact_rollback), 0)::bigint FROM pg_stat_database WHERE datname IS NOT NULL AND NOT datname = ANY($1)",
		s.bench).Scan(&others); err != nil {
		return 0, 0, fmt.Errorf("reading PostgreSQL's transaction counts: %w", err)
	}
	pm, err := readStat(s.postmaster)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the CPU time of PostgreSQL's postmaster: %w", err)
	}
	ticks := pm.utime + pm.stime + pm.cutime + pm.cstime
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, fmt.Errorf("listing processes: %w", err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != s.postmaster {
			continue // gone meanwhile, or not the server's
		}
		ticks += st.utime + st.stime + st.cutime + st.cstime
	}
	return time.Duration(ticks) * clockTick, others, nil
}
