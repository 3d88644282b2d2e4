// Package entity holds Syncline's canonical entities: the one documented
// shape of a customer, a product, a category, a stock level, an order, an
// invoice, a payment and the other business documents that a flow's
// mapping produces and every target adapter reads (DESIGN section 9). Each
// is a JSON Schema (draft 2020-12) embedded from schemas/, and the schemas
// are the one source of truth: Check validates records against them,
// Reference renders the field-by-field documentation from them
// (entities.md), and adapters read exactly the field names they declare.
//
// The document types (goods receipt, write-off, bank document and the
// others of document.schema.json's document_type) are entities of their
// own, since a flow sets a duplicate policy per type, but they share one
// schema: each value of document_type is an entity name, and "document"
// itself is not. A schema may refer to another's definitions (an order's
// addresses are the customer's address).
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
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
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

// documentSchema is the schema every document type shares; its
// document_type enum lists the document types.
const documentSchema = "document"

// entity is one compiled schema and its raw form, which error messages and
// the reference read descriptions from.
type entity struct {
	name string
	// file is the schema's name, the file's without ".schema.json": the
	// entity's own name except for a document type's.
	file   string
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
		out[name] = &entity{name: name, file: name, source: src, raw: raw}
	}
	for name, e := range out {
		sch, err := c.Compile(baseURL + name + ".schema.json")
		if err != nil {
			panic(fmt.Sprintf("entity: compiling schema %s: %v", name, err))
		}
		e.schema = sch
	}
	if doc, ok := out[documentSchema]; ok {
		delete(out, documentSchema)
		for _, t := range documentTypes(doc.raw) {
			if _, taken := out[t]; taken {
				panic(fmt.Sprintf("entity: document type %s is also the name of a schema", t))
			}
			out[t] = &entity{name: t, file: documentSchema, source: doc.source, raw: doc.raw, schema: doc.schema}
		}
	}
	return out
})

// documentTypes reads the document types from the document schema's
// document_type enum, so that the schema stays their one source.
func documentTypes(raw map[string]any) []string {
	props, _ := raw["properties"].(map[string]any)
	field, _ := props["document_type"].(map[string]any)
	enum, _ := field["enum"].([]any)
	var out []string
	for _, v := range enum {
		if t, ok := v.(string); ok {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		panic("entity: schema document has no document_type enum")
	}
	return out
}

// schemaFile is an entity of schema file, the file's name without
// ".schema.json": for the document schema, any one of its document types.
func schemaFile(file string) (*entity, bool) {
	for _, e := range registry() {
		if e.file == file {
			return e, true
		}
	}
	return nil, false
}

// Names lists the canonical entities, sorted: the document types among
// them, not "document".
func Names() []string {
	return slices.Sorted(maps.Keys(registry()))
}

// DocumentTypes lists the entities that are document types, sorted: those
// that share the document schema, and whose records' document_type, when
// set, must be the entity's name.
func DocumentTypes() []string {
	var out []string
	for name, e := range registry() {
		if e.file == documentSchema {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// IsDocumentType reports whether name is one of DocumentTypes.
func IsDocumentType(name string) bool {
	e, ok := registry()[name]
	return ok && e.file == documentSchema
}

// Has reports whether name is a canonical entity.
func Has(name string) bool {
	_, ok := registry()[name]
	return ok
}

// Schema returns the JSON Schema of entity name (the document schema for a
// document type); ok is false for a name that is not a canonical entity.
// Callers get a copy.
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
// payload that is not a JSON object. A document type's record must fit the
// document schema and, when it sets document_type, name the entity there.
// It is safe for concurrent use, and the schemas are compiled once per
// process.
func Check(name string, payload []byte) error {
	e, ok := registry()[name]
	if !ok {
		return fmt.Errorf("checking a record: %q is not a canonical entity: use %s", name, strings.Join(Names(), ", "))
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("checking a %s record: the record is not JSON: %w", name, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("checking a %s record: the record is a JSON %s, not an object", name, jsonKind(v))
	}
	// The validator compares numbers as exact fractions and fails on one it
	// cannot hold as such (an exponent of billions), so those are refused first.
	if path, ok := hugeNumber(v, ""); ok {
		return e.refusal([]Problem{{Path: path, Message: "is a number too large to hold (its exponent is beyond what any record needs): send it as a smaller number, or as text"}})
	}
	var problems []Problem
	if err := e.schema.Validate(v); err != nil {
		var verr *jsonschema.ValidationError
		if !errors.As(err, &verr) {
			return fmt.Errorf("checking a %s record: %w", name, err)
		}
		problems = e.problems(v, verr)
	}
	if p, ok := e.otherDocumentType(obj); ok {
		problems = append(problems, p)
	}
	if len(problems) == 0 {
		return nil
	}
	return e.refusal(problems)
}

// otherDocumentType is the problem of a document type's record whose
// document_type names another type (a type the schema does not know is
// the schema's problem). A flow carries one document type, so such a
// record was routed to the wrong flow, or its mapping sets the type from
// the wrong field.
func (e *entity) otherDocumentType(obj map[string]any) (Problem, bool) {
	if e.file != documentSchema {
		return Problem{}, false
	}
	t, ok := obj["document_type"].(string)
	if !ok || t == e.name {
		return Problem{}, false
	}
	if other, ok := registry()[t]; !ok || other.file != documentSchema {
		return Problem{}, false
	}
	return Problem{
		Path:    "document_type",
		Value:   t,
		Message: fmt.Sprintf("is another document type than the flow's entity %s: filter the flow's records on their type, or leave the field out of the mapping", e.name),
	}, true
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

// hugeNumber finds a number in v that math/big cannot hold as a fraction,
// and returns its path (fields joined with ".", list indexes in brackets).
func hugeNumber(v any, path string) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		if _, ok := new(big.Rat).SetString(string(x)); !ok {
			return path, true
		}
	case map[string]any:
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if at, ok := hugeNumber(e, p); ok {
				return at, true
			}
		}
	case []any:
		for i, e := range x {
			if at, ok := hugeNumber(e, fmt.Sprintf("%s[%d]", path, i)); ok {
				return at, true
			}
		}
	}
	return "", false
}
