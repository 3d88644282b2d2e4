package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	sdk "github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/poll"
	"github.com/syncline/syncline/pkg/secret"
)

// pollCheckEvery is how often a poller looks at its source's state again while another
// replica polls it, and how often the pollers look for flows that poll a new source. A
// poller whose source is not due sleeps until it is, or until a request to poll now
// (`syncline flow sync`) or a change of its schedules wakes it.
const pollCheckEvery = time.Second

// pollers run the polls of the sources the flows read on a schedule: one goroutine per
// source (an endpoint's entity, shared by every flow that reads it) in every replica, of
// which one at a time, the holder of the source's lease, polls.
type pollers struct {
	s       *Service
	store   *poll.Store
	pub     *ingest.Publisher
	replica string
	log     *slog.Logger

	mu      sync.Mutex
	stop    context.CancelFunc
	running map[poll.Source]*poller
	version uint64 // the flow index version running was made for
	wg      sync.WaitGroup
}

type poller struct {
	src    poll.Source
	cancel context.CancelFunc
	// wake tells a waiting poller to look at its source again: a poll was asked for, or
	// its schedules changed.
	wake chan struct{}

	mu sync.Mutex
	// flow is the newest flow that reads the source: its endpoint is what is opened.
	flow *flowconfig.Flow
	// schedules are the schedules of every flow that reads the source: it is polled when
	// the first of them is due.
	schedules []poll.Schedule
}

func newPollers(s *Service) *pollers {
	return &pollers{
		s:       s,
		store:   poll.NewStore(s.deps.JetStream, s.deps.Bus.Replicas),
		pub:     ingest.NewPublisher(s.deps.JetStream, s.deps.Tracer, ingest.WithRoutes(s.deps.Flows.Route)),
		replica: uuid.NewString(),
		log:     s.log.With("side", "source"),
		running: map[poll.Source]*poller{},
	}
}

