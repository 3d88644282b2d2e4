package mapping

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// stdJSON encodes v as encoding/json does with HTML escaping off, the format appendJSON
// promises to match.
func stdJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppendJSON(t *testing.T) {
	many := map[string]any{}
	for _, k := range strings.Split("q w e r t y u i o p a s d f g h j k l z x c v b n m", " ") {
		many[k] = k
	}
	tests := []struct {
		name string
		v    any
	}{
		{"null", nil},
		{"bools", []any{true, false}},
		{"ints", []any{int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64)}},
		{"floats", []any{0.0, math.Copysign(0, -1), 1.5, 1e20, 1e21, 123456789e30, 1e-6, 1e-7, -2.5e-9, math.MaxFloat64, math.SmallestNonzeroFloat64, 100.0, 0.1}},
		{"strings", []any{"", "plain", "quote \" backslash \\", "\b\f\n\r\t\x00\x1f\x7f", "<&>", "é €😀", "\u2028\u2029", "bad \xff utf8 \xe2\x82"}},
		{"nested and sorted", map[string]any{"b": []any{map[string]any{"z": 1.0, "a": nil}}, "a": map[string]any{}, "é": "x", "A": []any{}}},
		{"more keys than the stack holds", many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, verr := normalize(tt.v)
			if verr != nil {
				t.Fatalf("normalize: %v", verr)
			}
			got, err := appendJSON(nil, v)
			if err != nil {
				t.Fatalf("appendJSON: %v", err)
			}
			if want := stdJSON(t, v); !bytes.Equal(got, want) {
				t.Errorf("appendJSON = %s, want %s", got, want)
			}
		})
	}
}

func TestAppendJSONRefusesOtherTypes(t *testing.T) {
	if _, err := appendJSON(nil, []any{int32(1)}); err == nil || !strings.Contains(err.Error(), "Go type int32") {
		t.Errorf("appendJSON(int32) error = %v, want one naming the type", err)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, seed := range []string{"", "a\"b\\c", "\x00\u2028\xff", "<script>", "é😀"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendString(nil, s), stdJSON(t, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, encoding/json writes %s", s, got, want)
		}
	})
}

func FuzzAppendFloat(f *testing.F) {
	for _, seed := range []float64{0, 1, -1.5, 1e21, 1e-7, math.MaxFloat64} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		if got, want := appendFloat(nil, v), stdJSON(t, v); !bytes.Equal(got, want) {
			t.Fatalf("appendFloat(%v) = %s, encoding/json writes %s", v, got, want)
		}
	})
}
