package mapping

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

var selectorSeed = flag.Uint64("selector.seed", 0, "seed of TestSelectorsAgreeWithCEL (0: a new one)")

// TestSelectorsAgreeWithCEL maps random records with random field reads —
// plain (source.a.b), optional (source.?a.?b) and mixed chains, over keys
// that are there or not, holding strings, numbers, booleans, nulls, lists and
// objects — once with selectors and once with CEL alone, and wants the same
// bytes, or the same error, every time.
func TestSelectorsAgreeWithCEL(t *testing.T) {
	seed := *selectorSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -selector.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	keys := []string{"a", "b", "c"}
	var value func(depth int) any
	value = func(depth int) any {
		switch n := rng.IntN(9); {
		case n == 0:
			return nil
		case n == 1:
			return rng.IntN(2) == 0
		case n == 2:
			return rng.IntN(1000) - 500
		case n == 3:
			return float64(rng.IntN(1000)) / 8
		case n == 4:
			return []any{"x", 1}
		case n < 7 || depth > 2:
			return fmt.Sprintf("v%d", rng.IntN(100))
		default:
			m := map[string]any{}
			for _, k := range keys {
				if rng.IntN(3) > 0 {
					m[k] = value(depth + 1)
				}
			}
			return m
		}
	}
	chain := func() string {
		var b strings.Builder
		b.WriteString("source")
		mode := rng.IntN(3) // plain, optional, mixed
		for i := range 1 + rng.IntN(3) {
			optional := mode == 1 || mode == 2 && (i+rng.IntN(2))%2 == 0
			if optional {
				b.WriteString(".?")
			} else {
				b.WriteString(".")
			}
			b.WriteString(keys[rng.IntN(len(keys))])
		}
		return b.String()
	}
	answered := 0
	for c := range 300 {
		spec := Spec{Fields: map[string]string{}}
		for i := range 1 + rng.IntN(4) {
			spec.Fields[fmt.Sprintf("f%d", i)] = chain()
		}
		noSelectors = true
		slow, err := Compile(spec)
		noSelectors = false
		if err != nil {
			t.Fatalf("seed %d case %d: %v", seed, c, err)
		}
		fast, err := Compile(spec)
		if err != nil {
			t.Fatalf("seed %d case %d: %v", seed, c, err)
		}
		for _, f := range fast.fields {
			if f.expr != nil && f.expr.sel != nil {
				answered++
			}
		}
		for range 10 {
			record, _ := value(3).(map[string]any)
			if record == nil {
				record = map[string]any{"a": value(1), "b": value(0)}
			}
			payload, err := json.Marshal(record)
			if err != nil {
				t.Fatal(err)
			}
			want, wantSkip, _, wantErr := slow.ApplyJSON(payload)
			got, gotSkip, _, gotErr := fast.ApplyJSON(payload)
			if string(got) != string(want) || gotSkip != wantSkip || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("seed %d case %d: fields %v on %s:\nselectors %s %v %v\nCEL       %s %v %v", seed, c, spec.Fields, payload, got, gotSkip, gotErr, want, wantSkip, wantErr)
			}
		}
	}
	if answered < 100 {
		t.Errorf("seed %d: only %d fields were selectors: the test hardly compared them", seed, answered)
	}
}