// Start implements lifecycle's part: it follows the flow index until ctx is done.
func (ps *pollers) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ps.wg.Add(2)
	go func() {
		defer ps.wg.Done()
		ps.store.WatchRequests(ctx, func(src poll.Source) {
			ps.mu.Lock()
			p := ps.running[src]
			ps.mu.Unlock()
			if p != nil {
				p.poke()
			}
		})
	}()
	go func() {
		defer ps.wg.Done()
		t := time.NewTicker(pollCheckEvery)
		defer t.Stop()
		for {
			ps.sync(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	ps.mu.Lock()
	ps.stop = cancel
	ps.mu.Unlock()
	return nil
}

// Stop stops every poller; a poll under way is cut off after its current page, and the
// next poll, here or in another replica, reads that page again.
func (ps *pollers) Stop(ctx context.Context) error {
	ps.mu.Lock()
	if ps.stop != nil {
		ps.stop()
	}
	ps.mu.Unlock()
	done := make(chan struct{})
	go func() { ps.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the source pollers: %w", ctx.Err())
	}
}

// sync starts a poller for every source a flow polls and stops those no flow polls any
// more.
func (ps *pollers) sync(ctx context.Context) {
	idx := ps.s.deps.Flows
	v := idx.Version()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if v == ps.version && ps.version != 0 {
		return
	}
	ps.version = v
	type want struct {
		flow      *flowconfig.Flow
		schedules []poll.Schedule
	}
	wanted := map[poll.Source]*want{}
	for _, f := range idx.Flows() {
		if !f.Polled() || f.Stage == flowconfig.StageDeleted {
			continue
		}
		sched, err := poll.Parse(*f.Schedule)
		if err != nil {
			// The control plane checked it; a flow config written by another
			// version may still hold one this one refuses.
			ps.log.Error("a flow's schedule is not one this connector can follow; its source is not polled for it", "tenant", f.Tenant, "flow", f.Name, "error", err)
			continue
		}
		src := poll.Source{Tenant: f.Tenant, Endpoint: f.Source.Name, Entity: f.Entity}
		w := wanted[src]
		if w == nil {
			w = &want{flow: f}
			wanted[src] = w
		}
		if f.Generation > w.flow.Generation {
			w.flow = f
		}
		w.schedules = append(w.schedules, sched)
	}
	for src, p := range ps.running {
		if _, ok := wanted[src]; !ok {
			p.cancel()
			delete(ps.running, src)
		}
	}
	for src, w := range wanted {
		p := ps.running[src]
		if p == nil {
			pctx, cancel := context.WithCancel(ctx)
			p = &poller{src: src, cancel: cancel, wake: make(chan struct{}, 1)}
			ps.running[src] = p
			p.set(w.flow, w.schedules)
			ps.wg.Add(1)
			go func() {
				defer ps.wg.Done()
				ps.run(pctx, p)
			}()
			continue
		}
		p.set(w.flow, w.schedules)
	}
}

func (p *poller) set(f *flowconfig.Flow, s []poll.Schedule) {
	p.mu.Lock()
	p.flow, p.schedules = f, s
	p.mu.Unlock()
	p.poke()
}

func (p *poller) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *poller) get() (*flowconfig.Flow, []poll.Schedule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flow, p.schedules
}

// due returns when src is next to be polled, given its state: at once if it was never
// polled, if a poll was asked for since the last began, or if the last one was cut off
// (its holder died or stopped); otherwise when the first of its schedules is due after the
// last poll, delayed by jitter (a fraction in [0, 1) of each schedule's jitter).
func due(st poll.State, req poll.Request, schedules []poll.Schedule, jitter float64) time.Time {
	if st.Started.IsZero() || asked(st, req) || st.Outcome == poll.OutcomeRunning {
		return time.Time{}
	}
	var first time.Time
	for _, s := range schedules {
		t := s.Due(st.Started, st.Finished).Add(time.Duration(jitter * float64(s.Jitter)))
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first
}

// asked reports whether req asks for a poll that has not begun yet.
func asked(st poll.State, req poll.Request) bool {
	return !req.At.IsZero() && !req.At.Before(st.Started)
}

// run waits for src's polls to be due and polls it whenever this replica gets its lease.
func (ps *pollers) run(ctx context.Context, p *poller) {
	log := ps.log.With("tenant", p.src.Tenant, "endpoint", p.src.Endpoint, "entity", p.src.Entity)
	jitter := rand.Float64()
	for ctx.Err() == nil {
		wait, err := ps.wait(ctx, p, jitter)
		if err != nil {
			log.Warn("cannot read the source's poll state; trying again", "error", err)
			wait = 5 * pollCheckEvery
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-p.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		lease, err := ps.store.TryLease(ctx, p.src, ps.replica)
		if err != nil {
			log.Warn("cannot take the source's lease; trying again", "error", err)
			sleep(ctx, 5*pollCheckEvery)
			continue
		}
		if lease == nil {
			// Another replica polls it now.
			sleep(ctx, pollCheckEvery)
			continue
		}
		ps.pollLeased(ctx, p, lease, jitter, log)
		lease.Release()
		jitter = rand.Float64()
	}
}

// wait returns how long until src is due; zero or less: now.
func (ps *pollers) wait(ctx context.Context, p *poller, jitter float64) (time.Duration, error) {
	st, _, err := ps.store.Get(ctx, p.src)
	if err != nil {
		return 0, err
	}
	req, err := ps.store.SyncRequested(ctx, p.src)
	if err != nil {
		return 0, err
	}
	_, schedules := p.get()
	return time.Until(due(st, req, schedules, jitter)), nil
}

// pollLeased polls src under its lease, if it is still due once the lease is held (another
// replica may have polled it just before), renewing the lease while it polls.
func (ps *pollers) pollLeased(ctx context.Context, p *poller, lease *poll.Lease, jitter float64, log *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(ps.store.LeaseTTL() / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := lease.Renew(ctx, ps.replica); err != nil {
					if ctx.Err() == nil {
						log.Warn("lost the source's lease; the poll stops, and the next holder reads on from the stored cursor", "error", err)
					}
					cancel()
					return
				}
			}
		}
	}()
	defer func() { cancel(); <-renewed }()

	st, rev, err := ps.store.Get(ctx, p.src)
	if err != nil {
		log.Warn("cannot read the source's poll state", "error", err)
		return
	}
	req, err := ps.store.SyncRequested(ctx, p.src)
	if err != nil {
		log.Warn("cannot read the source's poll requests", "error", err)
		return
	}
	f, schedules := p.get()
	if time.Until(due(st, req, schedules, jitter)) > 0 {
		return
	}
	if asked(st, req) && req.FromStart {
		st.Cursor = ""
	}
	start := time.Now()
	st.Started, st.Finished, st.Outcome, st.Error, st.Changes, st.Replica = start, time.Time{}, poll.OutcomeRunning, "", 0, ps.replica
	if rev, err = ps.store.Put(ctx, p.src, st, rev); err != nil {
		log.Warn("cannot start the poll", "error", err)
		return
	}
	pollErr := ps.poll(ctx, f, p.src, &st, &rev)
	if errors.Is(pollErr, poll.ErrConflict) || ctx.Err() != nil {
		// Another replica has the source now, or this one stops: the state
		// stays as the last page left it, running, and the next holder polls
		// at once from its cursor.
		log.Info("poll cut off", "changes", st.Changes, "error", pollErr)
		ps.s.deps.PollMetrics.ended(p.src, "cut off", st.Changes, start, time.Now())
		return
	}
	st.Finished = time.Now()
	st.Outcome, st.Error = poll.OutcomeOK, ""
	if pollErr != nil {
		st.Outcome, st.Error = poll.OutcomeFailed, pollErr.Error()
		log.Warn("poll failed; the next reads again from the stored cursor", "changes", st.Changes, "error", pollErr)
	} else {
		log.Debug("polled", "changes", st.Changes, "took", st.Finished.Sub(start))
	}
	st.Next = due(st, poll.Request{}, schedules, jitter)
	ps.s.deps.PollMetrics.ended(p.src, st.Outcome, st.Changes, start, st.Finished)
	// Written with a context of its own: a poll that ran out of time still tells
	// how it ended.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer wcancel()
	if _, err := ps.store.Put(wctx, p.src, st, rev); err != nil {
		log.Warn("cannot store how the poll ended", "error", err)
	}
}

// poll reads src page by page from st's cursor, publishes each page's changes, and stores
// the cursor after each page once its changes are stored on the bus.
func (ps *pollers) poll(ctx context.Context, f *flowconfig.Flow, src poll.Source, st *poll.State, rev *uint64) error {
	source, err := ps.open(ctx, f)
	if err != nil {
		return err
	}
	defer source.Close()
	for ctx.Err() == nil {
		page, err := source.Read(ctx, src.Entity, st.Cursor)
		if err != nil {
			return fmt.Errorf("reading %s from its cursor: %w", src, err)
		}
		if len(page.Changes) > 0 {
			if err := ps.publish(ctx, src, page.Changes); err != nil {
				return err
			}
			ps.s.deps.PollMetrics.read(src, len(page.Changes))
		}
		st.Cursor = page.Cursor
		st.Changes += int64(len(page.Changes))
		st.Total += int64(len(page.Changes))
		if *rev, err = ps.store.Put(ctx, src, *st, *rev); err != nil {
			return err
		}
		if !page.More {
			return nil
		}
	}
	return ctx.Err()
}

// publish publishes one page's changes as change events and returns once the ingest
// stream stored them all. A change stored before (a page read again) is no error.
func (ps *pollers) publish(ctx context.Context, src poll.Source, changes []sdk.Change) error {
	out := make([]ingest.Change, len(changes))
	for i, c := range changes {
		out[i] = ingest.Change{
			EventID: poll.EventID(src, c.Key, c.Version), Tenant: src.Tenant, Endpoint: src.Endpoint, Entity: src.Entity,
			Key: c.Key, Version: c.Version, Delete: c.Delete, Payload: c.Payload, OccurredAt: c.OccurredAt,
		}
	}
	_, err := ps.pub.Publish(ctx, out...)
	var dup *ingest.DuplicateError
	var invalid *ingest.InvalidChangeError
	switch {
	case err == nil || errors.As(err, &dup):
		return nil
	case errors.As(err, &invalid):
		return fmt.Errorf("record %q of %s cannot be a change event (%v): fix it in the source system; the next poll reads on from it", invalid.Key, src, invalid.Err)
	default:
		return fmt.Errorf("publishing the changes of %s: %w", src, err)
	}
}

// open opens f's source endpoint with its credentials, within the endpoint's budget.
func (ps *pollers) open(ctx context.Context, f *flowconfig.Flow) (sdk.Source, error) {
	s := ps.s
	open, err := f.Source.OpenSettings(f.Tenant, s.deps.Secrets)
	switch {
	case errors.Is(err, flowconfig.ErrNoMasterKey):
		return nil, fmt.Errorf("endpoint %s of tenant %s has credentials, and the connector has no master key: set %s as on the control plane", f.Source.Name, f.Tenant, secret.EnvMasterKey)
	case err != nil:
		return nil, err
	}
	valid, err := s.deps.Connectors.ValidateSettings(f.Source.Type, open)
	if err != nil {
		return nil, fmt.Errorf("opening source endpoint %s of tenant %s: %w", f.Source.Name, f.Tenant, err)
	}
	budget := sdk.NewBudget(sdk.BudgetFromSettings(valid), sdk.WithBudgetMetrics(s.deps.BudgetMetrics, f.Tenant, f.Source.Name))
	src, err := s.deps.Connectors.OpenSource(ctx, f.Source.Type, open, sdk.Env{Tenant: f.Tenant, Egress: s.egress, Budget: budget})
	if err != nil {
		return nil, fmt.Errorf("opening source endpoint %s of tenant %s: %w", f.Source.Name, f.Tenant, err)
	}
	return src, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
