package entity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Reference renders the field-by-field reference of every canonical entity
// as Markdown, from the schemas alone: the committed entities.md is its
// output (`go generate ./pkg/entity`), and a test fails when the two differ.
func Reference() []byte {
	var b bytes.Buffer
	b.WriteString(referenceIntro)
	// One section per schema: the document types share theirs.
	entities := map[string][]string{}
	for _, name := range Names() {
		file := registry()[name].file
		entities[file] = append(entities[file], name)
	}
	for _, name := range slices.Sorted(maps.Keys(entities)) {
		r := newRenderer(name)
		root := r.root
		fmt.Fprintf(&b, "\n## %s\n\n%s Schema: [`schemas/%s.schema.json`](schemas/%s.schema.json).\n\n",
			name, escapeCell(r.str(root, "description")), name, name)
		if names := entities[name]; len(names) > 1 || names[0] != name {
			fmt.Fprintf(&b, "Entities of this shape, each with its own flows and duplicate policy: `%s`. A record of one of them may leave document_type out; when it sets it, it must be the flow's entity.\n\n",
				strings.Join(names, "`, `"))
		}
		b.WriteString("| field | type | required | description |\n|---|---|---|---|\n")
		r.rows(&b, root, "")
		ex, err := json.MarshalIndent(r.example(root), "", "  ")
		if err != nil {
			panic(fmt.Sprintf("entity: the example of schema %s: %v", name, err))
		}
		fmt.Fprintf(&b, "\nExample (from the schema's examples; it passes `entity.Check`):\n\n```json\n%s\n```\n", ex)
	}
	return b.Bytes()
}

const referenceIntro = `# Canonical entities

<!-- Generated from pkg/entity/schemas/*.schema.json by ` + "`go generate ./pkg/entity`" + `; do not edit. -->

The one shape of each entity that a flow's mapping produces and every target adapter reads
(DESIGN.md section 9). The JSON Schemas (draft 2020-12) in ` + "`pkg/entity/schemas`" + ` are the source
of this page, of ` + "`entity.Check`" + ` and of the names adapters use. When a flow's target serves its
entity canonically, the mapper checks every mapped record against the entity's schema and
dead-letters one that does not fit (code ` + "`invalid_record`" + `), naming each field that is wrong and
what to do, before any call to the target.

- Field names are snake_case. A record's source key is not a field: it travels as the event's
  key and is stored in the target as the record's external reference.
- A required field must be present and not null; a required text must not be empty.
- An optional field may be left out or be null: both mean "none".
- A record may carry fields its entity does not name (a field one particular target reads, say):
  they are not checked, and adapters ignore what they do not know.
- Error messages name fields by path: ` + "`billing_address.country`" + `, ` + "`variants[1].sku`" + `. They never
  quote a value, since they reach the API log.
`

// renderer walks one schema's ordered form, and the forms of the schemas
// it refers to.
type renderer struct {
	root   *ordered
	others map[string]*ordered
}

// newRenderer parses schema file (its name without ".schema.json").
func newRenderer(file string) *renderer {
	return &renderer{root: parseSchema(file), others: map[string]*ordered{}}
}

func parseSchema(file string) *ordered {
	e, ok := schemaFile(file)
	if !ok {
		panic(fmt.Sprintf("entity: no schema %s", file))
	}
	root, err := parseOrdered(e.source)
	if err != nil {
		panic(fmt.Sprintf("entity: schema %s: %v", file, err))
	}
	return root
}

func (r *renderer) str(n *ordered, key string) string {
	s, _ := n.get(key).(string)
	return s
}

// resolve follows a local $ref; the referring node's own description, if
// any, wins over the target's.
func (r *renderer) resolve(n *ordered) (target *ordered, description string) {
	description = r.str(n, "description")
	ref := r.str(n, "$ref")
	if ref == "" {
		return n, description
	}
	cur := r.root
	file, frag, _ := strings.Cut(ref, "#")
	if file != "" {
		name := strings.TrimSuffix(file, ".schema.json")
		if r.others[name] == nil {
			r.others[name] = parseSchema(name)
		}
		cur = r.others[name]
	}
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		next, ok := cur.get(tok).(*ordered)
		if !ok {
			panic(fmt.Sprintf("entity: $ref %q does not resolve", ref))
		}
		cur = next
	}
	if description == "" {
		description = r.str(cur, "description")
	}
	return cur, description
}

// types are a node's JSON types without null.
func (r *renderer) types(n *ordered) []string {
	var ts []string
	switch t := n.get("type").(type) {
	case string:
		ts = []string{t}
	case []any:
		for _, x := range t {
			ts = append(ts, x.(string))
		}
	}
	return slices.DeleteFunc(ts, func(t string) bool { return t == "null" })
}

