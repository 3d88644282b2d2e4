package mapping

import (
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// A selector is an expression that only reads a field of the record:
// source.a.b, or source.?a.?b. Most fields of most mappings are such, and
// walking the record for them costs a fraction of running CEL. It answers only
// where the answer is plain — every step a map, the value a string, a
// boolean or a number, or, for an optional chain, a missing key — and leaves
// everything else (a missing key of a plain chain, which is an error, a null,
// a list or an object) to the expression itself, so a mapping's results and
// errors are CEL's either way (TestSelectorsAgreeWithCEL).
type selector struct {
	keys []string
	// optional: source.?a.?b (a missing key leaves the field unset);
	// otherwise source.a.b.
	optional bool
}

// selectorOf returns the selector expression e is, or nil.
func selectorOf(e celast.Expr) *selector {
	var keys []string
	plain, optional := false, false
	for {
		switch e.Kind() {
		case celast.SelectKind:
			s := e.AsSelect()
			if s.IsTestOnly() {
				return nil
			}
			keys, plain, e = append(keys, s.FieldName()), true, s.Operand()
		case celast.CallKind:
			c := e.AsCall()
			if c.FunctionName() != operators.OptSelect || len(c.Args()) != 2 || c.Args()[1].Kind() != celast.LiteralKind {
				return nil
			}
			key, ok := c.Args()[1].AsLiteral().(types.String)
			if !ok {
				return nil
			}
			keys, optional, e = append(keys, string(key)), true, c.Args()[0]
		case celast.IdentKind:
			if e.AsIdent() != "source" || plain == optional {
				return nil
			}
			for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
				keys[i], keys[j] = keys[j], keys[i]
			}
			return &selector{keys: keys, optional: optional}
		default:
			return nil
		}
	}
}

// lookup reads the selector's field of source. ok is false when the
// expression must run instead.
func (s *selector) lookup(source map[string]any) (val any, set, ok bool) {
	var cur any = source
	for _, k := range s.keys {
		m, isMap := cur.(map[string]any)
		if !isMap {
			return nil, false, false
		}
		v, found := m[k]
		if !found {
			return nil, false, s.optional
		}
		cur = v
	}
	switch cur.(type) {
	case string, bool, int64, float64:
		return cur, true, true
	}
	return nil, false, false
}
