// Package connectortest holds the conformance suite that every target connector runs, so that
// each one is held to the same contract. It drives the target through the platform's recipe
// (pkg/recipe), as the connector service does, and reads every effect back from the target
// system: upsert by key, batch order, redelivered and replayed batches that leave one record,
// a record the target holds but the ledger does not under each duplicate policy, write modes,
// deletes, per-record refusals, cancellation and concurrent pushes.
package connectortest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/recipe"
)

// Reader reads back what a target stored, so that the suite checks effects in the target
// system instead of trusting the results Write returns.
type Reader interface {
	// Keys returns the external reference of every record stored for entity, in any order.
	Keys(ctx context.Context, entity string) ([]string, error)
	// Fields returns the stored fields of the record whose external reference is key, each
	// rendered as text, and false when there is no such record.
	Fields(ctx context.Context, entity, key string) (map[string]string, bool, error)
}

// Fixture is one fresh, empty target for one subtest, with a way to read it back.
type Fixture struct {
	Target connector.Target
	Reader Reader
	// Entity is the entity the suite writes, and Caps what the target declared for it.
	Entity string
	Caps   connector.Capabilities
	// KeyIsID is the connector spec's KeyIsID.
	KeyIsID bool
	// Fields name two text fields of the entity that the target stores and Reader reads
	// back; the suite writes its values into them.
	Fields [2]string
	// Payload returns a record of the entity that the target accepts, whose Fields hold a
	// and b. key is the record's source key, for targets that need other fields unique.
	Payload func(key, a, b string) json.RawMessage
	// Refused is a payload that the target refuses for any key (a field with no column, a
	// value that breaks a constraint). Such a record must fail alone, the rest of its batch
	// landing.
	Refused json.RawMessage
}

