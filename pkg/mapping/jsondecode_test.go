package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    map[string]any
	}{
		{"empty object", `{}`, map[string]any{}},
		{"whitespace everywhere", " \t\r\n{ \"a\" : [ 1 , { } , [ ] ] } \n", map[string]any{"a": []any{int64(1), map[string]any{}, []any{}}}},
		{"literals", `{"t": true, "f": false, "n": null}`, map[string]any{"t": true, "f": false, "n": nil}},
		{"integers are int64", `{"a": 0, "b": -0, "c": 42, "d": -7}`, map[string]any{"a": int64(0), "b": int64(0), "c": int64(42), "d": int64(-7)}},
		{"int64 limits", `{"max": 9223372036854775807, "min": -9223372036854775808}`, map[string]any{"max": int64(math.MaxInt64), "min": int64(math.MinInt64)}},
		{"beyond int64 is float64", `{"a": 9223372036854775808, "b": -9223372036854775809, "c": 123456789012345678901234567890}`, map[string]any{"a": 9223372036854775808.0, "b": -9223372036854775809.0, "c": 123456789012345678901234567890.0}},
		{"fractions and exponents are float64", `{"a": 1.0, "b": -2.5, "c": 1e3, "d": 1E-2, "e": 2e+2, "f": 1e-400}`, map[string]any{"a": 1.0, "b": -2.5, "c": 1000.0, "d": 0.01, "e": 200.0, "f": 0.0}},
		{"escapes", `{"s": "\"\\\/\b\f\n\r\t\u00e9\u20AC"}`, map[string]any{"s": "\"\\/\b\f\n\r\té€"}},
		{"surrogate pair", `{"s": "\ud83d\ude00"}`, map[string]any{"s": "😀"}},
		{"lone surrogates become U+FFFD", `{"a": "\ud83dx", "b": "\ude00", "c": "\ud83d\u0041"}`, map[string]any{"a": "\ufffdx", "b": "\ufffd", "c": "\ufffdA"}},
		{"invalid UTF-8 becomes U+FFFD", "{\"s\": \"a\xffb\xc3\"}", map[string]any{"s": "a\ufffdb\ufffd"}},
		{"raw UTF-8 is kept", `{"ключ": "значение €"}`, map[string]any{"ключ": "значение €"}},
		{"escaped key", `{"a\nb": 1}`, map[string]any{"a\nb": int64(1)}},
		{"repeated key keeps the last value", `{"a": 1, "a": 2}`, map[string]any{"a": int64(2)}},
		{"many members", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10}`, map[string]any{"a": int64(1), "b": int64(2), "c": int64(3), "d": int64(4), "e": int64(5), "f": int64(6), "g": int64(7), "h": int64(8), "i": int64(9), "j": int64(10)}},
		{"nested members do not mix", `{"a": {"b": [1, {"c": 2}], "d": 3}, "e": [[], [4]]}`, map[string]any{"a": map[string]any{"b": []any{int64(1), map[string]any{"c": int64(2)}}, "d": int64(3)}, "e": []any{[]any{}, []any{int64(4)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeObject([]byte(tt.payload), new(stacks))
			if err != nil {
				t.Fatalf("decodeObject: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeObject = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeObjectErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"leading zero", `{"a": 01}`, "want ',' or '}' in object"},
		{"no digit after point", `{"a": 1.}`, "want a digit after '.'"},
		{"no integer part", `{"a": .5}`, "invalid character '.' looking for a value"},
		{"sign only", `{"a": -}`, "invalid number"},
		{"plus sign", `{"a": +1}`, "invalid character '+'"},
		{"empty exponent", `{"a": 1e}`, "want a digit in exponent"},
		{"number out of range", `{"a": 1e400}`, "number 1e400 is out of range"},
		{"bad literal", `{"a": tru}`, "invalid literal, want true"},
		{"control character in string", "{\"a\": \"x\ty\"}", "invalid control character"},
		{"control character after escape", "{\"a\": \"\\n\x01\"}", "invalid control character"},
		{"bad escape", `{"a": "\x"}`, "invalid escape 'x'"},
		{"short unicode escape", `{"a": "\u12"}`, `invalid \u escape`},
		{"escape at the end", `{"a": "\`, "unexpected end of input in string escape"},
		{"unterminated string", `{"a": "abc`, "unexpected end of input in string"},
		{"unterminated escaped string", `{"a": "\n abc`, "unexpected end of input in string"},
		{"missing colon", `{"a" 1}`, "want ':' after object key"},
		{"unquoted key", `{a: 1}`, "want a string key in object"},
		{"missing value", `{"a": }`, "invalid character '}' looking for a value"},
		{"unterminated object", `{"a": 1`, "unexpected end of input in object"},
		{"end after colon", `{"a":`, "unexpected end of input"},
		{"missing comma in array", `{"a": [1 2]}`, "want ',' or ']' in array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeObject([]byte(tt.payload), new(stacks))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decodeObject = %v, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
}

// FuzzDecodeObject checks the decoder against encoding/json: both accept the same objects,
// and decode them to the same values once encoding/json's numbers are read the same way.
func FuzzDecodeObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a": [1, 2.5, -0, 1e3, "x", true, null, {"b": {}}]}`, `{"s": "\ud83d\ude00 \u00e9 \\ \""}`,
		"{\"s\": \"\xff\"}", `{"a": 9223372036854775808}`, `{"a": 1e400}`, `[1]`, `{"a":1}x`, `{"a": "\ud800\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeObject(data, new(stacks))
		if errors.Is(err, errTooDeep) {
			return
		}
		trimmed := bytes.TrimLeft(data, " \t\r\n")
		if !json.Valid(data) || len(trimmed) == 0 || trimmed[0] != '{' {
			if err == nil {
				t.Fatalf("decodeObject accepted %q, which encoding/json refuses or is not an object", data)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var ref map[string]any
		if derr := dec.Decode(&ref); derr != nil {
			t.Fatalf("encoding/json could not decode valid %q: %v", data, derr)
		}
		want, verr := normalize(ref)
		if verr != nil {
			if err == nil {
				t.Fatalf("decodeObject accepted %q; want an error like %v", data, verr)
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeObject(%q): %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeObject(%q) = %#v, encoding/json gives %#v", data, got, want)
		}
	})
}

func TestDecodeObjectReusesStacks(t *testing.T) {
	big := `{"a": [` + strings.Repeat(`1,`, keepStack) + `1]}`
	tests := []struct {
		name     string
		payload  string
		wantKept bool
	}{
		{"small payload keeps its stacks", `{"a": [1, {"b": "c"}], "d": "e"}`, true},
		{"huge payload gives them up", big, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := new(stacks)
			if _, err := decodeObject([]byte(tt.payload), st); err != nil {
				t.Fatalf("decodeObject: %v", err)
			}
			if kept := cap(st.elems) > 0; kept != tt.wantKept {
				t.Fatalf("element stack kept = %v (cap %d), want %v", kept, cap(st.elems), tt.wantKept)
			}
			for _, e := range st.elems[:cap(st.elems)] {
				if e != nil {
					t.Fatalf("kept stack still holds %v", e)
				}
			}
			for _, m := range st.members[:cap(st.members)] {
				if m != (member{}) {
					t.Fatalf("kept stack still holds %v", m)
				}
			}
			// The same stacks decode the next record correctly.
			got, err := decodeObject([]byte(`{"x": [true], "y": {"z": null}}`), st)
			want := map[string]any{"x": []any{true}, "y": map[string]any{"z": nil}}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("second decodeObject = %v, %v; want %v", got, err, want)
			}
		})
	}
}
