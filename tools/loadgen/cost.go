package main

import (
	"context"
	"fmt"
	"os"
	"runtime/metrics"
	"syscall"
	"time"

	"github.com/syncline/syncline/tools/internal/bench"
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
	// bench.Server), or -1 when the run did not use PostgreSQL or its
	// processes were not readable. PostgresOthers counts the transactions
	// other databases of the server committed meanwhile: work not the
	// bench's that the figure includes.
	PostgresCPUMicros float64
	PostgresOthers    int64
	// PublisherCPUMicros is the CPU time per event of the process that
	// published the burst (publisher.go), not part of CPUMicros.
	PublisherCPUMicros float64
	// AllocBytes and AllocObjects are the Go heap allocations per event.
	AllocBytes, AllocObjects float64
}

// meter measures a cost from start to stop.
type meter struct {
	start              time.Time
	cpu                time.Duration
	allocBytes, allocs uint64
	pg                 *bench.Server
	pgCPU              time.Duration
	pgOthers           int64
}

// startMeter reads the counters a cost is the difference of; pg, when not
// nil, is the PostgreSQL server the run uses.
func startMeter(ctx context.Context, pg *bench.Server) (*meter, error) {
	m := &meter{pg: pg}
	if pg != nil {
		var err error
		if m.pgCPU, m.pgOthers, err = pg.Counters(ctx); err != nil {
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
		pgCPU, others, err := m.pg.Counters(ctx)
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
