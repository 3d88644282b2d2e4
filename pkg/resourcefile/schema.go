package resourcefile

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed resources.schema.json
var schemaJSON []byte

// schemaURL is the schema's $id.
const schemaURL = "https://syncline.dev/schemas/v1/resources.schema.json"

// Schema returns the JSON Schema (draft 2020-12) of one resource document,
// the one Load checks every document against. Callers get a copy.
func Schema() []byte {
	return bytes.Clone(schemaJSON)
}

// compiled is the schema, compiled once, and its raw form, which the error
// messages read descriptions and property names from.
var compiled = sync.OnceValues(func() (*jsonschema.Schema, map[string]any) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		panic(fmt.Sprintf("resourcefile: the embedded schema is not JSON: %v", err))
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(schemaURL, doc); err != nil {
		panic(fmt.Sprintf("resourcefile: adding the embedded schema: %v", err))
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		panic(fmt.Sprintf("resourcefile: compiling the embedded schema: %v", err))
	}
	raw, _ := doc.(map[string]any)
	return sch, raw
})

var printer = message.NewPrinter(language.English)

// validate checks one document's value against the schema and returns every
// problem, sorted by path.
func validate(v any) []located {
	sch, raw := compiled()
	err := sch.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return []located{{"", err.Error()}}
	}
	var out []located
	for _, leaf := range leaves(verr, nil) {
		out = append(out, describe(leaf, v, raw)...)
	}
	slices.SortFunc(out, func(a, b located) int {
		return cmpOr(strings.Compare(a.path, b.path), strings.Compare(a.message, b.message))
	})
	return slices.Compact(out)
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// leaves collects the errors that say what is wrong; the others (allOf,
// $ref, if/then) only group them.
func leaves(e *jsonschema.ValidationError, out []*jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return append(out, e)
	}
	for _, c := range e.Causes {
		out = leaves(c, out)
	}
	return out
}

// describe turns one schema error into problems with a path a user can find
// in the file and a message that says what to write.
func describe(e *jsonschema.ValidationError, doc any, raw map[string]any) []located {
	path := instancePath(doc, e.InstanceLocation)
	sub := schemaAt(raw, e.SchemaURL)
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		out := make([]located, 0, len(k.Properties))
		msg := "unknown field"
		if known := propertyNames(sub); len(known) > 0 {
			msg += "; use " + strings.Join(known, ", ")
		}
		for _, p := range k.Properties {
			out = append(out, located{keyPath(path, p), msg})
		}
		return out
	case *kind.Required:
		out := make([]located, 0, len(k.Missing))
		for _, m := range k.Missing {
			out = append(out, located{keyPath(path, m), "required field is missing"})
		}
		return out
	case *kind.Enum:
		return []located{{path, "value must be one of " + joinValues(k.Want)}}
	case *kind.Const:
		return []located{{path, "value must be " + joinValues([]any{k.Want})}}
	case *kind.Type:
		return []located{{path, fmt.Sprintf("must be %s, not %s", strings.Join(k.Want, " or "), k.Got)}}
	case *kind.Pattern:
		if d, ok := sub["description"].(string); ok {
			return []located{{path, fmt.Sprintf("%q does not fit: %s", k.Got, lowerFirst(strings.TrimSuffix(d, ".")))}}
		}
		return []located{{path, fmt.Sprintf("%q does not match %s", k.Got, k.Want)}}
	case *kind.MinLength:
		if k.Want == 1 {
			return []located{{path, "must not be empty"}}
		}
	// The control plane's limits, in its words.
	case *kind.MaxLength:
		return []located{{path, printer.Sprintf("is %d characters long, above the limit of %d", k.Got, k.Want)}}
	case *kind.MaxItems:
		return []located{{path, printer.Sprintf("has %d entries, above the limit of %d", k.Got, k.Want)}}
	case *kind.MaxProperties:
		return []located{{path, printer.Sprintf("has %d entries, above the limit of %d", k.Got, k.Want)}}
	}
	return []located{{path, e.ErrorKind.LocalizedString(printer)}}
}

// instancePath renders a JSON pointer's tokens as a path: list indexes in
// brackets, keys joined with dots.
func instancePath(doc any, tokens []string) string {
	path := ""
	for _, t := range tokens {
		switch v := doc.(type) {
		case []any:
			i, _ := strconv.Atoi(t)
			path = indexPath(path, i)
			if i >= 0 && i < len(v) {
				doc = v[i]
			}
		case map[string]any:
			path = keyPath(path, t)
			doc = v[t]
		default:
			path = keyPath(path, t)
		}
	}
	return path
}

// schemaAt finds the part of the raw schema an error's schema URL points to.
func schemaAt(raw map[string]any, url string) map[string]any {
	_, frag, _ := strings.Cut(url, "#")
	cur := raw
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

func propertyNames(sub map[string]any) []string {
	props, _ := sub["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func joinValues(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(fmt.Sprint(v))
		}
		parts[i] = string(b)
	}
	return strings.Join(parts, ", ")
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
