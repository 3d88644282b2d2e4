package mapping

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// normalize copies a Go value into the plain values the mapping works on (nil, bool, int64,
// float64, string, []any, map[string]any). It accepts what encoding/json and yaml.v3 produce
// and Go's other integer and float types. Because encoding/json decodes 3 and 3.0 alike as
// float64(3), an integral float64 within the int64 range becomes int64, so that Apply on such
// a record behaves as ApplyJSON on its JSON text; json.Number follows the JSON text exactly.
// The error says where in v the problem is.
func normalize(v any) (any, *valueError) {
	switch v := v.(type) {
	case nil, bool, string, int64:
		return v, nil
	case int:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case uint:
		return normalizeUint(uint64(v))
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		return normalizeUint(v)
	case float32:
		return normalizeFloat(float64(v))
	case float64:
		return normalizeFloat(v)
	case json.Number:
		return normalizeNumber(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			n, err := normalize(e)
			if err != nil {
				return nil, err.within("[" + strconv.Itoa(i) + "]")
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			n, err := normalize(e)
			if err != nil {
				return nil, err.within("." + k)
			}
			out[k] = n
		}
		return out, nil
	default:
		return nil, &valueError{msg: fmt.Sprintf("unsupported value of Go type %T; use JSON values (string, number, bool, null, []any, map[string]any)", v)}
	}
}

// valueError is a value normalize cannot use, with where it sits (".customer.age", "[2]").
// Callers turn it into the error type of their step: a *CompileError for defaults, an
// *EvalError for a source record.
type valueError struct {
	at  string
	msg string
}

// within puts the error one level deeper, under the key or index seg.
func (e *valueError) within(seg string) *valueError {
	e.at = seg + e.at
	return e
}

func normalizeUint(u uint64) (any, *valueError) {
	if u > math.MaxInt64 {
		return nil, &valueError{msg: fmt.Sprintf("integer %d is above the int64 range", u)}
	}
	return int64(u), nil
}

func normalizeFloat(f float64) (any, *valueError) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, &valueError{msg: fmt.Sprintf("number %v cannot be written as JSON", f)}
	}
	if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
		return int64(f), nil
	}
	return f, nil
}

func normalizeNumber(n json.Number) (any, *valueError) {
	if !strings.ContainsAny(string(n), ".eE") {
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return i, nil
		}
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, &valueError{msg: fmt.Sprintf("number %s is out of range or invalid", n)}
	}
	return f, nil
}

// fromCEL converts an expression's result to a plain Go value, as the package documentation
// describes. It
// reports false when v is an empty optional, which leaves a field out.
func fromCEL(v ref.Val) (any, bool, error) {
	if o, ok := v.(*types.Optional); ok {
		if !o.HasValue() {
			return nil, false, nil
		}
		v = o.GetValue()
	}
	out, err := celToGo(v)
	return out, true, err
}

func celToGo(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(v), nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		if v > math.MaxInt64 {
			return nil, fmt.Errorf("result %d is above the int64 range", uint64(v))
		}
		return int64(v), nil
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("result %v cannot be written as JSON", f)
		}
		return f, nil
	case types.String:
		return string(v), nil
	case types.Bytes:
		return base64.StdEncoding.EncodeToString(v), nil
	case types.Timestamp:
		return v.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return v.Duration.String(), nil
	case *types.Optional:
		if !v.HasValue() {
			return nil, nil
		}
		return celToGo(v.GetValue())
	case *types.Err:
		return nil, v
	case traits.Lister:
		// A list or map taken whole from the source still holds plain values and is returned
		// as it is, without a copy.
		if native, ok := v.Value().([]any); ok && isPlain(native) {
			return native, nil
		}
		return listToGo(v)
	case traits.Mapper:
		if native, ok := v.Value().(map[string]any); ok && isPlain(native) {
			return native, nil
		}
		return mapToGo(v)
	default:
		return nil, fmt.Errorf("result of type %s cannot be written as JSON", v.Type().TypeName())
	}
}

func listToGo(l traits.Lister) (any, error) {
	// A list built by an expression holds CEL values; ranging over them directly is faster
	// than CEL's iterator.
	if elems, ok := l.Value().([]ref.Val); ok {
		out := make([]any, len(elems))
		for i, e := range elems {
			v, err := celToGo(e)
			if err != nil {
				return nil, fmt.Errorf("list element %d: %w", i, err)
			}
			out[i] = v
		}
		return out, nil
	}
	// Any other list CEL may hand back.
	out := []any{}
	for it := l.Iterator(); it.HasNext() == types.True; {
		v, err := celToGo(it.Next())
		if err != nil {
			return nil, fmt.Errorf("list element %d: %w", len(out), err)
		}
		out = append(out, v)
	}
	return out, nil
}

func mapToGo(m traits.Mapper) (any, error) {
	// A map built by an expression holds CEL values; ranging over them directly avoids the
	// reflection of CEL's own map iterator.
	if entries, ok := m.Value().(map[ref.Val]ref.Val); ok {
		out := make(map[string]any, len(entries))
		for k, e := range entries {
			if err := putEntry(out, k, e); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	// Any other map CEL may hand back.
	out := make(map[string]any)
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		if err := putEntry(out, k, m.Get(k)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func putEntry(out map[string]any, k, v ref.Val) error {
	key, err := mapKey(k)
	if err != nil {
		return err
	}
	e, err := celToGo(v)
	if err != nil {
		return fmt.Errorf("map value at key %q: %w", key, err)
	}
	out[key] = e
	return nil
}

// mapKey writes a CEL map key as a JSON object key.
func mapKey(k ref.Val) (string, error) {
	switch k := k.(type) {
	case types.String:
		return string(k), nil
	case types.Int:
		return strconv.FormatInt(int64(k), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(k), 10), nil
	case types.Bool:
		return strconv.FormatBool(bool(k)), nil
	default:
		return "", fmt.Errorf("map key of type %s cannot be a JSON object key", k.Type().TypeName())
	}
}

// isPlain reports whether v holds only plain values, so that it can be used without a copy.
func isPlain(v any) bool {
	switch v := v.(type) {
	case nil, bool, int64, string:
		return true
	case float64:
		return !math.IsNaN(v) && !math.IsInf(v, 0)
	case []any:
		for _, e := range v {
			if !isPlain(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range v {
			if !isPlain(e) {
				return false
			}
		}
		return true
	default:
		return false
	}
}

// valueKey writes a field value as the string a value map looks it up by. It reports false
// for values a value map cannot translate (lists and maps).
func valueKey(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return string(appendFloat(nil, v)), true
	case bool:
		return strconv.FormatBool(v), true
	default:
		return "", false
	}
}
