package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket is the key-value bucket of consumer leases and members.
const LeaseBucket = "syncline_leases"

// Lease timing. A member renews its leases every leaseRenew; a lease not
// renewed for leaseTTL (a member that died) is free for others. A member
// that has not renewed a lease for leaseExpire stops that consumer, within
// leaseStop, so that it has stopped before anyone else can take the lease:
// leaseExpire + one round (leaseRenew) + leaseStop < leaseTTL.
const (
	leaseTTL    = 6 * time.Second
	leaseRenew  = time.Second
	leaseExpire = leaseTTL / 2
	leaseStop   = 1500 * time.Millisecond
)

// Leases is the bucket of consumer leases and members. Leases live in
// memory: they describe running processes, which a server restart ends
// anyway. A server that restarts has lost the bucket, so the members create
// it again (see Shared).
type Leases struct {
	js       jetstream.JetStream
	replicas int
	kv       jetstream.KeyValue
}

// OpenLeases creates the lease bucket if needed.
func OpenLeases(ctx context.Context, js jetstream.JetStream, replicas int) (*Leases, error) {
	l := &Leases{js: js, replicas: replicas}
	kv, err := l.create(ctx)
	if err != nil {
		return nil, err
	}
	l.kv = kv
	return l, nil
}

func (l *Leases) create(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "Which process runs which consumer: one holder per consumer at a time.",
		History:     1,
		TTL:         leaseTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    l.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening key-value bucket %s: %w", LeaseBucket, err)
	}
	return kv, nil
}

// restore creates the bucket again if the server no longer has it (a
// restarted server). The bucket handle names the bucket, so it works on the
// new one as it did on the old.
func (l *Leases) restore(ctx context.Context) error {
	_, err := l.js.KeyValue(ctx, LeaseBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = l.create(ctx)
	}
	if err != nil {
		return fmt.Errorf("restoring key-value bucket %s: %w", LeaseBucket, err)
	}
	return nil
}

// age returns when the bucket was created and how old it is, both by the
// server's clock, so that no two clocks are compared.
func (l *Leases) age(ctx context.Context) (time.Time, time.Duration, error) {
	st, err := l.js.Stream(ctx, "KV_"+LeaseBucket)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("reading the age of key-value bucket %s: %w", LeaseBucket, err)
	}
	info := st.CachedInfo()
	if info.TimeStamp.IsZero() {
		// A server too old to say its time: take the bucket as new.
		return info.Created, 0, nil
	}
	return info.Created, info.TimeStamp.Sub(info.Created), nil
}

// Shared runs a family of consumers — one per partition, or a single one —
// across the replicas of a service. Each consumer runs in at most one
// replica at a time, because a consumer acknowledges with AckAll and must
// never be read by two processes (see Consumer). Replicas hold a lease per
// consumer in the lease bucket and share them out: each takes at most its
// fair share, ceil(consumers / live replicas), so a new replica gets work
// and a stopped or dead one's consumers are taken over (at once after a
// stop, within six seconds after a crash).
//
// Three rules keep one reader per consumer when the bus fails. A replica
// that has not renewed a lease for half its TTL (the server is down or
// unreachable) stops that consumer before anyone else can take it. A
// replica whose server lost the bucket (a restart) creates it again, and
// leases are taken only in a bucket at least one TTL old: by then every
// holder of a lease in the lost bucket has stopped. And a consumer whose
// durable or stream the server lost is created again (see Consumer).
//
// With a nil bucket, Shared runs every consumer itself: the all-in-one mode,
// where there is only one process.
type Shared struct {
	leases    *Leases
	group     string
	member    string
	consumers []*Consumer
	log       *slog.Logger

	// mu is held by a round; what it guards is the round's own.
	mu   sync.Mutex
	held map[int]lease
	// bucket is when the bucket this replica last saw was created; a
	// different time is a bucket created again, whose leases may be taken
	// only after takeAfter.
	bucket    time.Time
	takeAfter time.Time

	// running is what Held reports, kept apart from mu so that reading it
	// never waits for a round.
	runMu   sync.Mutex
	running map[int]bool

	stop chan struct{}
	done chan struct{}
}

// lease is a held lease: its revision, and when the request that last
// renewed it was sent (the lease runs for leaseTTL from before then).
type lease struct {
	rev     uint64
	renewed time.Time
}

