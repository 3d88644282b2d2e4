package mapping

import (
	"encoding/json"
	"strings"
	"testing"
)

// nineReplaces makes every "a" of source.x ten, nine times over: ten billion characters from
// a field of one.
var nineReplaces = "source.x" + strings.Repeat(`.replace("a", "aaaaaaaaaa")`, 9)

func TestCompileRefusesExpressionsOverTheEstimatedCost(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		path string
	}{
		{"nine replaces", Spec{Fields: map[string]string{"x": nineReplaces}}, "fields.x"},
		{"replace by a field", Spec{Fields: map[string]string{"x": "source.a.replace('', source.b)"}}, "fields.x"},
		{"in the filter", Spec{Fields: map[string]string{"a": "1"}, Filter: "size(" + nineReplaces + ") > 0"}, "filter"},
		{"in a loop's body", Spec{Fields: map[string]string{"x": "source.lines.map(l, " + nineReplaces + ")"}}, "fields.x"},
		{
			"in a check",
			Spec{Fields: map[string]string{"x": "source.x"}, Validations: []Rule{{Field: "x", Check: "value.replace('', value).replace('', value) != ''"}}},
			"validations[0].check",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.spec)
			if err == nil {
				t.Fatal("Compile accepted the mapping")
			}
			errs := compileErrors(t, err)
			if len(errs) != 1 || errs[0].Path != tt.path {
				t.Fatalf("Compile errors = %v, want one at %s", err, tt.path)
			}
			msg := errs[0].Message
			if !strings.Contains(msg, "estimated cost on a record of 1048576 bytes is ") || !strings.Contains(msg, "above the limit of 100,000,000") {
				t.Errorf("message %q does not give the estimate and the limit", msg)
			}
		})
	}
}

func TestCompileAcceptsEverydayExpressions(t *testing.T) {
	mustCompile(t, orderSpec())
	mustCompile(t, Spec{Fields: map[string]string{
		"sku":   "source.sku.replace('-', '')",
		"html":  "source.name.replace('&', '&amp;').replace('<', '&lt;')",
		"name":  "source.name.lowerAscii() + ' ' + source.city.upperAscii()",
		"skus":  "source.lines.map(l, l.sku.upperAscii())",
		"pairs": "source.lines.map(a, source.lines.map(b, a.sku + b.sku))",
		"tags":  "source.tags.join(', ')",
		"valid": "source.email.matches('^[^@]+@[^@]+$')",
	}})
}

// TestApplyJSONStopsAtTheCostLimit: expressions that pass the estimate but are too costly on
// a given record end in an *EvalError, and the process goes on mapping.
func TestApplyJSONStopsAtTheCostLimit(t *testing.T) {
	lines := make([]int, 200)
	manyLines, err := json.Marshal(map[string]any{"lines": lines, "x": strings.Repeat("a", 1_000)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		expr    string
		payload string
	}{
		{
			"nested loops over the record",
			"source.lines.map(a, source.lines.map(b, source.lines.map(c, source.x + source.x)))",
			string(manyLines),
		},
		{
			"a string that grows past the limit",
			`source.x.replace("a", "aaaaaaaaaa")`,
			`{"x": "` + strings.Repeat("a", 200_000) + `"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, Spec{Fields: map[string]string{"x": tt.expr}})
			out, _, _, err := p.ApplyJSON([]byte(tt.payload))
			if out != nil {
				t.Fatalf("ApplyJSON returned %d bytes", len(out))
			}
			assertEvalError(t, err, "fields.x", "cost limit exceeded")
			small, _, _, err := p.ApplyJSON([]byte(`{"lines": [1], "x": "a"}`))
			if err != nil || len(small) == 0 {
				t.Errorf("on a small record: %s, %v", small, err)
			}
		})
	}
}

// TestApplyJSONRefusesRecordsOverTheBusLimit: a list of references to one long string is
// cheap to build, so it is the writing of the record that stops.
func TestApplyJSONRefusesRecordsOverTheBusLimit(t *testing.T) {
	p := mustCompile(t, Spec{Fields: map[string]string{"x": "source.lines.map(l, source.s)"}})
	payload, err := json.Marshal(map[string]any{"lines": make([]int, 2_000), "s": strings.Repeat("s", 800_000)})
	if err != nil {
		t.Fatal(err)
	}
	out, _, _, err := p.ApplyJSON(payload)
	if out != nil {
		t.Fatalf("ApplyJSON returned %d bytes", len(out))
	}
	assertEvalError(t, err, "fields.x", "larger than 1048576 bytes")
}

// TestFormatIsCostedBySize: cel-go leaves format's result unbounded in its estimate and
// charges it by its format string at run time; a mapping charges what it builds.
func TestFormatIsCostedBySize(t *testing.T) {
	many := "'" + strings.Repeat("%s", 200) + "'.format([" + strings.TrimSuffix(strings.Repeat("source.x, ", 200), ", ") + "])"
	errs := compileErrors(t, func() error { _, err := Compile(Spec{Fields: map[string]string{"x": many}}); return err }())
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "above the limit of 100,000,000") {
		t.Fatalf("Compile of a format of 200 fields = %v, want it refused over the estimate", errs)
	}
	p := mustCompile(t, Spec{Fields: map[string]string{"x": "'%s-%s'.format([source.x, source.x])"}})
	out, _, _, err := p.ApplyJSON([]byte(`{"x": "` + strings.Repeat("x", 600_000) + `"}`))
	if out != nil {
		t.Fatalf("ApplyJSON returned %d bytes", len(out))
	}
	assertEvalError(t, err, "fields.x", "cost limit exceeded")
	if out, _, _, err := p.ApplyJSON([]byte(`{"x": "a"}`)); err != nil || string(out) != `{"x":"a-a"}` {
		t.Errorf("on a small record: %s, %v", out, err)
	}
}

// TestApplyJSONStopsALoopAtTheTimeLimit: cel-go costs size(s) and s == t at one unit
// however long s is, so a loop over a long list that reads a long string at every step
// passes the cost limit; the record's deadline stops it.
func TestApplyJSONStopsALoopAtTheTimeLimit(t *testing.T) {
	payload, err := json.Marshal(map[string]any{"lines": make([]int, 200_000), "x": strings.Repeat("x", 400_000)})
	if err != nil {
		t.Fatal(err)
	}
	p := mustCompile(t, Spec{Fields: map[string]string{"x": "source.lines.filter(l, size(source.x) == 0)"}})
	out, _, _, err := p.ApplyJSON(payload)
	if out != nil {
		t.Fatalf("ApplyJSON returned %d bytes", len(out))
	}
	assertEvalError(t, err, "fields.x", "time limit exceeded: the mapping's loops took more than 10s on this record")
}
