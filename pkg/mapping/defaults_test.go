package mapping_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/syncline/syncline/pkg/mapping"
)

func TestEveryDefaultCompiles(t *testing.T) {
	if len(mapping.DefaultEntities()) < 5 {
		t.Fatalf("default mappings for %v only", mapping.DefaultEntities())
	}
	for _, entity := range mapping.DefaultEntities() {
		spec, ok := mapping.Default(entity)
		if !ok || len(spec.Fields) == 0 {
			t.Fatalf("Default(%s) = %v, %v", entity, spec, ok)
		}
		p, err := mapping.Compile(spec)
		if err != nil {
			t.Fatalf("the default mapping of %s does not compile: %v", entity, err)
		}
		// Optional-safe: an empty record maps without an error.
		if _, _, _, err := p.ApplyJSON([]byte(`{}`)); err != nil {
			t.Errorf("the default mapping of %s fails on an empty record: %v", entity, err)
		}
	}
	if _, ok := mapping.Default("spaceship"); ok {
		t.Error("an unknown entity has a default")
	}
}

func TestMergeOverridesOnlyWhatTheFlowNames(t *testing.T) {
	base, _ := mapping.Default("order")
	merged := mapping.Merge(base, mapping.Spec{
		Fields:      map[string]string{"total": "double(source.subtotal)", "note": "source.note"},
		Exclude:     []string{"company", "employee_number"},
		Defaults:    map[string]any{"currency": "EUR"},
		Validations: []mapping.Rule{{Field: "order_number", Check: "value != null"}},
	})
	p, err := mapping.Compile(merged)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := os.ReadFile("testdata/order.json")
	if err != nil {
		t.Fatal(err)
	}
	out, _, _, err := p.ApplyJSON(payload)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"order_number": "SO-2024-100234", "status": "paid", "currency": "EUR",
		"total": 184.5, "customer_email": "jane.doe@example.com", "note": "Please deliver before noon. Ring twice.",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for _, gone := range []string{"company", "employee_number"} {
		if _, ok := got[gone]; ok {
			t.Errorf("excluded field %s is still written", gone)
		}
	}
	// The default is untouched by a merge.
	again, _ := mapping.Default("order")
	if again.Fields["total"] != base.Fields["total"] || len(again.Defaults) != 1 {
		t.Errorf("Merge changed the shipped default: %+v", again)
	}
}

func TestExcludeAllDropsTheDefault(t *testing.T) {
	base, _ := mapping.Default("order")
	own := mapping.Spec{Fields: map[string]string{"n": "source.number"}, Exclude: []string{"*"}}
	merged := mapping.Merge(base, own)
	if len(merged.Fields) != 1 || merged.Fields["n"] != "source.number" || len(merged.Defaults) != 0 {
		t.Errorf("Merge with exclude * = %+v, want the flow's own field only", merged)
	}
}
