package mapping

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// compileErrors unpacks what Compile returned into its *CompileError values.
func compileErrors(t *testing.T, err error) []*CompileError {
	t.Helper()
	var errs []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*CompileError
	for _, e := range errs {
		var ce *CompileError
		if !errors.As(e, &ce) {
			t.Fatalf("error %v (%T) is not a *CompileError", e, e)
		}
		out = append(out, ce)
	}
	return out
}

func mustCompile(t testing.TB, spec Spec) *Program {
	t.Helper()
	p, err := Compile(spec)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func TestCompileRefusesBadSpecs(t *testing.T) {
	fallback := "OTHER"
	type want struct {
		path         string
		line, column int
		message      string // substring of Message
	}
	tests := []struct {
		name string
		spec Spec
		want []want
	}{
		{
			name: "undeclared reference",
			spec: Spec{Fields: map[string]string{"total": "sourc.total"}},
			want: []want{{"fields.total", 1, 1, "undeclared reference to 'sourc'"}},
		},
		{
			name: "syntax error at the end",
			spec: Spec{Fields: map[string]string{"x": "source.a +"}},
			want: []want{{"fields.x", 1, 11, "Syntax error"}},
		},
		{
			name: "error on a later line",
			spec: Spec{Fields: map[string]string{"x": "source.a +\n  sourc.b"}},
			want: []want{{"fields.x", 2, 3, "undeclared reference to 'sourc'"}},
		},
		{
			name: "unknown function",
			spec: Spec{Fields: map[string]string{"email": "source.email.lowercase()"}},
			want: []want{{"fields.email", 1, 23, "undeclared reference to 'lowercase'"}},
		},
		{
			name: "filter of type string",
			spec: Spec{Fields: map[string]string{"x": "source.x"}, Filter: "'paid'"},
			want: []want{{"filter", 1, 1, "result is string, want bool"}},
		},
		{
			name: "filter of type int",
			spec: Spec{Fields: map[string]string{"x": "source.x"}, Filter: "size(source)"},
			want: []want{{"filter", 1, 1, "result is int, want bool"}},
		},
		{
			name: "filter with an error",
			spec: Spec{Fields: map[string]string{"x": "source.x"}, Filter: "source.status == "},
			want: []want{{"filter", 1, 18, "Syntax error"}},
		},
		{
			name: "check of type int",
			spec: Spec{Fields: map[string]string{"sku": "source.sku"}, Validations: []Rule{{Field: "sku", Check: "size(value)"}}},
			want: []want{{"validations[0].check", 1, 1, "result is int, want bool"}},
		},
		{
			name: "check cannot see source",
			spec: Spec{Fields: map[string]string{"sku": "source.sku"}, Validations: []Rule{{Field: "sku", Check: "source.sku == value"}}},
			want: []want{{"validations[0].check", 1, 1, "undeclared reference to 'source'"}},
		},
		{
			name: "check with an invalid regular expression",
			spec: Spec{Fields: map[string]string{"sku": "source.sku"}, Validations: []Rule{{Field: "sku", Check: "value.matches('[')"}}},
			want: []want{{"validations[0].check", 0, 0, "error parsing regexp"}},
		},
		{
			name: "no fields and no defaults",
			spec: Spec{Filter: "true"},
			want: []want{{"fields", 0, 0, "no fields and no defaults"}},
		},
		{
			name: "empty expression",
			spec: Spec{Fields: map[string]string{"x": "  "}},
			want: []want{{"fields.x", 0, 0, "expression is empty"}},
		},
		{
			name: "empty field name",
			spec: Spec{Fields: map[string]string{"": "source.x"}},
			want: []want{{"fields", 0, 0, "empty name"}},
		},
		{
			name: "null default",
			spec: Spec{Defaults: map[string]any{"employeeNumber": nil}},
			want: []want{{"defaults.employeeNumber", 0, 0, "default is null"}},
		},
		{
			name: "default of an unsupported type, nested",
			spec: Spec{Defaults: map[string]any{"address": map[string]any{"lines": []any{"a", struct{}{}}}}},
			want: []want{{"defaults.address.lines[1]", 0, 0, "unsupported value of Go type struct {}"}},
		},
		{
			name: "infinite default",
			spec: Spec{Defaults: map[string]any{"x": math.Inf(1)}},
			want: []want{{"defaults.x", 0, 0, "cannot be written as JSON"}},
		},
		{
			name: "value map for a field the mapping does not produce",
			spec: Spec{Fields: map[string]string{"x": "source.x"}, ValueMaps: map[string]ValueMap{"terms": {Fallback: &fallback}}},
			want: []want{{"valueMaps.terms", 0, 0, `no target field "terms"`}},
		},
		{
			name: "value map that can only fail",
			spec: Spec{Fields: map[string]string{"terms": "source.terms"}, ValueMaps: map[string]ValueMap{"terms": {}}},
			want: []want{{"valueMaps.terms", 0, 0, "values is empty and there is no fallback"}},
		},
		{
			name: "rule without a field",
			spec: Spec{Fields: map[string]string{"sku": "source.sku"}, Validations: []Rule{{Check: "value != null"}}},
			want: []want{{"validations[0].field", 0, 0, "field is empty"}},
		},
		{
			name: "rule for an unknown field",
			spec: Spec{Fields: map[string]string{"sku": "source.sku"}, Validations: []Rule{{Field: "ean", Check: "value != null"}}},
			want: []want{{"validations[0].field", 0, 0, `no target field "ean"`}},
		},
		{
			name: "rule without a check",
			spec: Spec{Fields: map[string]string{"sku": "source.sku"}, Validations: []Rule{{Field: "sku"}}},
			want: []want{{"validations[0].check", 0, 0, "expression is empty"}},
		},
		{
			name: "every problem at once, in spec order",
			spec: Spec{
				Fields:      map[string]string{"a": "sourc.a", "b": "source.b +"},
				Filter:      "1",
				Validations: []Rule{{Field: "c", Check: "value"}},
			},
			want: []want{
				{"filter", 1, 1, "result is int, want bool"},
				{"fields.a", 1, 1, "undeclared reference"},
				{"fields.b", 1, 11, "Syntax error"},
				{"validations[0].field", 0, 0, `no target field "c"`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.spec)
			if err == nil {
				t.Fatalf("Compile succeeded with fields %v, want an error", p.Fields())
			}
			got := compileErrors(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d: %v", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Path != w.path || g.Line != w.line || g.Column != w.column || !strings.Contains(g.Message, w.message) {
					t.Errorf("error %d = {Path: %q, Line: %d, Column: %d, Message: %q}, want {%q, %d, %d, containing %q}",
						i, g.Path, g.Line, g.Column, g.Message, w.path, w.line, w.column, w.message)
				}
			}
		})
	}
}

