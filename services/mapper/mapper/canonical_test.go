package mapper_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/entity"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/ingest"
	"github.com/syncline/syncline/pkg/mapping"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/services/mapper/mapper"
)

// start runs a mapper on a fresh embedded NATS server whose flow bucket
// holds tenant acme and flows, and returns the server's JetStream.
func start(t *testing.T, flows ...*flowconfig.Flow) jetstream.JetStream {
	t.Helper()
	s := natstest.Run(t)
	_, js := natstest.Connect(t, s)
	run(t, js, 1, flows...)
	return js
}

// run runs a mapper with partitions on js, whose flow bucket it makes hold
// tenant acme and flows.
func run(t *testing.T, js jetstream.JetStream, partitions int, flows ...*flowconfig.Flow) {
	t.Helper()
	ctx := context.Background()
	kv, err := flowconfig.OpenBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, flowconfig.TenantKey("acme"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		b, err := flowconfig.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, f.Key(), b); err != nil {
			t.Fatal(err)
		}
	}
	w := flowconfig.NewWatcher(kv, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	cfg := bus.DefaultConfig()
	cfg.Partitions = partitions
	m, err := mapper.New(mapper.Deps{JetStream: js, Flows: w.Index(), Bus: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
}

// messages waits until stream holds n events, alone or in frames, and
// returns them.
func messages(t *testing.T, js jetstream.JetStream, stream string, n int) []bus.Event {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []bus.Event
	read := uint64(0)
	for deadline := time.Now().Add(10 * time.Second); len(out) < n; {
		m, err := st.GetMsg(ctx, read+1)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			if time.Now().After(deadline) {
				t.Fatalf("stream %s holds %d events after 10s, want %d", stream, len(out), n)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("reading message %d of %s: %v", read+1, stream, err)
		}
		read++
		events, err := bus.Unframe(m.Header, m.Data)
		if err != nil {
			t.Fatalf("message %d of %s: %v", read, stream, err)
		}
		out = append(out, events...)
	}
	if len(out) > n {
		t.Fatalf("stream %s holds %d events, want %d", stream, len(out), n)
	}
	if _, err := st.GetMsg(ctx, read+1); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("stream %s holds more than the %d events wanted", stream, n)
	}
	return out
}

// waitIdle waits until the mapper has acknowledged every ingest event, so
// that what it published is all it will publish.
func waitIdle(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if idle(ctx, js) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the mapper left ingest events unacknowledged after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCanonicalFlowRefusesARecordNamingTheField: a flow whose target serves
// its entity canonically dead-letters a mapped record that lacks a
// required field, naming the field, and passes the records that fit; a
// flow of the same records to a target that does not (a table, say) maps
// both.
func TestCanonicalFlowRefusesARecordNamingTheField(t *testing.T) {
	def, ok := mapping.Default("customer")
	if !ok {
		t.Fatal("no default customer mapping")
	}
	flow := func(name string, canonical bool) *flowconfig.Flow {
		return &flowconfig.Flow{Tenant: "acme", Name: name, Integrator: "shop-sync", Generation: 1, Entity: "customer",
			Source: flowconfig.Endpoint{Name: "shop", Type: "nats"}, Target: flowconfig.Endpoint{Name: name, Type: "test"},
			Mapping: def, Duplicates: flowconfig.DuplicateUpdate, Stage: flowconfig.StageActive, Canonical: canonical}
	}
	js := start(t, flow("erp", true), flow("archive", false))

	good := `{"email":"Jane@Doe.example","first_name":"Jane","last_name":"Doe","billing_address":{"address_1":"Friedrichstraße 123a","postcode":"10117","city":"Berlin","country":"de"}}`
	// No e-mail, and an address without its country.
	bad := `{"first_name":"Sam","last_name":"Secretname","billing_address":{"address_1":"Hidden Lane 7","postcode":"99999","city":"Nowhere"}}`
	pub := ingest.NewPublisher(js, nil)
	if _, err := pub.Publish(context.Background(),
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "customer", Key: "c-good", Version: 1, Payload: []byte(good)},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "customer", Key: "c-bad", Version: 1, Payload: []byte(bad)},
	); err != nil {
		t.Fatal(err)
	}

	dead := messages(t, js, bus.StreamDeadLetter, 1)
	out := messages(t, js, bus.StreamFlow, 3)
	waitIdle(t, js)
	messages(t, js, bus.StreamDeadLetter, 1)
	messages(t, js, bus.StreamFlow, 3)

	d := dead[0]
	if got := d.Header.Get(bus.HeaderDeadCode); got != stage.CodeInvalidRecord {
		t.Errorf("dead letter code = %q, want %q", got, stage.CodeInvalidRecord)
	}
	if got := d.Header.Get(bus.HeaderDeadStage); got != stage.Mapper {
		t.Errorf("dead letter stage = %q, want %q", got, stage.Mapper)
	}
	reason := d.Header.Get(bus.HeaderDeadReason)
	for _, want := range []string{
		`flow erp: key "c-bad": not a canonical customer: `,
		"billing_address.country: required but missing",
		"email: required but missing",
		"map it in the flow's mapping",
	} {
		if !strings.Contains(reason, want) {
			t.Errorf("dead letter reason %q\nlacks %q", reason, want)
		}
	}
	for _, secret := range []string{"Secretname", "Hidden Lane", "Nowhere", "99999"} {
		if strings.Contains(reason, secret) {
			t.Errorf("dead letter reason quotes the record's %q: %s", secret, reason)
		}
	}
	// The dead letter carries the event for the refusing flow alone, so a
	// replay once the mapping is mended runs that flow only.
	e, err := envelope.Decode(d.Data)
	if err != nil {
		t.Fatal(err)
	}
	if e.Flow != "erp" || e.SourceKey != "c-bad" {
		t.Errorf("dead letter event: flow %q, key %q; want erp, c-bad", e.Flow, e.SourceKey)
	}

	got := map[string]bool{}
	for _, m := range out {
		e, err := envelope.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		got[e.Flow+"/"+e.SourceKey] = true
		if e.Flow == "erp" {
			if err := entity.Check("customer", e.Payload); err != nil {
				t.Errorf("the canonical flow passed on a record that does not fit: %v", err)
			}
		}
	}
	for _, want := range []string{"erp/c-good", "archive/c-good", "archive/c-bad"} {
		if !got[want] {
			t.Errorf("the flow stream lacks %s; it holds %v", want, got)
		}
	}
}

