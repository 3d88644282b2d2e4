package resourcefile

import (
	"encoding/json"
	"testing"
)

func TestSchemaIsDraft2020AndACopy(t *testing.T) {
	var s map[string]any
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatalf("Schema() is not JSON: %v", err)
	}
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" || s["$id"] != schemaURL {
		t.Errorf("$schema = %v, $id = %v", s["$schema"], s["$id"])
	}
	b := Schema()
	b[0] = 'x'
	if Schema()[0] != '{' {
		t.Error("changing the returned schema changed the package's schema")
	}
}

// TestSchemaCoversEveryKind checks that each kind's spec is checked by its
// own definition: a field of one kind is unknown in every other.
func TestSchemaCoversEveryKind(t *testing.T) {
	fields := map[string]string{"Tenant": "displayName", "Integrator": "stage", "Endpoint": "credentials", "Flow": "duplicates"}
	for kind := range fields {
		for other, field := range fields {
			if other == kind {
				continue
			}
			doc := map[string]any{
				"apiVersion": APIVersion, "kind": kind,
				"metadata": map[string]any{"name": "a", "tenant": "a"},
				"spec":     map[string]any{field: "x"},
			}
			found := false
			for _, p := range validate(doc) {
				found = found || (p.path == "spec."+field && p.message[:13] == "unknown field")
			}
			if !found {
				t.Errorf("a %s with spec.%s (a field of %s) is not refused: %v", kind, field, other, validate(doc))
			}
		}
	}
}
