package sql

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// TestSplitObjectAgreesWithEncodingJSON checks the hand-written splitter against decoding into
// a map, which is what it replaces.
func TestSplitObjectAgreesWithEncodingJSON(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		ok      bool
	}{
		{"empty object", `{}`, true},
		{"spaces everywhere", " \n{ \"a\" :\t1 , \"b\" : \"x\" }\r\n", true},
		{"every value kind", `{"s":"x","n":-1.5e3,"t":true,"f":false,"z":null,"o":{"a":[1,{"b":"}"}]},"a":[]}`, true},
		{"escapes in names and values", `{"q\"uote":"a\\\"b","uni\u00e9":"\u2713","brace}":"]"}`, true},
		{"duplicate names, last wins", `{"a":1,"b":2,"a":3}`, true},
		{"nested quotes in strings", `{"a":"{\"b\":1}","c":["\"]"]}`, true},
		{"array", `[1,2]`, false},
		{"string", `"x"`, false},
		{"null", `null`, false},
		{"truncated", `{"a":1`, false},
		{"trailing garbage", `{"a":1} x`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, ok := splitObject([]byte(tt.payload), interner{}, 0)
			if ok != tt.ok {
				t.Fatalf("splitObject ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			var want map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tt.payload), &want); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			got := map[string]json.RawMessage{}
			var names []string
			for _, f := range fields {
				got[f.name] = f.value
				names = append(names, f.name)
			}
			if !slices.IsSorted(names) || len(names) != len(got) {
				t.Errorf("names %q are not sorted and unique", names)
			}
			if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
				t.Errorf("splitObject = %s, want %s", render(got), render(want))
			}
		})
	}
}

func render(m map[string]json.RawMessage) string {
	b, _ := json.Marshal(m)
	return string(b)
}
