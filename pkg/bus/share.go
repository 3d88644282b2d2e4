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

// Lease timing: a member renews its leases every leaseRenew; a lease not
// renewed for leaseTTL (a member that died) is free for others.
const (
	leaseTTL   = 6 * time.Second
	leaseRenew = time.Second
)

// OpenLeases creates the lease bucket if needed. Leases live in memory: they
// describe running processes, which a server restart ends anyway.
func OpenLeases(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "Which process runs which consumer: one holder per consumer at a time.",
		History:     1,
		TTL:         leaseTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening key-value bucket %s: %w", LeaseBucket, err)
	}
	return kv, nil
}

// Shared runs a family of consumers — one per partition, or a single one —
// across the replicas of a service. Each consumer runs in at most one
// replica at a time, because a consumer acknowledges with AckAll and must
// never be read by two processes (see Consumer). Replicas hold a lease per
// consumer in the lease bucket and share them out: each takes at most its
// fair share, ceil(consumers / live replicas), so a new replica gets work
// and a stopped or dead one's consumers are taken over (at once after a
// stop, within six seconds after a crash). A replica that cannot renew a
// lease stops that consumer before anyone else can take it.
//
// With a nil bucket, Shared runs every consumer itself: the all-in-one mode,
// where there is only one process.
type Shared struct {
	kv        jetstream.KeyValue
	group     string
	member    string
	consumers []*Consumer
	log       *slog.Logger

	mu   sync.Mutex
	held map[int]uint64 // consumer index -> lease revision
	stop chan struct{}
	done chan struct{}
}

// NewShared returns a family of consumers named group (a stage and what it
// consumes, e.g. "dedup-flow"). kv may be nil (no other replicas).
func NewShared(kv jetstream.KeyValue, group string, consumers []*Consumer, log *slog.Logger) *Shared {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shared{
		kv:        kv,
		group:     group,
		member:    uuid.NewString(),
		consumers: consumers,
		log:       log.With("group", group),
		held:      map[int]uint64{},
	}
}

// Start joins the group and takes this replica's share before it returns, so
// a lone replica is consuming when Start returns; then it keeps the share
// fair in the background. ctx bounds the first round.
func (s *Shared) Start(ctx context.Context) error {
	if s.kv == nil {
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
	if err := s.round(ctx); err != nil {
		s.release(ctx)
		return err
	}
	go s.loop()
	return nil
}

// Stop stops the consumers this replica runs and gives up their leases, so
// another replica takes them over at once.
func (s *Shared) Stop(ctx context.Context) error {
	if s.kv == nil {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.held))
	for i := range s.consumers {
		if _, ok := s.held[i]; ok {
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

// round renews membership and leases, then takes or gives up consumers to
// move towards the fair share.
func (s *Shared) round(ctx context.Context) error {
	if _, err := s.kv.Put(ctx, s.memberKey(), nil); err != nil {
		return fmt.Errorf("renewing membership: %w", err)
	}
	members, err := s.members(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, rev := range s.held {
		next, err := s.kv.Update(ctx, s.leaseKey(i), []byte(s.member), rev)
		if err != nil {
			// Lost (expired and taken, or the bucket is unreachable for
			// longer than the TTL): stop at once, whoever holds it now.
			s.log.Warn("lost a consumer lease; stopping the consumer", "consumer", s.consumers[i].spec.Durable, "error", err)
			s.stopConsumer(i)
			continue
		}
		s.held[i] = next
	}
	fair := (len(s.consumers) + members - 1) / members
	for i := len(s.consumers) - 1; i >= 0 && len(s.held) > fair; i-- {
		if _, ok := s.held[i]; ok {
			s.stopConsumer(i)
			_ = s.kv.Delete(ctx, s.leaseKey(i))
		}
	}
	for i := range s.consumers {
		if len(s.held) >= fair {
			break
		}
		if _, ok := s.held[i]; ok {
			continue
		}
		rev, err := s.kv.Create(ctx, s.leaseKey(i), []byte(s.member))
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return fmt.Errorf("taking lease of %s: %w", s.consumers[i].spec.Durable, err)
		}
		if err := s.consumers[i].Start(ctx); err != nil {
			_ = s.kv.Delete(ctx, s.leaseKey(i), jetstream.LastRevision(rev))
			return err
		}
		s.held[i] = rev
		s.log.Info("running consumer", "consumer", s.consumers[i].spec.Durable)
	}
	return nil
}

func (s *Shared) members(ctx context.Context) (int, error) {
	keys, err := s.kv.ListKeysFiltered(ctx, "member."+s.group+".*")
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

// stopConsumer stops consumer i, which this replica holds; s.mu is held.
func (s *Shared) stopConsumer(i int) {
	ctx, cancel := context.WithTimeout(context.Background(), leaseTTL/2)
	defer cancel()
	if err := s.consumers[i].Stop(ctx); err != nil {
		s.log.Warn("stopping consumer", "consumer", s.consumers[i].spec.Durable, "error", err)
	}
	delete(s.held, i)
}

// release stops every held consumer, then frees its lease and the
// membership.
func (s *Shared) release(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i, rev := range s.held {
		errs = append(errs, s.consumers[i].Stop(ctx))
		if err := s.kv.Delete(ctx, s.leaseKey(i), jetstream.LastRevision(rev)); err != nil {
			errs = append(errs, fmt.Errorf("freeing lease of %s: %w", s.consumers[i].spec.Durable, err))
		}
		delete(s.held, i)
	}
	if err := s.kv.Delete(ctx, s.memberKey()); err != nil {
		errs = append(errs, fmt.Errorf("leaving group %s: %w", s.group, err))
	}
	return errors.Join(errs...)
}
