package flowconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/connector"
)

// MaxValueSize is the largest entry of the bucket, a compiled flow config
// above all: half of NATS's default max_payload (1 MiB), so that an entry
// fits with its headers on any server that keeps the default. The control
// plane checks a flow against it before it stores the flow, and the bucket
// refuses a larger entry all the same.
const MaxValueSize = 512 << 10

// OpenBucket creates the bucket if needed and returns it.
func OpenBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       Bucket,
		Description:  "Compiled flow configs, written by the control plane, watched by the data plane.",
		History:      5,
		Storage:      jetstream.FileStorage,
		Replicas:     replicas,
		MaxValueSize: MaxValueSize,
	})
	if err != nil {
		return nil, fmt.Errorf("opening key-value bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

type sourceKey struct{ tenant, endpoint, entity string }

// Index is the data plane's live view of the bucket. Lookups are safe from
// any goroutine and never wait for the network.
type Index struct {
	mu       sync.RWMutex
	flows    map[string]*Flow // by tenant + "." + flow
	bySource map[sourceKey][]*Flow
	tenants  map[string]bool
	alerts   map[string]*Alerts                // by tenant; tenants without alerts are absent
	keep     map[string]int                    // retention days by tenant; 0 is the default
	egress   map[string]connector.TenantEgress // by tenant; tenants without their own are absent
	tokens   map[string]Token                  // by hash
	// version counts changes, so that a service can tell cheaply whether
	// the caches it derives from the index need pruning.
	version atomic.Uint64
	// revision is the bucket's last revision the index has applied, and kv
	// the bucket (nil for an index no watcher fills), for CatchUp.
	revision atomic.Uint64
	kv       jetstream.KeyValue
	// caughtUp is when CatchUp last found the index current (unix nanos).
	caughtUp atomic.Int64
}

// catchUpWait bounds how long CatchUp waits for the watch; catchUpFresh is
// how long a CatchUp that found the index current holds for the next call,
// so that a stream of events no flow reads asks the bucket once in a while,
// not once per event.
const (
	catchUpWait  = 2 * time.Second
	catchUpFresh = 250 * time.Millisecond
)

// CatchUp waits until the index has applied every change the bucket held
// when it was called (up to a short bound), and reports whether it had to
// wait. A flow applied a moment before its first event was published is
// then found, instead of the event being refused as read by no flow: the
// watch delivers changes a little after the control plane stores them.
func (x *Index) CatchUp(ctx context.Context) bool {
	if x.kv == nil || time.Now().UnixNano()-x.caughtUp.Load() < int64(catchUpFresh) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	st, err := x.kv.Status(ctx)
	if err != nil {
		return false
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return false
	}
	last := bs.StreamInfo().State.LastSeq
	waited := false
	for x.revision.Load() < last {
		waited = true
		select {
		case <-ctx.Done():
			return waited
		case <-time.After(5 * time.Millisecond):
		}
	}
	x.caughtUp.Store(time.Now().UnixNano())
	return waited
}

// Version changes whenever the index does.
func (x *Index) Version() uint64 { return x.version.Load() }

// Flows returns every flow.
func (x *Index) Flows() []*Flow {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]*Flow, 0, len(x.flows))
	for _, f := range x.flows {
		out = append(out, f)
	}
	return out
}

func newIndex() *Index {
	return &Index{flows: map[string]*Flow{}, bySource: map[sourceKey][]*Flow{}, tenants: map[string]bool{}, alerts: map[string]*Alerts{}, keep: map[string]int{}, egress: map[string]connector.TenantEgress{}, tokens: map[string]Token{}}
}

// Get returns a tenant's flow, or nil.
func (x *Index) Get(tenant, flow string) *Flow {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.flows[tenant+"."+flow]
}

// Match returns the flows that read entity from a tenant's endpoint.
func (x *Index) Match(tenant, endpoint, entity string) []*Flow {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.bySource[sourceKey{tenant, endpoint, entity}]
}

