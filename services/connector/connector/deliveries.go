package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DeliveryBucket is the key-value bucket that remembers each webhook delivery's first
// arrival, for DeliveryTTL.
const DeliveryBucket = "syncline_webhook_deliveries"

// DeliveryTTL is how long a webhook delivery is remembered: longer than senders retry (a day
// or two for most webshops).
const DeliveryTTL = 72 * time.Hour

// deliveries remember when each webhook delivery first arrived. A delivery whose records
// carry no version of their own (no version_field) is versioned by that first arrival,
// whenever it is sent again: a retry that comes after a newer delivery of the same record
// (past the ingest stream's two-minute duplicate window) is then older than it, and never
// overwrites it.
type deliveries struct {
	js       jetstream.JetStream
	replicas int

	mu sync.Mutex
	kv jetstream.KeyValue
}

func (d *deliveries) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kv != nil {
		return d.kv, nil
	}
	kv, err := d.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      DeliveryBucket,
		Description: "Webhook deliveries by sender's delivery id: when each first arrived, for its version on a retry.",
		History:     1,
		TTL:         DeliveryTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    d.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening key-value bucket %s: %w", DeliveryBucket, err)
	}
	d.kv = kv
	return kv, nil
}

// first returns the version of a delivery: when it first arrived, in Unix milliseconds, as
// the ingest API versions a change that has none; now if this is its first arrival.
func (d *deliveries) first(ctx context.Context, tenant, endpoint, entity, id string, now time.Time) (int64, error) {
	kv, err := d.bucket(ctx)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256([]byte(tenant + "\x00" + endpoint + "\x00" + entity + "\x00" + id))
	key := "d." + hex.EncodeToString(sum[:16])
	v := now.UnixMilli()
	_, err = kv.Create(ctx, key, strconv.AppendInt(nil, v, 10))
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		e, err := kv.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("reading when delivery %s first arrived: %w", id, err)
		}
		first, err := strconv.ParseInt(string(e.Value()), 10, 64)
		if err != nil {
			// A damaged entry: the delivery is versioned as new.
			return v, nil
		}
		return first, nil
	default:
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			d.mu.Lock()
			d.kv = nil
			d.mu.Unlock()
		}
		return 0, fmt.Errorf("remembering delivery %s: %w", id, err)
	}
}