// TestCanonicalFlowPassesDeletes: a delete carries no record to check.
func TestCanonicalFlowPassesDeletes(t *testing.T) {
	js := start(t, &flowconfig.Flow{Tenant: "acme", Name: "erp", Integrator: "shop-sync", Generation: 1, Entity: "stock",
		Source: flowconfig.Endpoint{Name: "shop"}, Target: flowconfig.Endpoint{Name: "erp"},
		Mapping: mapping.Spec{Fields: map[string]string{"sku": "source.?sku"}}, Duplicates: flowconfig.DuplicateUpdate,
		Stage: flowconfig.StageActive, Canonical: true})
	if _, err := ingest.NewPublisher(js, nil).Publish(context.Background(),
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "stock", Key: "s-1", Version: 2, Delete: true},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "stock", Key: "s-2", Version: 1, Payload: []byte(`{"sku":"A"}`)},
	); err != nil {
		t.Fatal(err)
	}
	out := messages(t, js, bus.StreamFlow, 1)
	dead := messages(t, js, bus.StreamDeadLetter, 1)
	waitIdle(t, js)
	if e, err := envelope.Decode(out[0].Data); err != nil || e.SourceKey != "s-1" {
		t.Errorf("flow stream: %v, %v; want the delete of s-1", e, err)
	}
	if r := dead[0].Header.Get(bus.HeaderDeadReason); !strings.Contains(r, "on_hand: required but missing") {
		t.Errorf("dead letter reason = %q, want on_hand named", r)
	}
}

// idle reports whether every partition's consumer of the mapper exists and
// has acknowledged everything.
func idle(ctx context.Context, js jetstream.JetStream) bool {
	st, err := js.Stream(ctx, bus.StreamIngest)
	if err != nil {
		return false
	}
	n := 0
	infos := st.ListConsumers(ctx)
	for info := range infos.Info() {
		if !strings.HasPrefix(info.Name, "mapper-p") {
			continue
		}
		n++
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return false
		}
	}
	return infos.Err() == nil && n > 0
}