// Errors of Route, for errors.Is.
var (
	ErrUnknownTenant = errors.New("unknown tenant")
	ErrNoFlow        = errors.New("no flow reads it")
)

// Route says whether a change of entity from a tenant's endpoint has
// somewhere to go: nil when a flow reads it, else an error that names what
// the tenant's flows do read, so that a publisher sees its mistake instead
// of an event that goes nowhere.
func (x *Index) Route(tenant, endpoint, entity string) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.bySource[sourceKey{tenant, endpoint, entity}]) > 0 {
		return nil
	}
	if !x.tenants[tenant] {
		return routeError{ErrUnknownTenant, fmt.Sprintf("tenant %q does not exist: create it with `syncline apply`, or check the name", tenant)}
	}
	var reads []string
	for sk := range x.bySource {
		if sk.tenant == tenant {
			reads = append(reads, fmt.Sprintf("%s from %s", sk.entity, sk.endpoint))
		}
	}
	if len(reads) == 0 {
		return routeError{ErrNoFlow, fmt.Sprintf("tenant %q has no flows yet, so its changes would go nowhere: apply a flow whose source is endpoint %q and whose entity is %q first", tenant, endpoint, entity)}
	}
	slices.Sort(reads)
	return routeError{ErrNoFlow, fmt.Sprintf("no flow of tenant %q reads entity %q from endpoint %q, so the change would go nowhere; its flows read %s: publish one of those, or apply a flow for it first",
		tenant, entity, endpoint, strings.Join(reads, ", "))}
}

// routeError is Route's refusal: one of its sentinel errors, said in full.
type routeError struct {
	is  error
	msg string
}

func (e routeError) Error() string        { return e.msg }
func (e routeError) Is(target error) bool { return target == e.is }

// KnowsTenant says whether the tenant exists.
func (x *Index) KnowsTenant(tenant string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.tenants[tenant]
}

// Alerts returns where a tenant's failure alerts go, or nil when the tenant
// has none (or does not exist). The result must not be changed.
func (x *Index) Alerts(tenant string) *Alerts {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.alerts[tenant]
}

// Egress returns a tenant's own egress policy: the zero value when it has
// none (or does not exist). Its slices must not be changed.
func (x *Index) Egress(tenant string) connector.TenantEgress {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.egress[tenant]
}

// Retention returns every tenant's retention, 0 for the default.
func (x *Index) Retention() map[string]time.Duration {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[string]time.Duration, len(x.keep))
	for t, days := range x.keep {
		out[t] = time.Duration(days) * 24 * time.Hour
	}
	return out
}

// LookupToken implements auth.TokenLookup over the tokens the control
// plane publishes, so that every service checks integrator tokens without
// reaching the control plane's store. A revoked token stops working here as
// soon as the bucket's change arrives (milliseconds).
func (x *Index) LookupToken(_ context.Context, hash string) (string, string, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t, ok := x.tokens[hash]
	if !ok {
		return "", "", fmt.Errorf("looking up a token: %w", auth.ErrUnknownToken)
	}
	return t.Tenant, t.Integrator, nil
}

func (x *Index) setToken(hash string, t *Token) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t == nil {
		delete(x.tokens, hash)
	} else {
		x.tokens[hash] = *t
	}
}

func (x *Index) put(f *Flow) {
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.version.Add(1)
	x.removeLocked(f.Tenant + "." + f.Name)
	x.flows[f.Tenant+"."+f.Name] = f
	sk := sourceKey{f.Tenant, f.Source.Name, f.Entity}
	x.bySource[sk] = append(x.bySource[sk], f)
}

func (x *Index) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.version.Add(1)
	x.removeLocked(id)
}

