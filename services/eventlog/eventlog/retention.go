package eventlog

import (
	"context"
	"time"
)

// DefaultRetention is how long a tenant's API log records and dead letters
// are kept when its spec does not say.
const DefaultRetention = 30 * 24 * time.Hour

// defaultSweepEvery is how often the sweeper runs.
const defaultSweepEvery = time.Hour

// sweeper enforces retention: it deletes each tenant's API log records and
// dead letters older than the tenant's retention. Deletes are by tenant and
// time, on the stores' time indexes, in their own transactions, so ingest
// goes on beside them. Replicas each sweep; a delete already done deletes
// nothing the second time.
type sweeper struct {
	s     *Service
	every time.Duration
	stop  chan struct{}
	done  chan struct{}
}

func (w *sweeper) Start(context.Context) error {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.run()
	return nil
}

func (w *sweeper) Stop(ctx context.Context) error {
	close(w.stop)
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *sweeper) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.stop
		cancel()
	}()
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.s.sweep(ctx, time.Now())
		select {
		case <-t.C:
		case <-w.stop:
			return
		}
	}
}

// sweep deletes what every tenant keeps longer than its retention, as of
// now, and returns how many records and letters it deleted.
func (s *Service) sweep(ctx context.Context, now time.Time) (records, letters int64) {
	if s.deps.Retention == nil {
		return 0, 0
	}
	keeps := s.deps.Retention()
	// Tenants no flow config names — events of unknown tenants, of none
	// ("_"), of tenants being erased — have records too, and the default
	// retention. Every dead letter has a log record, so the log's tenants
	// are the dead letters' too.
	logged, err := s.deps.Log.Tenants(ctx)
	if err != nil {
		s.log.Warn("listing the API log's tenants for retention", "error", err)
	}
	for _, t := range logged {
		if _, ok := keeps[t]; !ok {
			keeps[t] = DefaultRetention
		}
	}
	for tenant, keep := range keeps {
		if keep <= 0 {
			keep = DefaultRetention
		}
		before := now.Add(-keep)
		n, err := s.deps.Log.DeleteBefore(ctx, tenant, before)
		if err != nil {
			s.log.Warn("expiring API log records", "tenant", tenant, "error", err)
		}
		m, err := s.deps.DeadLetters.DeleteBefore(ctx, tenant, before)
		if err != nil {
			s.log.Warn("expiring dead letters", "tenant", tenant, "error", err)
		}
		if n+m > 0 {
			s.log.Info("retention", "tenant", tenant, "before", before, "log_records", n, "dead_letters", m)
		}
		records, letters = records+n, letters+m
	}
	return records, letters
}
