package recipe_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
	"github.com/syncline/syncline/pkg/recipe"
)

var (
	modelSeed  = flag.Uint64("recipe.seed", 0, "seed of TestRulesAgainstModel (0: from the clock)")
	modelCases = flag.Int("recipe.cases", 300, "how many random histories TestRulesAgainstModel runs")
)

// TestRulesAgainstModel runs random histories through the recipe and a Memory target, and
// checks after every step that the target holds what a plain model of the rules says, and
// that each record's outcome is the model's. A history mixes what happens to an integration:
// changes and deletes in the source, records made and removed in the target by hand, ledger
// entries lost, and batches delivered twice. The model keeps the ledger as the dedup stage
// would (Create for a key it does not know as in the target, with the id it learnt).
func TestRulesAgainstModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (go test ./pkg/recipe -run TestRulesAgainstModel -recipe.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	policies := []string{recipe.DuplicateUpdate, recipe.DuplicateSkip, recipe.DuplicateError}
	// "" is a flow without write modes, whose payloads go to the target as they are.
	modes := []connector.WriteMode{"", connector.WriteAlways, connector.WriteCreateOnly, connector.WriteUpdateOnly, connector.WriteIfEmpty}
	for c := range *modelCases {
		var writeModes map[string]connector.WriteMode
		if m := modes[rng.IntN(len(modes))]; m != "" {
			writeModes = map[string]connector.WriteMode{"b": m}
		}
		h := &history{
			t: t, rng: rng, target: connectortest.NewMemory(),
			flow: recipe.Flow{Target: "memory", Entity: "customer", Duplicates: policies[rng.IntN(len(policies))],
				WriteModes: writeModes,
				Caps:       connector.Capabilities{Entity: "customer", FindBy: []string{connector.FieldExternalRef}, Read: true, Create: true, Update: true, Delete: true}},
			want: map[string]map[string]any{}, ledger: map[string]string{},
		}
		for step := range 25 {
			if !h.step() {
				t.Fatalf("case %d (policy %s, b %s), step %d: see above; seed %d", c, h.flow.Duplicates, h.flow.WriteModes["b"], step, seed)
			}
		}
	}
}

// history is one random history: the target, the model of what it holds (by external
// reference) and the ledger (key -> target id of a record it knows is there).
type history struct {
	t      *testing.T
	rng    *rand.Rand
	target *connectortest.Memory
	flow   recipe.Flow
	want   map[string]map[string]any
	ledger map[string]string
	last   []connector.Record
	log    []string
}

var keys = []string{"k0", "k1", "k2"}

func (h *history) pick(vs ...string) string { return vs[h.rng.IntN(len(vs))] }

// step makes one random thing happen and checks the target; false on a finding.
func (h *history) step() bool {
	ctx := context.Background()
	switch n := h.rng.IntN(10); {
	case n < 5:
		h.run(ctx, h.batch())
	case n == 5 && h.last != nil:
		h.log = append(h.log, "the last batch again")
		h.run(ctx, h.last)
	case n == 6:
		key := h.pick(keys...)
		if _, ok := h.want[key]; !ok {
			fields := map[string]any{"a": h.pick("x", "y"), "b": h.pick("", "p")}
			h.log = append(h.log, fmt.Sprintf("by hand: create %s %v", key, fields))
			payload, _ := json.Marshal(fields)
			if res, err := h.target.Write(ctx, "customer", []connector.Write{{Op: connector.WriteCreate, Key: key, Payload: payload}}); err != nil || res[0].Err != nil {
				h.t.Errorf("planting %s: %v %v", key, err, res)
				return false
			}
			h.want[key] = fields
		}
	case n == 7:
		key := h.pick(keys...)
		if _, ok := h.want[key]; ok {
			h.log = append(h.log, "by hand: remove "+key)
			found, _ := h.target.Find(ctx, "customer", connector.FieldExternalRef, []string{key})
			if _, err := h.target.Write(ctx, "customer", []connector.Write{{Op: connector.WriteDelete, Key: key, ID: found[0].ID}}); err != nil {
				h.t.Errorf("removing %s: %v", key, err)
				return false
			}
			delete(h.want, key)
		}
	default:
		key := h.pick(keys...)
		h.log = append(h.log, "the ledger loses "+key)
		delete(h.ledger, key)
	}
	return h.check()
}

