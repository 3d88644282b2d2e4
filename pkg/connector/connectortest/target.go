// Package connectortest holds the conformance suite that every target connector runs, so that
// each one is held to the same contract: upsert by key, batch order, idempotent retries,
// deletes, per-record errors and cancellation.
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
)

// Reader reads back what a target stored, so that the suite checks effects in the target
// system instead of trusting the results Push returns.
type Reader interface {
	// Keys returns the key of every record stored for entity, in any order.
	Keys(ctx context.Context, entity string) ([]string, error)
	// Fields returns the stored fields of the record under key, each rendered as text, and
	// false when there is no such record.
	Fields(ctx context.Context, entity, key string) (map[string]string, bool, error)
}

// Fixture is one fresh, empty target for one subtest, with a way to read it back.
type Fixture struct {
	Target connector.Target
	Reader Reader
	// Refused is an upsert payload that the target refuses permanently for any key (a field
	// with no column, a value that breaks a constraint). The suite checks that such a record
	// fails alone and the rest of its batch lands.
	Refused json.RawMessage
}

// entity is the entity type of every record the suite pushes.
const entity = "customer"

// RunTarget runs the target conformance suite. open is called once per subtest and must
// return a target that is empty and that accepts records of entity "customer" whose payloads
// hold the text fields "name" and "city". RunTarget closes the target at the end of each
// subtest and fails the subtest if closing fails.
func RunTarget(t *testing.T, open func(t *testing.T) Fixture) {
	t.Helper()
	upsert := upsertFunc(t)
	type push struct {
		records []connector.Record
		// refused are the indexes of records whose payload is replaced by Fixture.Refused;
		// they must fail alone, and every other record must succeed.
		refused []int
	}
	tests := []struct {
		name   string
		pushes []push
		want   map[string]customer
	}{
		{
			name: "upsert creates then updates by key",
			pushes: []push{
				{records: []connector.Record{upsert("c1", 1, true, customer{"Ada", "London"})}},
				{records: []connector.Record{upsert("c1", 2, false, customer{"Ada", "Paris"})}},
			},
			want: map[string]customer{"c1": {"Ada", "Paris"}},
		},
		{
			// Equal versions, so that batch order alone decides, also in targets that
			// compare versions.
			name: "the later record of a key in one batch wins",
			pushes: []push{{records: []connector.Record{
				upsert("c1", 1, true, customer{"Ada", "London"}),
				upsert("c2", 1, true, customer{"Alan", "Wilmslow"}),
				upsert("c1", 1, false, customer{"Ada", "Paris"}),
			}}},
			want: map[string]customer{"c1": {"Ada", "Paris"}, "c2": {"Alan", "Wilmslow"}},
		},
		{
			name: "re-pushing a batch is idempotent",
			pushes: []push{
				{records: []connector.Record{upsert("c1", 1, true, customer{"Ada", "London"}), upsert("c2", 1, true, customer{"Alan", "Wilmslow"})}},
				{records: []connector.Record{upsert("c1", 1, true, customer{"Ada", "London"}), upsert("c2", 1, true, customer{"Alan", "Wilmslow"})}},
			},
			want: map[string]customer{"c1": {"Ada", "London"}, "c2": {"Alan", "Wilmslow"}},
		},
		{
			name: "delete removes the record and a repeated delete succeeds",
			pushes: []push{
				{records: []connector.Record{upsert("c1", 1, true, customer{"Ada", "London"}), upsert("c2", 1, true, customer{"Alan", "Wilmslow"})}},
				{records: []connector.Record{remove("c1", 2)}},
				{records: []connector.Record{remove("c1", 2), remove("never-written", 1)}},
			},
			want: map[string]customer{"c2": {"Alan", "Wilmslow"}},
		},
		{
			name: "delete and upsert of one key apply in batch order",
			pushes: []push{
				{records: []connector.Record{upsert("c1", 1, true, customer{"Ada", "London"})}},
				{records: []connector.Record{
					remove("c1", 2),
					upsert("c1", 3, true, customer{"Ada", "Rome"}),
					upsert("c2", 1, true, customer{"Alan", "Wilmslow"}),
					remove("c2", 2),
				}},
			},
			want: map[string]customer{"c1": {"Ada", "Rome"}},
		},
		{
			name: "a refused record fails alone",
			pushes: []push{{
				records: []connector.Record{
					upsert("c1", 1, true, customer{"Ada", "London"}),
					upsert("c2", 1, true, customer{}),
					upsert("c3", 1, true, customer{"Grace", "Arlington"}),
				},
				refused: []int{1},
			}},
			want: map[string]customer{"c1": {"Ada", "London"}, "c3": {"Grace", "Arlington"}},
		},
		{
			name:   "an empty batch does nothing",
			pushes: []push{{records: nil}},
			want:   map[string]customer{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openFixture(t, open)
			ctx := context.Background()
			targetIDs := map[string]string{}
			for i, p := range tt.pushes {
				records := slices.Clone(p.records)
				for _, r := range p.refused {
					records[r].Payload = f.Refused
				}
				results, err := f.Target.Push(ctx, entity, records)
				if err != nil {
					t.Fatalf("push %d: Push failed the whole batch: %v", i, err)
				}
				if len(results) != len(records) {
					t.Fatalf("push %d: %d results for %d records", i, len(results), len(records))
				}
				for j, res := range results {
					key := records[j].Key
					if slices.Contains(p.refused, j) {
						if res.Err == nil {
							t.Errorf("push %d record %d (%s): refused payload succeeded, want a per-record error", i, j, key)
						} else if !strings.Contains(res.Err.Error(), key) {
							t.Errorf("push %d record %d: error %q does not name the record key %s", i, j, res.Err, key)
						}
						continue
					}
					if res.Err != nil {
						t.Errorf("push %d record %d (%s): %v", i, j, key, res.Err)
						continue
					}
					if records[j].Op == connector.OpDelete {
						continue
					}
					if res.TargetID == "" {
						t.Errorf("push %d record %d (%s): empty TargetID", i, j, key)
					}
					if prev, ok := targetIDs[key]; ok && prev != res.TargetID {
						t.Errorf("push %d record %d (%s): TargetID %q, earlier %q for the same key", i, j, key, res.TargetID, prev)
					}
					targetIDs[key] = res.TargetID
				}
			}
			assertStored(t, f.Reader, tt.want)
		})
	}

	t.Run("a cancelled context fails the push", func(t *testing.T) {
		f := openFixture(t, open)
		upsert := upsertFunc(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		results, err := f.Target.Push(ctx, entity, []connector.Record{upsert("c1", 1, true, customer{"Ada", "London"})})
		if err == nil {
			t.Fatalf("Push with a cancelled context = %v, nil error; want an error so the batch is retried", results)
		}
		assertStored(t, f.Reader, map[string]customer{})
	})

	t.Run("concurrent pushes of different keys all land", func(t *testing.T) {
		f := openFixture(t, open)
		upsert := upsertFunc(t)
		const workers, batches, perBatch = 4, 5, 5
		want := map[string]customer{}
		work := make([][][]connector.Record, workers)
		for w := range workers {
			for b := range batches {
				var records []connector.Record
				for r := range perBatch {
					key := fmt.Sprintf("w%d-b%d-r%d", w, b, r)
					want[key] = customer{Name: key, City: "Delft"}
					records = append(records, upsert(key, 1, true, want[key]))
				}
				work[w] = append(work[w], records)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, workers*batches*perBatch)
		for w, jobs := range work {
			wg.Go(func() {
				for b, records := range jobs {
					results, err := f.Target.Push(context.Background(), entity, records)
					if err != nil {
						errs <- fmt.Errorf("worker %d batch %d: %w", w, b, err)
						return
					}
					for i, res := range results {
						if res.Err != nil {
							errs <- fmt.Errorf("worker %d batch %d record %d: %w", w, b, i, res.Err)
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
		assertStored(t, f.Reader, want)
	})
}

type customer struct {
	Name string `json:"name"`
	City string `json:"city"`
}

// upsertFunc returns the constructor of upsert records, bound to the test that reports a
// payload that cannot be encoded.
func upsertFunc(t *testing.T) func(key string, version int64, create bool, c customer) connector.Record {
	return func(key string, version int64, create bool, c customer) connector.Record {
		t.Helper()
		payload, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("encoding the payload of %s: %v", key, err)
		}
		return connector.Record{Key: key, Op: connector.OpUpsert, Create: create, Version: version, Payload: payload}
	}
}

func remove(key string, version int64) connector.Record {
	return connector.Record{Key: key, Op: connector.OpDelete, Version: version}
}

func openFixture(t *testing.T, open func(t *testing.T) Fixture) Fixture {
	t.Helper()
	f := open(t)
	if f.Target == nil || f.Reader == nil || len(f.Refused) == 0 {
		t.Fatal("the fixture needs a Target, a Reader and a Refused payload")
	}
	t.Cleanup(func() {
		if err := f.Target.Close(); err != nil {
			t.Errorf("closing the target: %v", err)
		}
	})
	return f
}

func assertStored(t *testing.T, r Reader, want map[string]customer) {
	t.Helper()
	ctx := context.Background()
	keys, err := r.Keys(ctx, entity)
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
	for key, c := range want {
		fields, ok, err := r.Fields(ctx, entity, key)
		if err != nil {
			t.Fatalf("reading back %s: %v", key, err)
		}
		if !ok {
			t.Fatalf("%s is listed but cannot be read", key)
		}
		if fields["name"] != c.Name || fields["city"] != c.City {
			t.Errorf("%s stored name=%q city=%q, want name=%q city=%q", key, fields["name"], fields["city"], c.Name, c.City)
		}
	}
}