// typeName describes a node's type for a reader: "text", "list of text",
// "object: name → text".
func (r *renderer) typeName(n *ordered) string {
	n, _ = r.resolve(n)
	var names []string
	for _, t := range r.types(n) {
		switch t {
		case "string":
			names = append(names, "text")
		case "number":
			names = append(names, "number")
		case "boolean":
			names = append(names, "true/false")
		case "array":
			if items, ok := n.get("items").(*ordered); ok {
				names = append(names, "list of "+r.typeName(items))
			} else {
				names = append(names, "list")
			}
		case "object":
			if add, ok := n.get("additionalProperties").(*ordered); ok {
				names = append(names, "object: name → "+r.typeName(add))
			} else {
				names = append(names, "object")
			}
		default:
			names = append(names, t)
		}
	}
	return strings.Join(names, " or ")
}

// constraints lists what a value must be beyond its type.
func (r *renderer) constraints(n *ordered) []string {
	var out []string
	if p := r.str(n, "pattern"); p != "" {
		out = append(out, "matches `"+p+"`")
	}
	if f := r.str(n, "format"); f != "" {
		out = append(out, "format `"+f+"`")
	}
	if v, ok := n.get("minLength").(json.Number); ok && v.String() == "1" {
		out = append(out, "not empty")
	}
	if enum, ok := n.get("enum").([]any); ok {
		var vals []string
		for _, v := range enum {
			if v != nil {
				vals = append(vals, fmt.Sprintf("`%q`", v))
			}
		}
		out = append(out, "one of "+strings.Join(vals, ", "))
	}
	if v, ok := n.get("exclusiveMinimum").(json.Number); ok {
		out = append(out, "> "+v.String())
	}
	if v, ok := n.get("minimum").(json.Number); ok {
		out = append(out, "≥ "+v.String())
	}
	if v, ok := n.get("minItems").(json.Number); ok {
		if v.String() == "1" {
			out = append(out, "not empty")
		} else {
			out = append(out, "at least "+v.String()+" entries")
		}
	}
	if not, ok := n.get("not").(*ordered); ok {
		if p := r.str(not, "pattern"); p != "" {
			out = append(out, fmt.Sprintf("must not contain `%s`", p))
		}
	}
	if d, ok := n.lookup("default"); ok {
		b, _ := json.Marshal(d)
		out = append(out, "default `"+string(b)+"`")
	}
	return out
}

// rows writes a table row per property of n, and of the objects nested in
// it (list items as path[]), in the schema's order.
func (r *renderer) rows(w io.Writer, n *ordered, prefix string) {
	n, _ = r.resolve(n)
	props, _ := n.get("properties").(*ordered)
	if props == nil {
		if items, ok := n.get("items").(*ordered); ok {
			r.rows(w, items, prefix+"[]")
		}
		return
	}
	var required []string
	if req, ok := n.get("required").([]any); ok {
		for _, x := range req {
			required = append(required, x.(string))
		}
	}
	for _, key := range props.keys {
		field := props.get(key).(*ordered)
		target, desc := r.resolve(field)
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		req := "no"
		if slices.Contains(required, key) {
			req = "yes"
		}
		cons := r.constraints(target)
		if items, ok := target.get("items").(*ordered); ok {
			it, _ := r.resolve(items)
			if c := r.constraints(it); len(c) > 0 {
				cons = append(cons, "each: "+strings.Join(c, ", "))
			}
			if inner, ok := it.get("items").(*ordered); ok {
				if c := r.constraints(inner); len(c) > 0 {
					cons = append(cons, "each name: "+strings.Join(c, ", "))
				}
			}
		}
		if len(cons) > 0 {
			desc += " (" + strings.Join(cons, "; ") + ")"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", path, r.typeName(field), req, escapeCell(desc))
		r.rows(w, target, path)
	}
}

// example builds a record from the schema's examples: a node's first
// example, or for an object without one, an object of its properties'
// examples, and for a list without one a list of one item's.
func (r *renderer) example(n *ordered) any {
	if ex, ok := n.get("examples").([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	n, _ = r.resolve(n)
	if ex, ok := n.get("examples").([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	if props, ok := n.get("properties").(*ordered); ok {
		out := &ordered{m: map[string]any{}}
		for _, key := range props.keys {
			if v := r.example(props.get(key).(*ordered)); v != nil {
				out.keys = append(out.keys, key)
				out.m[key] = v
			}
		}
		return out
	}
	if items, ok := n.get("items").(*ordered); ok {
		if v := r.example(items); v != nil {
			return []any{v}
		}
	}
	return nil
}

func escapeCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// ordered is a JSON object that keeps its keys' order, so that the
// reference lists fields as the schema does.
type ordered struct {
	keys []string
	m    map[string]any
}

func (o *ordered) get(key string) any {
	if o == nil {
		return nil
	}
	return o.m[key]
}

func (o *ordered) lookup(key string) (any, bool) {
	v, ok := o.m[key]
	return v, ok
}

// MarshalJSON writes the object's keys in order.
func (o *ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(o.m[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// parseOrdered decodes JSON with objects as *ordered and numbers as
// json.Number.
func parseOrdered(src []byte) (*ordered, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return nil, err
	}
	o, ok := v.(*ordered)
	if !ok {
		return nil, fmt.Errorf("not a JSON object")
	}
	return o, nil
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &ordered{m: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				o.keys = append(o.keys, k)
				o.m[k] = v
			}
			_, err := dec.Token()
			return o, err
		case '[':
			var a []any
			for dec.More() {
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
	}
	return tok, nil
}