// batch makes a batch of source changes as the dedup stage would hand them on: Create for
// a key the ledger does not know as in the target, counting the batch's own earlier
// records of the key.
func (h *history) batch() []connector.Record {
	known := maps.Clone(h.ledger)
	var out []connector.Record
	for range 1 + h.rng.IntN(3) {
		key := h.pick(keys...)
		id, ok := known[key]
		r := connector.Record{Key: key, Op: connector.OpUpsert, Create: !ok, TargetID: id, Version: 1}
		if h.rng.IntN(4) == 0 {
			r.Op, r.Create = connector.OpDelete, false
			delete(known, key)
		} else {
			r.Payload, _ = json.Marshal(map[string]any{"a": h.pick("x", "y"), "b": h.pick("", "p", "q")})
			known[key] = id
		}
		out = append(out, r)
	}
	return out
}

// run runs a batch through the recipe and through the model, and compares the outcomes.
func (h *history) run(ctx context.Context, records []connector.Record) {
	h.last = records
	for _, r := range records {
		h.log = append(h.log, fmt.Sprintf("push %s %s create=%v id=%q %s", r.Op, r.Key, r.Create, r.TargetID, r.Payload))
	}
	got, err := recipe.Run(ctx, h.target, h.flow, records)
	if err != nil {
		h.t.Errorf("Run: %v", err)
		return
	}
	// known: what the batch's earlier records did, as in the recipe.
	batch := map[string]bool{}
	for i, r := range records {
		want := h.apply(r, batch)
		if got[i].Action != want {
			h.t.Errorf("record %d (%s): %s (%s), the model says %s", i, r.Key, got[i].Action, got[i].Reason, want)
		}
		switch got[i].Action {
		case recipe.Created, recipe.Updated, recipe.Skipped:
			h.ledger[r.Key] = got[i].TargetID
		case recipe.Deleted:
			delete(h.ledger, r.Key)
		}
	}
}

// apply is the model of the rules for one record; batch holds the keys that earlier
// records of the batch wrote.
func (h *history) apply(r connector.Record, batch map[string]bool) recipe.Action {
	cur, exists := h.want[r.Key]
	fromBatch := batch[r.Key]
	batch[r.Key] = true
	if r.Op == connector.OpDelete {
		delete(h.want, r.Key)
		return recipe.Deleted
	}
	var fields map[string]any
	_ = json.Unmarshal(r.Payload, &fields)
	mode := h.flow.WriteModes["b"]
	if !exists {
		created := map[string]any{"a": fields["a"]}
		if mode != connector.WriteUpdateOnly {
			created["b"] = fields["b"]
		}
		h.want[r.Key] = created
		return recipe.Created
	}
	// What an update writes of b, and whether it changes anything.
	writeB := mode == "" || mode == connector.WriteAlways || mode == connector.WriteUpdateOnly || mode == connector.WriteIfEmpty && empty(cur["b"])
	changes := cur["a"] != fields["a"] || writeB && !same(cur, "b", fields["b"])
	if r.Create && !fromBatch {
		holds := cur["a"] == fields["a"] && (mode == connector.WriteUpdateOnly || same(cur, "b", fields["b"]) || empty(cur["b"]) && empty(fields["b"]))
		switch {
		case holds && (h.flow.Duplicates != recipe.DuplicateUpdate || !changes):
			return recipe.Created
		case h.flow.Duplicates == recipe.DuplicateSkip:
			return recipe.Skipped
		case h.flow.Duplicates == recipe.DuplicateError:
			return recipe.Failed
		}
	}
	cur["a"] = fields["a"]
	if writeB {
		cur["b"] = fields["b"]
	}
	return recipe.Updated
}

func empty(v any) bool { return v == nil || v == "" }

// same says whether the record's field holds v; a missing field holds nothing, not "".
func same(rec map[string]any, field string, v any) bool {
	cur, ok := rec[field]
	return ok && cur == v
}

// check compares the target with the model: one record per key, with the model's fields.
func (h *history) check() bool {
	ok := true
	for _, key := range keys {
		recs := h.target.Records(key)
		want, exists := h.want[key]
		switch {
		case len(recs) > 1:
			h.t.Errorf("%s: %d records in the target", key, len(recs))
			ok = false
		case exists != (len(recs) == 1):
			h.t.Errorf("%s: in the target %v, the model says %v", key, len(recs) == 1, exists)
			ok = false
		case exists && !maps.Equal(recs[0], want):
			h.t.Errorf("%s: the target holds %v, the model says %v", key, recs[0], want)
			ok = false
		}
	}
	if h.t.Failed() {
		ok = false
	}
	if !ok {
		h.t.Logf("history:\n  %s", slices.Collect(func(yield func(string) bool) {
			for _, l := range h.log {
				if !yield(l) {
					return
				}
			}
		}))
	}
	return ok
}
