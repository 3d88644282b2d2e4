// Package flowstate tells where a user looks what the data plane is doing
// with each flow: whether its events flow, wait for its integrator, or wait
// for its target, and how many wait.
//
// Two sources make a flow's state. The events that wait are counted in the
// hold stream itself (hold.<tenant>.<flow> while the integrator is
// inactive, hold.<tenant>.<flow>.<partition> while the target is down), so
// the count is never out of step with what waits. What only the connector
// knows of a paused flow — the target's last error, since when, how many
// failures — it writes to the syncline_flow_state key-value bucket, one key
// per flow, and deletes when the target works again.
package flowstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
)

// Bucket is the key-value bucket of paused flows.
const Bucket = "syncline_flow_state"

// The states of a flow.
const (
	Active  = "active"
	Held    = "held"
	Paused  = "paused"
	Stopped = "stopped"
)

// Pause is what the connector tells of a paused flow.
type Pause struct {
	LastError string    `json:"lastError"`
	Since     time.Time `json:"since"`
	Failures  int       `json:"failures"`
}

// key is a flow's key in the bucket: tenant and flow names are subject
// tokens, so the pair is a valid key.
func key(tenant, flow string) string { return tenant + "." + flow }

// Writer keeps the bucket for the connector. It opens the bucket when it
// first writes, and again when the bucket is gone (a NATS server that lost
// it), so a state write never depends on when the server came up.
type Writer struct {
	js       jetstream.JetStream
	replicas int

	mu sync.Mutex
	kv jetstream.KeyValue
}

// NewWriter returns a writer of the bucket on js, created with replicas.
func NewWriter(js jetstream.JetStream, replicas int) *Writer {
	return &Writer{js: js, replicas: replicas}
}

// Paused records that tenant's flow is paused, as p says.
func (w *Writer) Paused(ctx context.Context, tenant, flow string, p Pause) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding the pause of flow %s: %w", flow, err)
	}
	return w.do(ctx, func(kv jetstream.KeyValue) error {
		_, err := kv.Put(ctx, key(tenant, flow), data)
		return err
	})
}

// Resumed records that tenant's flow is no longer paused.
func (w *Writer) Resumed(ctx context.Context, tenant, flow string) error {
	return w.do(ctx, func(kv jetstream.KeyValue) error {
		err := kv.Purge(ctx, key(tenant, flow))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	})
}

func (w *Writer) do(ctx context.Context, op func(jetstream.KeyValue) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if w.kv == nil {
			kv, err := w.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:      Bucket,
				Description: "Paused flows: the target's last error, since when, how many failures; written by the connector, read by the control plane.",
				Storage:     jetstream.FileStorage,
				Replicas:    w.replicas,
			})
			if err != nil {
				return fmt.Errorf("opening key-value bucket %s: %w", Bucket, err)
			}
			w.kv = kv
		}
		err := op(w.kv)
		if attempt == 0 && (errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse)) {
			w.kv = nil
			continue
		}
		if err != nil {
			return fmt.Errorf("writing key-value bucket %s: %w", Bucket, err)
		}
		return nil
	}
}

// Forget removes what the bucket holds of tenant's flows, for the tenant's
// erase. A bucket that was never made holds nothing.
func Forget(ctx context.Context, js jetstream.JetStream, tenant string) error {
	// A bucket is the stream KV_<bucket>, its keys the subjects
	// $KV.<bucket>.<key>: one purge removes every key of the tenant.
	st, err := js.Stream(ctx, "KV_"+Bucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening key-value bucket %s: %w", Bucket, err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV."+Bucket+"."+tenant+".>")); err != nil {
		return fmt.Errorf("removing tenant %s's flows from key-value bucket %s: %w", tenant, Bucket, err)
	}
	return nil
}

// Flow names a flow whose state is asked for, with what the control plane
// knows of it: whether its integrator is inactive or deleted.
type Flow struct {
	Tenant, Name string
	// IntegratorStage is the stage of the flow's integrator: "active",
	// "inactive" or "deleted".
	IntegratorStage string
}

// State is a flow's state.
type State struct {
	// State is Active, Held, Paused or Stopped.
	State string
	// Waiting counts the flow's events in the hold stream.
	Waiting int64
	// Pause is the connector's word on a paused flow; nil when it has not
	// told (the first seconds of a pause).
	Pause *Pause
}

// Read returns the state of each of flows, in order. tenant bounds the hold
// stream's subjects read ("" reads every tenant's). A missing hold stream or
// bucket (a data plane that never ran) reads as nothing waiting.
func Read(ctx context.Context, js jetstream.JetStream, tenant string, flows []Flow) ([]State, error) {
	held, paused, err := waiting(ctx, js, tenant)
	if err != nil {
		return nil, err
	}
	var kv jetstream.KeyValue
	out := make([]State, len(flows))
	for i, f := range flows {
		k := key(f.Tenant, f.Name)
		st := State{State: Active, Waiting: held[k] + paused[k]}
		switch {
		case f.IntegratorStage == "deleted":
			st.State = Stopped
		case paused[k] > 0:
			st.State = Paused
			if kv == nil {
				if kv, err = js.KeyValue(ctx, Bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
					return nil, fmt.Errorf("opening key-value bucket %s: %w", Bucket, err)
				}
			}
			if kv != nil {
				if st.Pause, err = pauseOf(ctx, kv, k); err != nil {
					return nil, err
				}
			}
		case f.IntegratorStage == "inactive" || held[k] > 0:
			st.State = Held
		}
		out[i] = st
	}
	return out, nil
}

func pauseOf(ctx context.Context, kv jetstream.KeyValue, k string) (*Pause, error) {
	e, err := kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pause of flow %s: %w", k, err)
	}
	p := &Pause{}
	if err := json.Unmarshal(e.Value(), p); err != nil {
		return nil, fmt.Errorf("reading the pause of flow %s: %w", k, err)
	}
	return p, nil
}

// waiting counts the held events per flow key (tenant.flow): held by the
// mapper (integrator inactive) and paused by the connector (target down).
func waiting(ctx context.Context, js jetstream.JetStream, tenant string) (held, paused map[string]int64, err error) {
	held, paused = map[string]int64{}, map[string]int64{}
	st, err := js.Stream(ctx, bus.StreamHold)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return held, paused, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening stream %s: %w", bus.StreamHold, err)
	}
	filter := "hold.>"
	if tenant != "" {
		filter = "hold." + tenant + ".>"
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, nil, fmt.Errorf("counting held events: %w", err)
	}
	for subject, n := range info.State.Subjects {
		// hold.<tenant>.<flow>.mapper.<partition> (or, from earlier
		// versions, hold.<tenant>.<flow>) is the mapper's;
		// hold.<tenant>.<flow>.<partition> the connector's.
		parts := strings.Split(subject, ".")
		switch len(parts) {
		case 3, 5:
			held[parts[1]+"."+parts[2]] += int64(n)
		case 4:
			paused[parts[1]+"."+parts[2]] += int64(n)
		}
	}
	return held, paused, nil
}
