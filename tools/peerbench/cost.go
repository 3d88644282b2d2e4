package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/syncline/syncline/tools/internal/bench"
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
	pg               *bench.Server
	pgCPU            time.Duration
	pgOthers         int64
}

// startMeter reads the counters the costs are the difference of; pg, when
// not nil, is the PostgreSQL server the run uses, nats the nats-server's
// process.
func startMeter(ctx context.Context, pg *bench.Server, nats int) (*meter, error) {
	m := &meter{pg: pg, nats: nats}
	if pg != nil {
		var err error
		if m.pgCPU, m.pgOthers, err = pg.Counters(ctx); err != nil {
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
		pgCPU, others, err := m.pg.Counters(ctx)
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
