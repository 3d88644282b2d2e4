// Package benchpg is what the benchmarks share about the machine's
// PostgreSQL: fresh databases to run in, and the whole server's CPU time,
// read from /proc.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// FreshDatabase creates a database on the machine's PostgreSQL and returns
// its URL and a function that drops it.
func FreshDatabase(ctx context.Context, prefix string) (string, func(), error) {
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

// DatabaseName is the database of a PostgreSQL URL.
func DatabaseName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(p.Path, "/")
}

// Server reads the CPU time of a PostgreSQL server on this machine from
// /proc: the postmaster's own, that of the children it has reaped (the
// backends of connections that closed, autovacuum workers that finished:
// the kernel adds them to the parent's cutime and cstime when it waits for
// them), and that of every child still running (backends, the WAL writer,
// the checkpointer, the background writer). That is the whole server's
// CPU, the background work the bench's writes cause included; it includes
// other databases' work too, which is why Counters also counts their
// transactions.
type Server struct {
	conn       *pgx.Conn
	postmaster int
	// bench are the bench's databases, whose transactions are not others'.
	bench []string
}

// OpenServer finds the postmaster of the server at url, through the
// parent of the backend serving this connection.
func OpenServer(ctx context.Context, url string, bench ...string) (*Server, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL at %s to read its CPU time: %w", url, err)
	}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("asking PostgreSQL for its backend's process id: %w", err)
	}
	st, err := ReadStat(backend)
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("PostgreSQL's backend %d is not a process of this machine (%w): its CPU time cannot be read; run the bench against a local server", backend, err)
	}
	return &Server{conn: conn, postmaster: st.PPID, bench: bench}, nil
}

func (s *Server) Close() { s.conn.Close(context.Background()) }

// Counters returns the server's CPU time so far, and the transactions
// other databases than the bench's have committed or rolled back so far
// (PostgreSQL's statistics, which a backend reports within a second or so
// of its transaction's end).
func (s *Server) Counters(ctx context.Context) (time.Duration, int64, error) {
	var others int64
	if err := s.conn.QueryRow(ctx, "SELECT coalesce(sum(xact_commit + xact_rollback), 0)::bigint FROM pg_stat_database WHERE datname IS NOT NULL AND NOT datname = ANY($1)",
		s.bench).Scan(&others); err != nil {
		return 0, 0, fmt.Errorf("reading PostgreSQL's transaction counts: %w", err)
	}
	pm, err := ReadStat(s.postmaster)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the CPU time of PostgreSQL's postmaster: %w", err)
	}
	ticks := pm.UTime + pm.STime + pm.CUTime + pm.CSTime
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, fmt.Errorf("listing processes: %w", err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		st, err := ReadStat(pid)
		if err != nil || st.PPID != s.postmaster {
			continue // gone meanwhile, or not the server's
		}
		ticks += st.UTime + st.STime + st.CUTime + st.CSTime
	}
	return time.Duration(ticks) * ClockTick, others, nil
}

// ClockTick is the unit of /proc/<pid>/stat's times: USER_HZ, 100 on Linux.
const ClockTick = 10 * time.Millisecond

// Stat is what Server reads of /proc/<pid>/stat.
type Stat struct {
	PPID                         int
	UTime, STime, CUTime, CSTime int64
}

// ReadStat reads /proc/<pid>/stat (proc(5)): after the command name in
// parentheses, which may hold spaces, come the state, the parent (field
// 4) and, as fields 14 to 17, the user and system times of the process and
// of its children it has waited for.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (the state).
	if len(f) < 15 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields, want at least 17", pid, len(f)+2)
	}
	var st Stat
	var errs []error
	num := func(field int) int64 {
		v, err := strconv.ParseInt(string(f[field-3]), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("/proc/%d/stat field %d: %w", pid, field, err))
		}
		return v
	}
	st.PPID = int(num(4))
	st.UTime, st.STime, st.CUTime, st.CSTime = num(14), num(15), num(16), num(17)
	return st, errors.Join(errs...)
}

// PeakRSS is the peak resident set (VmHWM) of process pid (0: this one), in
// bytes, or 0 when it cannot be read.
func PeakRSS(pid int) int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = filepath.Join("/proc", strconv.Itoa(pid), "status")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
