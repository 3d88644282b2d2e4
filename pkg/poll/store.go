package poll

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket is the key-value bucket of the polled sources' states: a source's cursor,
// its last poll and when the next is due (key Source.Key), and the requests to poll now
// (key "sync." + Source.Key).
const StateBucket = "syncline_sources"

// LeaseBucket is the key-value bucket of who polls a source now.
const LeaseBucket = "syncline_source_leases"

// LeaseTTL is how long a lease outlives a replica that died holding it; a holder renews it
// every LeaseTTL/3.
const LeaseTTL = 30 * time.Second

// Source is one polled source: an endpoint of a tenant, read for one entity. Every flow
// that reads the endpoint's entity shares it, its cursor and its polls.
type Source struct {
	Tenant, Endpoint, Entity string
}

// Key is the source's key in the buckets. Tenant, endpoint and entity names are subject
// tokens, so it is a valid key.
func (s Source) Key() string { return s.Tenant + "." + s.Endpoint + "." + s.Entity }

func (s Source) String() string {
	return fmt.Sprintf("endpoint %s of tenant %s, entity %s", s.Endpoint, s.Tenant, s.Entity)
}

// The outcomes of a poll.
const (
	OutcomeRunning = "running"
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
)

// State is what is known of a source's polls, durably: every replica reads it, one writes.
type State struct {
	// Cursor is where the next poll reads on from; it moves only once the changes read
	// before it are stored on the bus.
	Cursor string `json:"cursor"`
	// Started and Finished are when the last poll began and ended (Finished is zero
	// while it runs).
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Outcome is running, ok or failed; Error is the failure's message.
	Outcome string `json:"outcome,omitempty"`
	Error   string `json:"error,omitempty"`
	// Changes is how many changes the last poll published; Total, all polls together.
	Changes int64 `json:"changes"`
	Total   int64 `json:"total"`
	// Next is when the next poll is due; zero: at once.
	Next time.Time `json:"next,omitzero"`
	// Replica is who polled last.
	Replica string `json:"replica,omitempty"`
}

// ErrConflict is Store.Put's error when the state changed since it was read: another
// replica polls the source now.
var ErrConflict = errors.New("the source's state was changed by another replica")

// Store keeps the sources' states and leases in the bus's key-value buckets. It opens them
// on first use, and again when the NATS server lost them.
type Store struct {
	js       jetstream.JetStream
	replicas int
	leaseTTL time.Duration

	mu     sync.Mutex
	states jetstream.KeyValue
	leases jetstream.KeyValue
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithLeaseTTL sets how long a lease outlives its holder (LeaseTTL by default). The bucket
// has one TTL for every store of a NATS server: give each the same.
func WithLeaseTTL(d time.Duration) StoreOption {
	return func(s *Store) { s.leaseTTL = d }
}

// NewStore returns the store of js; buckets are made with replicas.
func NewStore(js jetstream.JetStream, replicas int, opts ...StoreOption) *Store {
	s := &Store{js: js, replicas: replicas, leaseTTL: LeaseTTL}
	for _, o := range opts {
		o(s)
	}
	return s
}

// LeaseTTL is how long a lease of this store outlives a holder that stopped renewing it;
// a holder renews it every third of that.
func (s *Store) LeaseTTL() time.Duration { return s.leaseTTL }

func (s *Store) buckets(ctx context.Context) (states, leases jetstream.KeyValue, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      StateBucket,
			Description: "Polled sources: each one's cursor, last poll and next poll, and requests to poll now.",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    s.replicas,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("opening key-value bucket %s: %w", StateBucket, err)
		}
		s.states = kv
	}
	if s.leases == nil {
		kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      LeaseBucket,
			Description: "Which replica polls a source now; a lease expires when its holder stops renewing it.",
			History:     1,
			TTL:         s.leaseTTL,
			Storage:     jetstream.MemoryStorage,
			Replicas:    s.replicas,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("opening key-value bucket %s: %w", LeaseBucket, err)
		}
		s.leases = kv
	}
	return s.states, s.leases, nil
}

// forget drops the opened buckets after an error that says the server lost them.
func (s *Store) forget(err error) {
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		s.mu.Lock()
		s.states, s.leases = nil, nil
		s.mu.Unlock()
	}
}

// Get returns a source's state and its revision; a source never polled has the zero State
// and revision 0.
func (s *Store) Get(ctx context.Context, src Source) (State, uint64, error) {
	kv, _, err := s.buckets(ctx)
	if err != nil {
		return State{}, 0, err
	}
	e, err := kv.Get(ctx, src.Key())
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return State{}, 0, nil
	case err != nil:
		s.forget(err)
		return State{}, 0, fmt.Errorf("reading the state of %s: %w", src, err)
	}
	var st State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return State{}, 0, fmt.Errorf("the stored state of %s is damaged (%v): delete key %s of bucket %s to poll it from the beginning", src, err, src.Key(), StateBucket)
	}
	return st, e.Revision(), nil
}

