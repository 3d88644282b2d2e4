package resourcefile

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// readSpec reads a spec from a YAML file as Load would; a missing file is a
// nil spec.
func readSpec(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatal(err)
	}
	var c converter
	v, _ := c.value("", &n).(map[string]any)
	if len(c.problems) > 0 || v == nil {
		t.Fatalf("%s: %v", path, c.problems)
	}
	return v
}

// TestDiffGolden runs each folder of testdata/diff: old.yaml and new.yaml
// (either may be missing: created or deleted) against want.diff.
func TestDiffGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "diff", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			old, new := readSpec(t, filepath.Join(dir, "old.yaml")), readSpec(t, filepath.Join(dir, "new.yaml"))
			got := Diff(old, new)
			checkGolden(t, filepath.Join(dir, "want.diff"), got)
			if got != Diff(old, new) {
				t.Error("Diff is not deterministic")
			}
		})
	}
}

func TestDiffNumbersFromStructpbAndYAML(t *testing.T) {
	// structpb gives float64 where the YAML gave int64; both read the same.
	fromYAML := map[string]any{"defaults": map[string]any{"employee_number": int64(999999)}, "ratio": 2.5}
	fromAPI := map[string]any{"defaults": map[string]any{"employee_number": float64(999999)}, "ratio": 2.5}
	if d := Diff(fromYAML, fromAPI); d != "" {
		t.Errorf("Diff of equal specs = %q, want empty", d)
	}
	want := "+defaults:\n+  employee_number: 999999\n+ratio: 2.5\n"
	if d := Diff(nil, fromAPI); d != want {
		t.Errorf("Diff(nil, spec) = %q, want %q", d, want)
	}
	if d := Diff(nil, nil); d != "" {
		t.Errorf("Diff(nil, nil) = %q, want empty", d)
	}
}

// TestEditScriptIsShortest checks the line diff on random inputs: the
// script turns a into b, and keeps as many lines as the longest common
// subsequence.
func TestEditScriptIsShortest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "c", "d"}
	random := func() []string {
		out := make([]string, r.IntN(12))
		for i := range out {
			out[i] = alphabet[r.IntN(len(alphabet))]
		}
		return out
	}
	for i := 0; i < 2000; i++ {
		a, b := random(), random()
		es := editScript(a, b)
		var gotA, gotB []string
		kept := 0
		for _, e := range es {
			switch e.kind {
			case ' ':
				gotA, gotB = append(gotA, e.line), append(gotB, e.line)
				kept++
			case '-':
				gotA = append(gotA, e.line)
			case '+':
				gotB = append(gotB, e.line)
			}
		}
		if strings.Join(gotA, "") != strings.Join(a, "") || strings.Join(gotB, "") != strings.Join(b, "") {
			t.Fatalf("script %v does not turn %v into %v", es, a, b)
		}
		if want := lcsLen(a, b); kept != want {
			t.Fatalf("script for %v -> %v keeps %d lines, the longest common subsequence has %d", a, b, kept, want)
		}
	}
}

func lcsLen(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}