// NewShared returns a family of consumers named group (a stage and what it
// consumes, e.g. "dedup-flow"). leases may be nil (no other replicas).
func NewShared(leases *Leases, group string, consumers []*Consumer, log *slog.Logger) *Shared {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shared{
		leases:    leases,
		group:     group,
		member:    uuid.NewString(),
		consumers: consumers,
		log:       log.With("group", group),
		held:      map[int]lease{},
		running:   map[int]bool{},
	}
}

// Start joins the group and takes this replica's share before it returns, so
// a lone replica is consuming when Start returns; then it keeps the share
// fair in the background. In a bucket younger than a lease's TTL (the first
// start of a deployment, or after the server lost the bucket) Start waits
// until it is that old. ctx bounds the wait and the first round.
func (s *Shared) Start(ctx context.Context) error {
	if s.leases == nil {
		for i, c := range s.consumers {
			if err := c.Start(ctx); err != nil {
				s.stopFirst(ctx, i)
				return err
			}
		}
		return nil
	}
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	err := s.round(ctx)
	for err == nil && s.waiting() {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("starting consumers of %s: %w", s.group, ctx.Err())
		case <-time.After(time.Until(s.takeAfter)):
			err = s.round(ctx)
		}
	}
	if err != nil {
		return errors.Join(err, s.release(context.WithoutCancel(ctx)))
	}
	go s.loop()
	return nil
}

// waiting reports whether leases are still to be taken once the bucket is
// old enough.
func (s *Shared) waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held) == 0 && time.Now().Before(s.takeAfter)
}

// Stop stops the consumers this replica runs and gives up their leases, so
// another replica takes them over at once.
func (s *Shared) Stop(ctx context.Context) error {
	if s.leases == nil {
		var errs []error
		for _, c := range s.consumers {
			errs = append(errs, c.Stop(ctx))
		}
		return errors.Join(errs...)
	}
	close(s.stop)
	<-s.done
	return s.release(ctx)
}

// Held returns the indexes of the consumers this replica runs.
func (s *Shared) Held() []int {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	out := make([]int, 0, len(s.running))
	for i := range s.consumers {
		if s.running[i] {
			out = append(out, i)
		}
	}
	return out
}

func (s *Shared) stopFirst(ctx context.Context, n int) {
	for _, c := range s.consumers[:n] {
		_ = c.Stop(ctx)
	}
}

func (s *Shared) loop() {
	defer close(s.done)
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), leaseRenew)
		if err := s.round(ctx); err != nil {
			s.log.Warn("sharing consumers", "error", err)
		}
		cancel()
	}
}

func (s *Shared) leaseKey(i int) string { return "lease." + s.consumers[i].spec.Durable }

func (s *Shared) memberKey() string { return "member." + s.group + "." + s.member }

// round renews membership and leases, stops the consumers whose lease it
// could not renew in time, then takes or gives up consumers to move towards
// the fair share.
func (s *Shared) round(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	err := s.renew(ctx)
	s.expire()
	if err != nil {
		return err
	}
	return s.balance(ctx)
}

// renew renews membership, creating the bucket again if the server lost it,
// and then the held leases.
func (s *Shared) renew(ctx context.Context) error {
	kv := s.leases.kv
	sent := time.Now()
	if _, err := kv.Put(ctx, s.memberKey(), nil); err != nil {
		if rerr := s.leases.restore(ctx); rerr != nil {
			return fmt.Errorf("renewing membership: %w", errors.Join(err, rerr))
		}
		sent = time.Now()
		if _, err := kv.Put(ctx, s.memberKey(), nil); err != nil {
			return fmt.Errorf("renewing membership: %w", err)
		}
	}
	var lost []int
	for i, l := range s.held {
		next, err := kv.Update(ctx, s.leaseKey(i), []byte(s.member), l.rev)
		if err != nil {
			// Lost (expired and taken, or gone with the bucket), or not
			// renewed: stop at once, whoever holds it now.
			s.log.Warn("lost a consumer lease; stopping the consumer", "consumer", s.consumers[i].spec.Durable, "error", err)
			lost = append(lost, i)
			continue
		}
		s.held[i] = lease{rev: next, renewed: sent}
	}
	s.stopConsumers(lost)
	return nil
}

// expire stops the consumers whose lease has gone unrenewed for
// leaseExpire.
func (s *Shared) expire() {
	var late []int
	for i, l := range s.held {
		if time.Since(l.renewed) >= leaseExpire {
			s.log.Warn("could not renew a consumer lease in time; stopping the consumer", "consumer", s.consumers[i].spec.Durable, "unrenewed_for", time.Since(l.renewed).Round(time.Millisecond))
			late = append(late, i)
		}
	}
	s.stopConsumers(late)
}