// Put stores a source's state if it is still at revision rev (0: never stored), and
// returns the new revision; ErrConflict if another replica wrote it since.
func (s *Store) Put(ctx context.Context, src Source, st State, rev uint64) (uint64, error) {
	kv, _, err := s.buckets(ctx)
	if err != nil {
		return 0, err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("encoding the state of %s: %w", src, err)
	}
	var next uint64
	if rev == 0 {
		next, err = kv.Create(ctx, src.Key(), b)
	} else {
		next, err = kv.Update(ctx, src.Key(), b, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return 0, fmt.Errorf("storing the state of %s: %w", src, ErrConflict)
	case err != nil:
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, fmt.Errorf("storing the state of %s: %w", src, ErrConflict)
		}
		s.forget(err)
		return 0, fmt.Errorf("storing the state of %s: %w", src, err)
	}
	return next, nil
}

// Request is a request to poll a source now (`syncline flow sync`).
type Request struct {
	// At is when it was asked for: a poll that began at or after it answers it.
	At time.Time `json:"at"`
	// FromStart reads the source from the beginning: the poll that answers the request
	// starts from the empty cursor (every record is read again; those the targets hold
	// already are skipped as unchanged).
	FromStart bool `json:"fromStart,omitempty"`
}

// RequestSync asks the replica that polls src to poll it now.
func (s *Store) RequestSync(ctx context.Context, src Source, r Request) error {
	kv, _, err := s.buckets(ctx)
	if err != nil {
		return err
	}
	r.At = r.At.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding a poll request of %s: %w", src, err)
	}
	if _, err := kv.Put(ctx, "sync."+src.Key(), b); err != nil {
		s.forget(err)
		return fmt.Errorf("asking for a poll of %s: %w", src, err)
	}
	return nil
}

// SyncRequested returns the last request to poll src; the zero Request if none.
func (s *Store) SyncRequested(ctx context.Context, src Source) (Request, error) {
	kv, _, err := s.buckets(ctx)
	if err != nil {
		return Request{}, err
	}
	e, err := kv.Get(ctx, "sync."+src.Key())
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return Request{}, nil
	case err != nil:
		s.forget(err)
		return Request{}, fmt.Errorf("reading the poll requests of %s: %w", src, err)
	}
	var r Request
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Request{}, nil // a damaged request is no request
	}
	return r, nil
}

// Lease is a replica's hold on polling one source.
type Lease struct {
	kv  jetstream.KeyValue
	key string
	rev uint64
}

func leaseKey(src Source) string {
	sum := sha256.Sum256([]byte(src.Key()))
	return fmt.Sprintf("lease.%x", sum[:16])
}

// TryLease takes the lease of src for replica, or returns nil when another replica holds
// it.
func (s *Store) TryLease(ctx context.Context, src Source, replica string) (*Lease, error) {
	_, kv, err := s.buckets(ctx)
	if err != nil {
		return nil, err
	}
	k := leaseKey(src)
	rev, err := kv.Create(ctx, k, []byte(replica))
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return nil, nil
	case err != nil:
		s.forget(err)
		return nil, fmt.Errorf("taking the lease of %s: %w", src, err)
	}
	return &Lease{kv: kv, key: k, rev: rev}, nil
}

// Renew keeps the lease another LeaseTTL; an error says it was lost (it expired and was
// taken, or the server lost it), and the poll must stop.
func (l *Lease) Renew(ctx context.Context, replica string) error {
	rev, err := l.kv.Update(ctx, l.key, []byte(replica), l.rev)
	if err != nil {
		return fmt.Errorf("renewing a poll's lease: %w", err)
	}
	l.rev = rev
	return nil
}

// Release gives the lease up.
func (l *Lease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
}

// Forget removes what the state bucket holds of tenant's sources (cursors, polls,
// requests), for the tenant's erase. A bucket that was never made holds nothing.
func Forget(ctx context.Context, js jetstream.JetStream, tenant string) error {
	st, err := js.Stream(ctx, "KV_"+StateBucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening key-value bucket %s: %w", StateBucket, err)
	}
	for _, subject := range []string{"$KV." + StateBucket + "." + tenant + ".>", "$KV." + StateBucket + ".sync." + tenant + ".>"} {
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			return fmt.Errorf("removing tenant %s's sources from key-value bucket %s: %w", tenant, StateBucket, err)
		}
	}
	return nil
}

// WatchRequests follows the requests to poll now: it calls wake with each source a
// request is made for, until ctx is done. A watch that ends (a NATS server that restarted)
// is made again.
func (s *Store) WatchRequests(ctx context.Context, wake func(Source)) {
	for ctx.Err() == nil {
		kv, _, err := s.buckets(ctx)
		var w jetstream.KeyWatcher
		if err == nil {
			w, err = kv.Watch(ctx, "sync.>", jetstream.UpdatesOnly())
		}
		if err != nil {
			s.forget(err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			parts := strings.Split(strings.TrimPrefix(e.Key(), "sync."), ".")
			if len(parts) == 3 {
				wake(Source{Tenant: parts[0], Endpoint: parts[1], Entity: parts[2]})
			}
		}
		_ = w.Stop()
	}
}
