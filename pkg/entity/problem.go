package entity

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Problem is one field of a record that does not fit its entity.
type Problem struct {
	// Path is the field, e.g. "billing_address.country" or
	// "variants[1].sku"; empty for the record as a whole.
	Path string
	// Message says what is wrong and what to do, without the field's value.
	Message string
	// Value is the field's value (nil when it is missing): for callers that
	// may show it, such as a test run of a flow on a sample record. Error
	// leaves it out.
	Value any
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Error is a record refused because it is not a canonical record of its
// entity: every problem, sorted by path.
type Error struct {
	// Entity is the entity the record was checked as.
	Entity   string
	Problems []Problem
}

// maxShown bounds the problems Error renders; a record mapped for the wrong
// entity altogether would otherwise make an error as long as the schema.
const maxShown = 10

// Error reads, for example, `not a canonical customer: billing_address.country:
// required but missing (...): map it in the flow's mapping`. Like every
// error text that may reach the API log, it leaves out the record's values
// (DESIGN section 6).
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "not a canonical %s: ", e.Entity)
	for i, p := range e.Problems {
		if i == maxShown {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-maxShown)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

var printer = message.NewPrinter(language.English)

// problems turns a validation error into the problems it names.
func (e *entity) problems(doc any, verr *jsonschema.ValidationError) []Problem {
	var out []Problem
	for _, leaf := range leaves(verr, nil) {
		out = append(out, e.describe(leaf, doc)...)
	}
	return out
}

// refusal is the *Error of problems, sorted by path.
func (e *entity) refusal(out []Problem) error {
	slices.SortFunc(out, func(a, b Problem) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	out = slices.CompactFunc(out, func(a, b Problem) bool { return a.Path == b.Path && a.Message == b.Message })
	return &Error{Entity: e.name, Problems: out}
}

// leaves collects the errors that say what is wrong; the others ($ref,
// properties, items) only group them.
func leaves(e *jsonschema.ValidationError, out []*jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return append(out, e)
	}
	for _, c := range e.Causes {
		out = leaves(c, out)
	}
	return out
}

// describe turns one schema error into problems that name the field, say
// what is wrong and what to do, and quote no value.
func (e *entity) describe(v *jsonschema.ValidationError, doc any) []Problem {
	path, value := instancePath(doc, v.InstanceLocation)
	sub := e.schemaAt(v.SchemaURL)
	const remedy = "map it in the flow's mapping"
	switch k := v.ErrorKind.(type) {
	case *kind.Required:
		out := make([]Problem, 0, len(k.Missing))
		props, _ := sub["properties"].(map[string]any)
		for _, m := range k.Missing {
			field, _ := props[m].(map[string]any)
			out = append(out, Problem{
				Path:    keyPath(path, m),
				Message: "required but missing" + e.about(field) + ": " + remedy,
			})
		}
		return out
	case *kind.Type:
		if k.Got == "null" && e.required(v) {
			return []Problem{{Path: path, Message: "required but null" + e.about(sub) + ": " + remedy + " from a source field that has a value, or give it a default"}}
		}
		// Null in an optional field is the field left out, which the
		// message need not offer.
		var want []string
		for _, w := range k.Want {
			if w != "null" {
				want = append(want, article(w))
			}
		}
		return []Problem{{Path: path, Value: value, Message: fmt.Sprintf("must be %s, not %s: %s", strings.Join(want, " or "), article(k.Got), convertHint(k.Want))}}
	case *kind.MinLength:
		if k.Want == 1 {
			return []Problem{{Path: path, Value: value, Message: "must not be empty" + e.about(sub) + ": " + remedy + " from a source field that has a value, or leave the field out when it is optional"}}
		}
	case *kind.Pattern:
		// Value maps translate top-level fields only; a nested one is
		// translated by its expression.
		how := "a value map, or an expression such as upperAscii()"
		if strings.ContainsAny(path, ".[") {
			how = "its expression, e.g. with upperAscii() or a map literal of the source's values"
		}
		return []Problem{{Path: path, Value: value, Message: "does not fit" + e.about(sub) + ": translate it in the flow's mapping (" + how + ")"}}
	case *kind.Not:
		// The only "not" the schemas use keeps " / " out of category names.
		return []Problem{{Path: path, Value: value, Message: `must not contain " / ", which separates the levels of a category path: map each level as its own name, the levels above in parent`}}
	case *kind.Format:
		return []Problem{{Path: path, Value: value, Message: fmt.Sprintf("not a valid %s: %v%s: correct it in the source, or leave the field out of the mapping", formatName(k.Want), k.Err, e.about(sub))}}
	case *kind.Enum:
		var want []string
		for _, w := range k.Want {
			if w != nil {
				want = append(want, strconv.Quote(fmt.Sprint(w)))
			}
		}
		return []Problem{{Path: path, Value: value, Message: "must be one of " + strings.Join(want, ", ") + e.about(sub) + ": translate it in the flow's mapping with a value map, or leave the field out when it is optional"}}
	case *kind.ExclusiveMinimum:
		return []Problem{{Path: path, Value: value, Message: printer.Sprintf("must be more than %s%s: %s", k.Want.RatString(), e.about(sub), remedy)}}
	case *kind.Minimum:
		return []Problem{{Path: path, Value: value, Message: printer.Sprintf("must be at least %s%s: %s", k.Want.RatString(), e.about(sub), remedy)}}
	case *kind.MinItems:
		if k.Want == 1 {
			return []Problem{{Path: path, Value: value, Message: "must not be empty" + e.about(sub) + ": " + remedy}}
		}
		return []Problem{{Path: path, Value: value, Message: printer.Sprintf("must have at least %d entries%s: %s", k.Want, e.about(sub), remedy)}}
	}
	return []Problem{{Path: path, Value: value, Message: v.ErrorKind.LocalizedString(printer) + ": " + remedy}}
}

// about is " (the field's first sentence)" from its schema's description:
// what the field holds, so that a user sees what to map to it.
func (e *entity) about(field map[string]any) string {
	d, _ := field["description"].(string)
	if d == "" {
		if ref, ok := field["$ref"].(string); ok {
			d, _ = e.schemaAt(ref)["description"].(string)
		}
	}
	d = firstSentence(d)
	if d == "" {
		return ""
	}
	return " (" + d + ")"
}

// required reports whether the value v's error is about is a property its
// object requires: null there is a missing value, not a wrong type.
func (e *entity) required(v *jsonschema.ValidationError) bool {
	loc := v.InstanceLocation
	if len(loc) == 0 {
		return false
	}
	// The schema URL of a property is <object's schema>/properties/<name>.
	parent, ok := strings.CutSuffix(v.SchemaURL, "/properties/"+loc[len(loc)-1])
	if !ok {
		return false
	}
	req, _ := e.schemaAt(parent)["required"].([]any)
	return slices.Contains(req, any(loc[len(loc)-1]))
}

// schemaAt finds the part of the raw schema a schema URL points to: in
// the entity's own schema, or in another one it refers to (an absolute URL
// or a file name, as in "customer.schema.json#/$defs/address").
func (e *entity) schemaAt(url string) map[string]any {
	base, frag, _ := strings.Cut(url, "#")
	cur := e.raw
	if file, ok := strings.CutSuffix(path.Base(base), ".schema.json"); ok && file != e.file {
		other, ok := schemaFile(file)
		if !ok {
			return nil
		}
		cur = other.raw
	}
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		next, ok := cur[tok].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

// instancePath renders a JSON pointer's tokens as a path (list indexes in
// brackets, keys joined with dots) and returns the value there.
func instancePath(doc any, tokens []string) (string, any) {
	path := ""
	for _, t := range tokens {
		switch v := doc.(type) {
		case []any:
			i, _ := strconv.Atoi(t)
			path += "[" + strconv.Itoa(i) + "]"
			doc = nil
			if i >= 0 && i < len(v) {
				doc = v[i]
			}
		case map[string]any:
			path = keyPath(path, t)
			doc = v[t]
		default:
			path = keyPath(path, t)
			doc = nil
		}
	}
	return path, doc
}

func keyPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// firstSentence is d up to the end of its first sentence or clause: a
// full stop followed by the end or by a space and a capital letter (so that
// "e.g." does not end it), or a semicolon, which would read as the next
// problem in Error's list.
func firstSentence(d string) string {
	for i := 0; i < len(d); i++ {
		switch {
		case d[i] == ';':
			return d[:i]
		case d[i] != '.':
		case i == len(d)-1:
			return d[:i]
		case d[i+1] == ' ' && i+2 < len(d) && unicode.IsUpper(rune(d[i+2])):
			return d[:i]
		}
	}
	return d
}

// article names a JSON type as the messages do: "a number", "text".
func article(t string) string {
	switch t {
	case "array":
		return "a list"
	case "object", "integer":
		return "an " + t
	case "boolean":
		return "true or false"
	case "string":
		return "text"
	case "null":
		return "null"
	default:
		return "a " + t
	}
}

// convertHint says how a mapping makes a value of the wanted type.
func convertHint(want []string) string {
	switch {
	case slices.Contains(want, "number"):
		return "convert it in the flow's mapping with double(…)"
	case slices.Contains(want, "string"):
		return "convert it in the flow's mapping with string(…)"
	case slices.Contains(want, "boolean"):
		return "map it to true or false in the flow's mapping, e.g. with a value map"
	case slices.Contains(want, "array"):
		return "map it to a list in the flow's mapping, e.g. [source.x]"
	case slices.Contains(want, "object"):
		return "map it to an object in the flow's mapping, e.g. {'name': source.x}"
	}
	return "map it in the flow's mapping"
}

func formatName(f string) string {
	if f == "gtin" {
		return "EAN/GTIN"
	}
	return f
}