// balance takes or gives up consumers to move towards the fair share.
func (s *Shared) balance(ctx context.Context) error {
	kv := s.leases.kv
	members, err := s.members(ctx)
	if err != nil {
		return err
	}
	fair := (len(s.consumers) + members - 1) / members
	var extra []int
	for i := len(s.consumers) - 1; i >= 0 && len(s.held)-len(extra) > fair; i-- {
		if _, ok := s.held[i]; ok {
			extra = append(extra, i)
		}
	}
	s.stopConsumers(extra)
	for _, i := range extra {
		_ = kv.Delete(ctx, s.leaseKey(i))
	}
	if len(s.held) >= fair {
		return nil
	}
	if err := s.checkBucket(ctx); err != nil {
		return err
	}
	if time.Now().Before(s.takeAfter) {
		return nil
	}
	for i := range s.consumers {
		if len(s.held) >= fair {
			break
		}
		if _, ok := s.held[i]; ok {
			continue
		}
		sent := time.Now()
		rev, err := kv.Create(ctx, s.leaseKey(i), []byte(s.member))
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return fmt.Errorf("taking lease of %s: %w", s.consumers[i].spec.Durable, err)
		}
		s.setRunning(i, true)
		if err := s.consumers[i].Start(ctx); err != nil {
			s.setRunning(i, false)
			_ = kv.Delete(ctx, s.leaseKey(i), jetstream.LastRevision(rev))
			return err
		}
		s.held[i] = lease{rev: rev, renewed: sent}
		s.log.Info("running consumer", "consumer", s.consumers[i].spec.Durable)
	}
	return nil
}

// checkBucket notices a bucket created since this replica last looked and
// lets leases be taken in it only once it is one TTL old.
func (s *Shared) checkBucket(ctx context.Context) error {
	created, age, err := s.leases.age(ctx)
	if err != nil {
		return err
	}
	if created.Equal(s.bucket) {
		return nil
	}
	s.bucket = created
	s.takeAfter = time.Now().Add(leaseTTL - age)
	if age < leaseTTL {
		s.log.Info("the lease bucket is new; waiting for any holder of a lost lease to stop", "wait", (leaseTTL - age).Round(time.Millisecond))
	}
	return nil
}

func (s *Shared) members(ctx context.Context) (int, error) {
	keys, err := s.leases.kv.ListKeysFiltered(ctx, "member."+s.group+".*")
	if err != nil {
		return 0, fmt.Errorf("listing members of %s: %w", s.group, err)
	}
	n := 0
	for k := range keys.Keys() {
		if strings.HasPrefix(k, "member.") {
			n++
		}
	}
	return max(n, 1), nil
}

// stopConsumers stops the consumers idx, which this replica holds, all at
// once and each within leaseStop; s.mu is held.
func (s *Shared) stopConsumers(idx []int) {
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), leaseStop)
			defer cancel()
			if err := s.consumers[i].Stop(ctx); err != nil {
				s.log.Warn("stopping consumer", "consumer", s.consumers[i].spec.Durable, "error", err)
			}
			s.log.Info("stopped consumer", "consumer", s.consumers[i].spec.Durable)
		})
	}
	wg.Wait()
	for _, i := range idx {
		delete(s.held, i)
		s.setRunning(i, false)
	}
}

func (s *Shared) setRunning(i int, on bool) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if on {
		s.running[i] = true
	} else {
		delete(s.running, i)
	}
}

// release stops every held consumer, then frees its lease and the
// membership.
func (s *Shared) release(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv := s.leases.kv
	var errs []error
	for i, l := range s.held {
		errs = append(errs, s.consumers[i].Stop(ctx))
		s.log.Info("stopped consumer", "consumer", s.consumers[i].spec.Durable)
		s.setRunning(i, false)
		if err := kv.Delete(ctx, s.leaseKey(i), jetstream.LastRevision(l.rev)); err != nil {
			errs = append(errs, fmt.Errorf("freeing lease of %s: %w", s.consumers[i].spec.Durable, err))
		}
		delete(s.held, i)
	}
	if err := kv.Delete(ctx, s.memberKey()); err != nil {
		errs = append(errs, fmt.Errorf("leaving group %s: %w", s.group, err))
	}
	return errors.Join(errs...)
}