func TestCompileErrorText(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{
			name: "expression error with position",
			spec: Spec{Fields: map[string]string{"total": "sourc.total"}},
			want: `fields.total: undeclared reference to 'sourc' (1:1) in "sourc.total"`,
		},
		{
			name: "spec error without expression",
			spec: Spec{Fields: map[string]string{"terms": "source.terms"}, ValueMaps: map[string]ValueMap{"terms": {}}},
			want: "valueMaps.terms: values is empty and there is no fallback, so every value would fail; add values or a fallback",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.spec)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Compile error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestCompileAcceptsDynFilterAndChecks(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
	}{
		{"dyn filter", Spec{Fields: map[string]string{"x": "source.x"}, Filter: "source.paid"}},
		{"dyn check", Spec{Fields: map[string]string{"x": "source.x"}, Validations: []Rule{{Field: "x", Check: "value"}}}},
		{"defaults only", Spec{Defaults: map[string]any{"employeeNumber": 999999}}},
		{"value map with fallback only", Spec{Fields: map[string]string{"x": "source.x"}, ValueMaps: map[string]ValueMap{"x": {Fallback: new("y")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Compile(tt.spec); err != nil {
				t.Errorf("Compile: %v", err)
			}
		})
	}
}

func TestProgramFields(t *testing.T) {
	p := mustCompile(t, Spec{
		Fields:   map[string]string{"sku": "source.sku", "name": "source.name", "employeeNumber": "source.emp"},
		Defaults: map[string]any{"employeeNumber": 999999, "warehouse": "MAIN"},
	})
	want := []string{"employeeNumber", "name", "sku", "warehouse"}
	got := p.Fields()
	if !slices.Equal(got, want) {
		t.Fatalf("Fields() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if p.Fields()[0] != "employeeNumber" {
		t.Error("changing the slice Fields returned changed the Program")
	}
}
