// Package entity holds Syncline's canonical entities: the one documented
// shape of a customer, a product, a category and a stock level that a flow's
// mapping produces and every target adapter reads (DESIGN section 9). Each is
// a JSON Schema (draft 2020-12) embedded from schemas/, and the schemas are
// the one source of truth: Check validates records against them, Reference
// renders the field-by-field documentation from them (entities.md), and
// adapters read exactly the field names they declare.
//
// A record may carry fields its schema does not name: a flow can pass on
// more than the canonical shape (a field a particular target reads, say),
// and an adapter ignores what it does not know. A field the schema names
// must have the schema's type and format, and null in an optional field is
// the same as the field left out, since sources often send null for what
// they do not have.
package entity

import (
	"bytes"
	"embed"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:generate go run ./internal/genref

//go:embed schemas/*.schema.json
var schemaFiles embed.FS

// baseURL is the prefix of every schema's $id; the file name follows it.
const baseURL = "https://syncline.dev/schemas/v1/entity/"

// entity is one compiled schema and its raw form, which error messages and
// the reference read descriptions from.
type entity struct {
	name   string
	source []byte
	schema *jsonschema.Schema
	raw    map[string]any
}

// registry compiles every embedded schema once, on first use. A schema that
// does not compile is a programming error caught by the package's tests, so
// it panics rather than making every caller handle an error it cannot fix.
var registry = sync.OnceValue(func() map[string]*entity {
	files, err := schemaFiles.ReadDir("schemas")
	if err != nil {
		panic(fmt.Sprintf("entity: reading the embedded schemas: %v", err))
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.RegisterFormat(&jsonschema.Format{Name: "gtin", Validate: validateGTIN})
	// Formats are assertions here, not annotations: an EAN with a wrong
	// check digit is refused, as the schema's description says.
	c.AssertFormat()
	out := map[string]*entity{}
	for _, f := range files {
		name, ok := strings.CutSuffix(f.Name(), ".schema.json")
		if !ok {
			continue
		}
		src, err := schemaFiles.ReadFile(path.Join("schemas", f.Name()))
		if err != nil {
			panic(fmt.Sprintf("entity: reading schema %s: %v", f.Name(), err))
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
		if err != nil {
			panic(fmt.Sprintf("entity: schema %s is not JSON: %v", f.Name(), err))
		}
		raw, _ := doc.(map[string]any)
		if id, _ := raw["$id"].(string); id != baseURL+f.Name() {
			panic(fmt.Sprintf("entity: schema %s has $id %q, want %q", f.Name(), id, baseURL+f.Name()))
		}
		if err := c.AddResource(baseURL+f.Name(), doc); err != nil {
			panic(fmt.Sprintf("entity: adding schema %s: %v", f.Name(), err))
		}
		out[name] = &entity{name: name, source: src, raw: raw}
	}
	for name, e := range out {
		sch, err := c.Compile(baseURL + name + ".schema.json")
		if err != nil {
			panic(fmt.Sprintf("entity: compiling schema %s: %v", name, err))
		}
		e.schema = sch
	}
	return out
})

// Names lists the canonical entities, sorted.
func Names() []string {
	return slices.Sorted(maps.Keys(registry()))
}

// Has reports whether name is a canonical entity.
func Has(name string) bool {
	_, ok := registry()[name]
	return ok
}

// Schema returns the JSON Schema of entity name; ok is false for a name
// that is not a canonical entity. Callers get a copy.
func Schema(name string) (schema []byte, ok bool) {
	e, ok := registry()[name]
	if !ok {
		return nil, false
	}
	return bytes.Clone(e.source), true
}

// Check checks that payload, one mapped record, is a canonical record of
// entity name. It returns nil for a record that fits, an *Error naming
// every field that does not (what is wrong and what to do) for one that
// does not, and an error for a name that is not a canonical entity or a
// payload that is not a JSON object. It is safe for concurrent use, and
// the schemas are compiled once per process.
func Check(name string, payload []byte) error {
	e, ok := registry()[name]
	if !ok {
		return fmt.Errorf("checking a record: %q is not a canonical entity: use %s", name, strings.Join(Names(), ", "))
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("checking a %s record: the record is not JSON: %w", name, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("checking a %s record: the record is a JSON %s, not an object", name, jsonKind(v))
	}
	if err := e.schema.Validate(v); err != nil {
		return e.refusal(v, err)
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	default:
		return "number"
	}
}
