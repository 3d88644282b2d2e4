package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// cost is what a burst cost per event. Every figure is taken over the burst
// alone, from its first publish to its last event's arrival; with noise from
// other programs on the machine, CPU time per event moves less than events/s.
type cost struct {
	// CPUMicros is the process's CPU time (user and system, from getrusage)
	// per event. The process holds everything the run needs besides
	// PostgreSQL: the embedded NATS server, the stages, and the load
	// generator's publishers and audit subscriber.
	CPUMicros float64
	// PostgresCPUMicros is the PostgreSQL server's CPU time per event (see
	// pgServer), or -1 when the run did not use PostgreSQL or its
	// processes were not readable. PostgresOthers counts the transactions
	// other databases of the server committed meanwhile: work not the
	// bench's that the figure includes.
	PostgresCPUMicros float64
	PostgresOthers    int64
	// AllocBytes and AllocObjects are the Go heap allocations per event.
	AllocBytes, AllocObjects float64
}

// meter measures a cost from start to stop.
type meter struct {
	start              time.Time
	cpu                time.Duration
	allocBytes, allocs uint64
	pg                 *pgServer
	pgCPU              time.Duration
	pgOthers           int64
}

// startMeter reads the counters a cost is the difference of; pg, when not
// nil, is the PostgreSQL server the run uses.
func startMeter(ctx context.Context, pg *pgServer) (*meter, error) {
	m := &meter{pg: pg}
	if pg != nil {
		var err error
		if m.pgCPU, m.pgOthers, err = pg.counters(ctx); err != nil {
			return nil, err
		}
	}
	m.start = time.Now()
	m.cpu = processCPU()
	m.allocBytes, m.allocs = heapAllocs()
	return m, nil
}

// stop returns the cost per event of what happened since startMeter.
func (m *meter) stop(ctx context.Context, events int) (cost, error) {
	cpu := processCPU()
	allocBytes, allocs := heapAllocs()
	n := float64(events)
	c := cost{
		CPUMicros:         float64((cpu - m.cpu).Microseconds()) / n,
		AllocBytes:        float64(allocBytes-m.allocBytes) / n,
		AllocObjects:      float64(allocs-m.allocs) / n,
		PostgresCPUMicros: -1,
	}
	if m.pg != nil {
		pgCPU, others, err := m.pg.counters(ctx)
		if err != nil {
			return cost{}, err
		}
		c.PostgresCPUMicros = float64((pgCPU - m.pgCPU).Microseconds()) / n
		c.PostgresOthers = others - m.pgOthers
	}
	return c, nil
}

// processCPU is the CPU time the process has used, user and system, its
// every thread included.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapAllocs are the bytes and objects allocated on the Go heap so far.
func heapAllocs() (bytes, objects uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// resetPeakRSS sets the process's peak resident set (VmHWM) back to its
// current resident set (Linux 4.0 and later), so that the next peakRSS is
// the peak of what runs from now on.
func resetPeakRSS() {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintf(os.Stderr, "  cannot reset the peak RSS (%v): the next peak includes what ran before\n", err)
	}
}

// pgServer reads the CPU time of a PostgreSQL server on this machine from
// /proc: the postmaster's own, that of the children it has reaped (the
// backends of connections that closed, autovacuum workers that finished:
// the kernel adds them to the parent's cutime and cstime when it waits for
// them), and that of every child still running (backends, the WAL writer,
// the checkpointer, the background writer). That is the whole server's
// CPU, the background work the bench's writes cause included; it includes
// other databases' work too, which is why counters also counts their
// transactions.
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

// clockTick is the unit of /proc/<pid>/stat's times: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// procStat is what pgServer reads of /proc/<pid>/stat.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// readStat reads /proc/<pid>/stat (proc(5)): after the command name in
// parentheses, which may hold spaces, come the state, the parent (field
// 4) and, as fields 14 to 17, the user and system times of the process and
// of its children it has waited for.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (the state).
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields, want at least 17", pid, len(f)+2)
	}
	var st procStat
	var errs []error
	num := func(field int) int64 {
		v, err := strconv.ParseInt(string(f[field-3]), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("/proc/%d/stat field %d: %w", pid, field, err))
		}
		return v
	}
	st.ppid = int(num(4))
	st.utime, st.stime, st.cutime, st.cstime = num(14), num(15), num(16), num(17)
	return st, errors.Join(errs...)
}