// RunTarget runs the target conformance suite. open is called once per subtest and must
// return a fixture whose target holds no record of the entity. RunTarget closes the target
// at the end of each subtest and fails the subtest if closing fails.
func RunTarget(t *testing.T, open func(t *testing.T) Fixture) {
	t.Helper()
	type step struct {
		records []rec
		policy  string
		modes   map[string]connector.WriteMode
		// plant writes these straight to the target first, as a person or another system
		// would: records the ledger does not know.
		plant []rec
		want  []recipe.Action
		// upserted is what a target that upserts by key (KeyIsID) may report instead of
		// want: it writes without looking first, and learns nothing of what was there.
		upserted []recipe.Action
	}
	tests := []struct {
		name  string
		steps []step
		want  map[string][2]string
	}{
		{
			name: "create then update by key",
			steps: []step{
				{records: []rec{create("c1", "Ada", "London")}, want: []recipe.Action{recipe.Created}},
				{records: []rec{update("c1", "Ada", "Paris")}, want: []recipe.Action{recipe.Updated}},
			},
			want: map[string][2]string{"c1": {"Ada", "Paris"}},
		},
		{
			name: "the later record of a key in one batch wins",
			steps: []step{{
				records: []rec{create("c1", "Ada", "London"), create("c2", "Alan", "Wilmslow"), update("c1", "Ada", "Paris")},
				want:    []recipe.Action{recipe.Created, recipe.Created, recipe.Updated},
			}},
			want: map[string][2]string{"c1": {"Ada", "Paris"}, "c2": {"Alan", "Wilmslow"}},
		},
		{
			// A crash after the write and before the ledger heard of it: the batch comes
			// again as creates, finds its own records and leaves one of each, whatever the
			// duplicate policy.
			name: "a redelivered batch leaves one record of each key",
			steps: []step{
				{records: []rec{create("c1", "Ada", "London"), create("c2", "Alan", "Wilmslow")}, policy: recipe.DuplicateError, want: []recipe.Action{recipe.Created, recipe.Created}},
				{records: []rec{create("c1", "Ada", "London"), create("c2", "Alan", "Wilmslow")}, policy: recipe.DuplicateError, want: []recipe.Action{recipe.Created, recipe.Created}},
			},
			want: map[string][2]string{"c1": {"Ada", "London"}, "c2": {"Alan", "Wilmslow"}},
		},
		{
			name: "an update whose id the ledger lost finds the record",
			steps: []step{
				{records: []rec{create("c1", "Ada", "London")}, want: []recipe.Action{recipe.Created}},
				{records: []rec{lostUpdate("c1", "Ada", "Rome")}, want: []recipe.Action{recipe.Updated}},
			},
			want: map[string][2]string{"c1": {"Ada", "Rome"}},
		},
		{
			name: "a record the target holds and the ledger does not, policy update: overwritten",
			steps: []step{{plant: []rec{create("c1", "Ada", "By hand")}, records: []rec{create("c1", "Ada", "London")},
				policy: recipe.DuplicateUpdate, want: []recipe.Action{recipe.Updated}}},
			want: map[string][2]string{"c1": {"Ada", "London"}},
		},
		{
			name: "a record the target holds and the ledger does not, policy skip: kept",
			steps: []step{{plant: []rec{create("c1", "Ada", "By hand")}, records: []rec{create("c1", "Ada", "London")},
				policy: recipe.DuplicateSkip, want: []recipe.Action{recipe.Skipped}}},
			want: map[string][2]string{"c1": {"Ada", "By hand"}},
		},
		{
			name: "a record the target holds and the ledger does not, policy error: failed and kept",
			steps: []step{{plant: []rec{create("c1", "Ada", "By hand")}, records: []rec{create("c1", "Ada", "London"), create("c2", "Alan", "Wilmslow")},
				policy: recipe.DuplicateError, want: []recipe.Action{recipe.Failed, recipe.Created}}},
			want: map[string][2]string{"c1": {"Ada", "By hand"}, "c2": {"Alan", "Wilmslow"}},
		},
		{
			name: "a record removed from the target behind the flow's back is created again",
			steps: []step{
				{records: []rec{create("c1", "Ada", "London")}, want: []recipe.Action{recipe.Created}},
				{plant: []rec{remove("c1")}},
				{records: []rec{lostUpdate("c1", "Ada", "Rome")}, want: []recipe.Action{recipe.Created}, upserted: []recipe.Action{recipe.Updated}},
			},
			want: map[string][2]string{"c1": {"Ada", "Rome"}},
		},
		{
			name: "delete removes the record and a repeated delete succeeds",
			steps: []step{
				{records: []rec{create("c1", "Ada", "London"), create("c2", "Alan", "Wilmslow")}, want: []recipe.Action{recipe.Created, recipe.Created}},
				{records: []rec{remove("c1")}, want: []recipe.Action{recipe.Deleted}},
				{records: []rec{remove("c1"), remove("never-written")}, want: []recipe.Action{recipe.Deleted, recipe.Deleted}},
			},
			want: map[string][2]string{"c2": {"Alan", "Wilmslow"}},
		},
		{
			name: "delete and create of one key apply in batch order",
			steps: []step{
				{records: []rec{create("c1", "Ada", "London")}, want: []recipe.Action{recipe.Created}},
				{records: []rec{remove("c1"), create("c1", "Ada", "Rome"), create("c2", "Alan", "Wilmslow"), remove("c2")},
					want: []recipe.Action{recipe.Deleted, recipe.Created, recipe.Created, recipe.Deleted}},
			},
			want: map[string][2]string{"c1": {"Ada", "Rome"}},
		},
		{
			name: "create_only: written on create, kept on update",
			steps: []step{
				{records: []rec{create("c1", "Ada", "London")}, modes: modeOfB(connector.WriteCreateOnly), want: []recipe.Action{recipe.Created}},
				{records: []rec{update("c1", "Ada Lovelace", "Paris")}, modes: modeOfB(connector.WriteCreateOnly), want: []recipe.Action{recipe.Updated}},
			},
			want: map[string][2]string{"c1": {"Ada Lovelace", "London"}},
		},
		{
			name: "create_only: kept when an unknown record is overwritten",
			steps: []step{{plant: []rec{create("c1", "Ada", "By hand")}, records: []rec{create("c1", "Ada Lovelace", "London")},
				modes: modeOfB(connector.WriteCreateOnly), want: []recipe.Action{recipe.Updated}}},
			want: map[string][2]string{"c1": {"Ada Lovelace", "By hand"}},
		},
		{
			name: "update_only: kept out of the create, written on update",
			steps: []step{
				{plant: []rec{create("c0", "Grace", "Arlington")}, records: []rec{create("c1", "Ada", "London"), create("c0", "Grace", "New York")},
					modes: modeOfB(connector.WriteUpdateOnly), want: []recipe.Action{recipe.Created, recipe.Updated}},
				{records: []rec{update("c1", "Ada", "Paris")}, modes: modeOfB(connector.WriteUpdateOnly), want: []recipe.Action{recipe.Updated}},
			},
			want: map[string][2]string{"c0": {"Grace", "New York"}, "c1": {"Ada", "Paris"}},
		},
		{
			name: "a refused record fails alone",
			steps: []step{{
				records: []rec{create("c1", "Ada", "London"), {key: "c2", create: true, refused: true}, create("c3", "Grace", "Arlington")},
				want:    []recipe.Action{recipe.Created, recipe.Failed, recipe.Created},
			}},
			want: map[string][2]string{"c1": {"Ada", "London"}, "c3": {"Grace", "Arlington"}},
		},
		{
			name:  "an empty batch does nothing",
			steps: []step{{}},
			want:  map[string][2]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openFixture(t, open)
			ctx := context.Background()
			ids := map[string]string{}
			for i, s := range tt.steps {
				if len(s.plant) > 0 {
					f.write(t, s.plant)
				}
				flow := f.flow(s.policy, s.modes)
				records := f.records(t, s.records, ids)
				outcomes, err := recipe.Run(ctx, f.Target, flow, records)
				if err != nil {
					t.Fatalf("step %d: the push failed as a whole: %v", i, err)
				}
				if len(outcomes) != len(records) {
					t.Fatalf("step %d: %d outcomes for %d records", i, len(outcomes), len(records))
				}
				for j, o := range outcomes {
					key := records[j].Key
					if o.Action != s.want[j] && !(f.KeyIsID && s.upserted != nil && o.Action == s.upserted[j]) {
						t.Errorf("step %d record %d (%s): %s (%s), want %s", i, j, key, o.Action, o.Reason, s.want[j])
					}
					switch o.Action {
					case recipe.Failed:
						if !strings.Contains(o.Reason, key) {
							t.Errorf("step %d record %d: reason %q does not name the record key %s", i, j, o.Reason, key)
						}
					case recipe.Created, recipe.Updated, recipe.Skipped:
						if o.TargetID == "" {
							t.Errorf("step %d record %d (%s): %s with no target id", i, j, key, o.Action)
						}
						ids[key] = o.TargetID
					case recipe.Deleted:
						delete(ids, key)
					}
				}
			}
			f.assertStored(t, tt.want)
		})
	}

	t.Run("if_empty writes over an empty value only", func(t *testing.T) {
		f := openFixture(t, open)
		flow := f.flow(recipe.DuplicateUpdate, modeOfB(connector.WriteIfEmpty))
		ids := map[string]string{}
		run := func(records ...rec) []recipe.Outcome {
			t.Helper()
			out, err := recipe.Run(context.Background(), f.Target, flow, f.records(t, records, ids))
			if err != nil {
				t.Fatalf("the push failed as a whole: %v", err)
			}
			for i, o := range out {
				ids[records[i].key] = o.TargetID
			}
			return out
		}
		out := run(create("c1", "Ada", ""), create("c2", "Alan", "Wilmslow"))
		if !f.Caps.Read {
			// The recipe cannot know the current value: it refuses, saying why, and the
			// control plane refuses such a flow before it runs.
			for i, o := range out {
				if o.Action != recipe.Failed || !strings.Contains(o.Reason, "if_empty") {
					t.Errorf("record %d: %s (%s) from a target that cannot read, want a refusal naming if_empty", i, o.Action, o.Reason)
				}
			}
			return
		}
		run(update("c1", "Ada", "London"), update("c2", "Alan", "Manchester"))
		f.assertStored(t, map[string][2]string{"c1": {"Ada", "London"}, "c2": {"Alan", "Wilmslow"}})
	})

	t.Run("a plan reads the target and writes nothing", func(t *testing.T) {
		f := openFixture(t, open)
		ids := map[string]string{}
		flow := f.flow(recipe.DuplicateUpdate, nil)
		if _, err := recipe.Run(context.Background(), f.Target, flow, f.records(t, []rec{create("c1", "Ada", "London")}, ids)); err != nil {
			t.Fatal(err)
		}
		steps, err := recipe.Plan(context.Background(), f.Target, flow, f.records(t, []rec{create("c1", "Ada", "Paris"), create("c2", "Alan", "Wilmslow")}, ids))
		if err != nil {
			t.Fatal(err)
		}
		if steps[0].Action != recipe.Updated || steps[1].Action != recipe.Created {
			t.Errorf("planned %s and %s, want updated and created", steps[0].Action, steps[1].Action)
		}
		if d, ok := steps[0].Diff[f.Fields[1]]; f.Caps.Read && (!ok || !strings.Contains(string(d[0]), "London") || !strings.Contains(string(d[1]), "Paris")) {
			t.Errorf("the plan's diff is %v, want %s London -> Paris", steps[0].Diff, f.Fields[1])
		}
		f.assertStored(t, map[string][2]string{"c1": {"Ada", "London"}})
	})

	t.Run("a cancelled context fails the push", func(t *testing.T) {
		f := openFixture(t, open)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		out, err := recipe.Run(ctx, f.Target, f.flow("", nil), f.records(t, []rec{create("c1", "Ada", "London")}, nil))
		if err == nil {
			t.Fatalf("a push with a cancelled context = %v, nil error; want an error so the batch is retried", out)
		}
		f.assertStored(t, map[string][2]string{})
	})

	t.Run("concurrent pushes of different keys all land", func(t *testing.T) {
		f := openFixture(t, open)
		const workers, batches, perBatch = 4, 3, 4
		want := map[string][2]string{}
		work := make([][][]connector.Record, workers)
		for w := range workers {
			for b := range batches {
				var records []rec
				for r := range perBatch {
					key := fmt.Sprintf("w%d-b%d-r%d", w, b, r)
					want[key] = [2]string{key, "Delft"}
					records = append(records, create(key, key, "Delft"))
				}
				work[w] = append(work[w], f.records(t, records, nil))
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, workers*batches*perBatch)
		flow := f.flow("", nil)
		for w, jobs := range work {
			wg.Go(func() {
				for b, records := range jobs {
					out, err := recipe.Run(context.Background(), f.Target, flow, records)
					if err != nil {
						errs <- fmt.Errorf("worker %d batch %d: %w", w, b, err)
						return
					}
					for i, o := range out {
						if o.Action != recipe.Created {
							errs <- fmt.Errorf("worker %d batch %d record %d: %s (%s)", w, b, i, o.Action, o.Reason)
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		f.assertStored(t, want)
	})
}

// rec is a record of the suite, before the fixture gives it its payload.
type rec struct {
	key    string
	delete bool
	// create says the ledger has never seen the key; lost that it has, but not its id.
	create, lost bool
	a, b         string
	refused      bool
}

func create(key, a, b string) rec     { return rec{key: key, create: true, a: a, b: b} }
func update(key, a, b string) rec     { return rec{key: key, a: a, b: b} }
func lostUpdate(key, a, b string) rec { return rec{key: key, lost: true, a: a, b: b} }
func remove(key string) rec           { return rec{key: key, delete: true} }

func modeOfB(m connector.WriteMode) map[string]connector.WriteMode {
	return map[string]connector.WriteMode{"\x00b": m}
}

// flow returns the recipe's view of a flow over the fixture's target; modes name the
// second field "\x00b", which this turns into the fixture's name for it.
func (f Fixture) flow(policy string, modes map[string]connector.WriteMode) recipe.Flow {
	if policy == "" {
		policy = recipe.DuplicateUpdate
	}
	var named map[string]connector.WriteMode
	if m, ok := modes["\x00b"]; ok {
		named = map[string]connector.WriteMode{f.Fields[1]: m}
	}
	return recipe.Flow{Target: "conformance", Entity: f.Entity, Caps: f.Caps, Duplicates: policy, WriteModes: named, KeyIsID: f.KeyIsID}
}

// records turns the suite's records into the pipeline's, with the target ids the ledger
// would know (ids, by key).
func (f Fixture) records(t *testing.T, rs []rec, ids map[string]string) []connector.Record {
	t.Helper()
	out := make([]connector.Record, len(rs))
	for i, r := range rs {
		c := connector.Record{Key: r.key, Op: connector.OpUpsert, Create: r.create, Version: 1}
		if !r.create && !r.lost {
			c.TargetID = ids[r.key]
		}
		switch {
		case r.delete:
			c.Op, c.Create = connector.OpDelete, false
			c.TargetID = ids[r.key]
		case r.refused:
			c.Payload = f.Refused
		default:
			c.Payload = f.Payload(r.key, r.a, r.b)
		}
		out[i] = c
	}
	return out
}

// write writes records straight to the target, bypassing the recipe and the ledger.
func (f Fixture) write(t *testing.T, rs []rec) {
	t.Helper()
	ctx := context.Background()
	for _, r := range rs {
		w := connector.Write{Op: connector.WriteCreate, Key: r.key, Version: 1, Payload: f.Payload(r.key, r.a, r.b)}
		if r.delete {
			found, err := f.Target.Find(ctx, f.Entity, connector.FieldExternalRef, []string{r.key})
			if err != nil || len(found) != 1 {
				t.Fatalf("finding %s to remove it: %v (%d found)", r.key, err, len(found))
			}
			w = connector.Write{Op: connector.WriteDelete, Key: r.key, ID: found[0].ID, Version: 1}
		}
		res, err := f.Target.Write(ctx, f.Entity, []connector.Write{w})
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("writing %s straight to the target: %v %v", r.key, err, res)
		}
	}
}

func openFixture(t *testing.T, open func(t *testing.T) Fixture) Fixture {
	t.Helper()
	f := open(t)
	if f.Target == nil || f.Reader == nil || len(f.Refused) == 0 || f.Payload == nil || f.Entity == "" || f.Fields[0] == "" || f.Fields[1] == "" {
		t.Fatal("the fixture needs a Target, a Reader, an Entity, two Fields, a Payload and a Refused payload")
	}
	t.Cleanup(func() {
		if err := f.Target.Close(); err != nil {
			t.Errorf("closing the target: %v", err)
		}
	})
	return f
}

// assertStored checks that the target holds exactly the records of want, by external
// reference, with their two fields.
func (f Fixture) assertStored(t *testing.T, want map[string][2]string) {
	t.Helper()
	ctx := context.Background()
	keys, err := f.Reader.Keys(ctx, f.Entity)
	if err != nil {
		t.Fatalf("reading back the keys: %v", err)
	}
	slices.Sort(keys)
	wantKeys := make([]string, 0, len(want))
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("stored keys = %v, want %v", keys, wantKeys)
	}
	for key, w := range want {
		fields, ok, err := f.Reader.Fields(ctx, f.Entity, key)
		if err != nil {
			t.Fatalf("reading back %s: %v", key, err)
		}
		if !ok {
			t.Fatalf("%s is listed but cannot be read", key)
		}
		a, b := f.Fields[0], f.Fields[1]
		if fields[a] != w[0] || fields[b] != w[1] {
			t.Errorf("%s stored %s=%q %s=%q, want %q and %q", key, a, fields[a], b, fields[b], w[0], w[1])
		}
	}
}
