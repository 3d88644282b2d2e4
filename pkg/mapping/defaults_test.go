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
}

// TestDefaultsMapRealRecords: each default maps a record of its entity as
// systems send them, whole and fractional numbers alike.
func TestDefaultsMapRealRecords(t *testing.T) {
	tests := []struct{ entity, record, want string }{
		{"order", `{"number":"SO-1","status":"paid","currency":"EUR","total":100,"customer":{"email":"A@B.NL","name":"Ann","company":"Ann BV"}}`,
			`{"company":"Ann BV","currency":"EUR","customer_email":"a@b.nl","customer_name":"Ann","employee_number":999999,"order_number":"SO-1","status":"paid","total":100}`},
		{"invoice", `{"number":"F-1","order":"SO-1","total":121,"currency":"EUR","due":"2026-12-01"}`,
			`{"currency":"EUR","due_date":"2026-12-01","invoice_number":"F-1","order_number":"SO-1","total":121}`},
		{"payment", `{"reference":"P-1","invoice":"F-1","amount":60.5,"currency":"EUR","method":"ideal"}`,
			`{"amount":60.5,"currency":"EUR","invoice_number":"F-1","method":"ideal","reference":"P-1"}`},
	}
	for _, tt := range tests {
		spec, _ := mapping.Default(tt.entity)
		p, err := mapping.Compile(spec)
		if err != nil {
			t.Fatal(err)
		}
		out, _, _, err := p.ApplyJSON([]byte(tt.record))
		if err != nil {
			t.Errorf("%s %s: %v", tt.entity, tt.record, err)
			continue
		}
		if string(out) != tt.want {
			t.Errorf("%s %s\n got %s\nwant %s", tt.entity, tt.record, out, tt.want)
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
