package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// LockBucket is the key-value bucket of named locks.
const LockBucket = "syncline_locks"

// LockTTL is how long a lock outlives a holder that died holding it. A holder works under a
// push's timeout, which is shorter, so a lock is never taken from a holder that still works.
const LockTTL = 30 * time.Second

// Locks are named locks shared by every process on one NATS server or cluster: the
// connector's replicas take one around finding and making a record that two of them could
// otherwise both make (two orders of one new customer, pushed from two partitions at once).
// A lock is a key created only if absent; it is released by deleting it, or expires LockTTL
// after it was taken. Locks live in memory: a restarted server has lost them, as it has lost
// the processes that held them.
type Locks struct {
	js       jetstream.JetStream
	replicas int
	owner    string

	mu sync.Mutex
	kv jetstream.KeyValue
}

// NewLocks returns the locks of js; the bucket is made with replicas on first use.
func NewLocks(js jetstream.JetStream, replicas int) *Locks {
	return &Locks{js: js, replicas: replicas, owner: uuid.NewString()}
}

// Lock takes the lock name, waiting for it until ctx is done, and returns the function that
// releases it. Names are any text; they are hashed into keys.
func (l *Locks) Lock(ctx context.Context, name string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(name))
	key := "lock." + hex.EncodeToString(sum[:16])
	wait := 5 * time.Millisecond
	for {
		kv, err := l.bucket(ctx)
		if err != nil {
			return nil, err
		}
		rev, err := kv.Create(ctx, key, []byte(l.owner))
		switch {
		case err == nil:
			return func() {
				// Released with a context of its own: a push that ran out of time
				// still lets its locks go.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				// A lock that expired and was taken by another is theirs now.
				_ = kv.Delete(ctx, key, jetstream.LastRevision(rev))
			}, nil
		case errors.Is(err, jetstream.ErrKeyExists):
		case errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse):
			// A restarted server lost the bucket: make it again.
			l.mu.Lock()
			l.kv = nil
			l.mu.Unlock()
		default:
			return nil, fmt.Errorf("taking lock %q: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %q, which another process holds: %w", name, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
}

func (l *Locks) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kv != nil {
		return l.kv, nil
	}
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LockBucket,
		Description: "Named locks among processes: a key is a lock held, deleted when released, expired when its holder died.",
		History:     1,
		TTL:         LockTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    l.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening key-value bucket %s: %w", LockBucket, err)
	}
	l.kv = kv
	return kv, nil
}