func (x *Index) removeLocked(id string) {
	old := x.flows[id]
	if old == nil {
		return
	}
	delete(x.flows, id)
	sk := sourceKey{old.Tenant, old.Source.Name, old.Entity}
	list := x.bySource[sk]
	kept := make([]*Flow, 0, len(list))
	for _, f := range list {
		if f != old {
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		delete(x.bySource, sk)
	} else {
		x.bySource[sk] = kept
	}
}

// setTenant records a tenant's entry; nil removes the tenant.
func (x *Index) setTenant(t string, entry *Tenant) {
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.version.Add(1)
	if entry == nil {
		delete(x.tenants, t)
		delete(x.alerts, t)
		delete(x.keep, t)
		delete(x.egress, t)
		return
	}
	if entry.Egress != nil {
		x.egress[t] = *entry.Egress
	} else {
		delete(x.egress, t)
	}
	x.tenants[t] = true
	x.keep[t] = entry.RetentionDays
	if entry.Alerts != nil {
		x.alerts[t] = entry.Alerts
	} else {
		delete(x.alerts, t)
	}
}

// Watcher keeps an Index in step with the bucket.
type Watcher struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	index *Index
	w     jetstream.KeyWatcher
	done  chan struct{}
}

// NewWatcher returns a watcher on kv. log may be nil.
func NewWatcher(kv jetstream.KeyValue, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	x := newIndex()
	x.kv = kv
	return &Watcher{kv: kv, log: log, index: x}
}

// Index returns the live index.
func (w *Watcher) Index() *Index { return w.index }

// Start loads the bucket's current content before it returns, so a service
// never handles an event with a half-loaded config, then follows changes in
// the background.
func (w *Watcher) Start(ctx context.Context) error {
	kw, err := w.kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("watching %s: %w", Bucket, err)
	}
	w.w = kw
	for {
		select {
		case e, ok := <-kw.Updates():
			if !ok {
				return errors.New("watching flow configs: watch closed during initial load")
			}
			if e == nil {
				w.done = make(chan struct{})
				go w.follow()
				return nil
			}
			w.apply(e)
		case <-ctx.Done():
			_ = kw.Stop()
			return fmt.Errorf("loading flow configs: %w", ctx.Err())
		}
	}
}

func (w *Watcher) follow() {
	defer close(w.done)
	for e := range w.w.Updates() {
		if e != nil {
			w.apply(e)
		}
	}
}

func (w *Watcher) apply(e jetstream.KeyValueEntry) {
	defer w.index.revision.Store(e.Revision())
	key := e.Key()
	deleted := e.Operation() != jetstream.KeyValuePut
	switch {
	case strings.HasPrefix(key, "tenant."):
		tenant := strings.TrimPrefix(key, "tenant.")
		if deleted {
			w.index.setTenant(tenant, nil)
			return
		}
		var t Tenant
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			// The tenant exists whatever its settings say; its alerts
			// wait for an entry that decodes.
			w.log.Error("ignoring tenant settings", "key", key, "error", err)
		}
		w.index.setTenant(tenant, &t)
	case strings.HasPrefix(key, "token."):
		hash := key[strings.LastIndexByte(key, '.')+1:]
		if deleted {
			w.index.setToken(hash, nil)
			return
		}
		var t Token
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			w.log.Error("ignoring token entry", "key", key, "error", err)
			return
		}
		w.index.setToken(hash, &t)
	case strings.HasPrefix(key, "flow."):
		if deleted {
			w.index.remove(strings.TrimPrefix(key, "flow."))
			w.log.Info("flow removed", "flow", strings.TrimPrefix(key, "flow."))
			return
		}
		f, err := Decode(e.Value())
		if err != nil {
			w.log.Error("ignoring flow config", "key", key, "error", err)
			return
		}
		w.index.put(f)
		w.log.Info("flow loaded", "tenant", f.Tenant, "flow", f.Name, "generation", f.Generation)
	}
}

// Stop ends the watch. The watch's consumer may already be gone (a NATS
// restart removes it); stopping is then already done, which is no error.
func (w *Watcher) Stop(context.Context) error {
	if w.w == nil {
		return nil
	}
	err := w.w.Stop()
	if w.done != nil {
		<-w.done
	}
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, nats.ErrConsumerNotFound) {
		return fmt.Errorf("stopping flow config watch: %w", err)
	}
	return nil
}
