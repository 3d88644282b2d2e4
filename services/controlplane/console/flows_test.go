package console

import (
	"strings"
	"testing"
)

// TestParseSample: the try box takes one JSON object, and says where anything else goes
// wrong.
func TestParseSample(t *testing.T) {
	tests := []struct {
		in string
		// want is in the error; empty: the record is read.
		want string
	}{
		{in: `{"number": "SO-1", "lines": [{"sku": "A", "qty": 2}]}`},
		{in: "  \n ", want: "paste a sample source record"},
		{in: "{\n  \"number\": SO-1\n}", want: "line 2, column 13: invalid character 'S'"},
		{in: `{"number": "SO-1"`, want: "ends too early, at line 1, column 18"},
		{in: `[1, 2]`, want: "a JSON array, not an object"},
		{in: `"SO-1"`, want: "a JSON string, not an object"},
		{in: `null`, want: "the record is null"},
		{in: "{\"a\": 1}\n}", want: "more follows the record at line 2, column 1"},
		{in: `{"a": "` + strings.Repeat("x", maxSample) + `"}`, want: "more than the 512 KiB"},
	}
	for _, tt := range tests {
		got, err := parseSample(tt.in)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("parseSample(%.40q): %v, want it read", tt.in, err)
		case tt.want == "" && got.Fields["lines"].GetListValue().GetValues()[0].GetStructValue().Fields["qty"].GetNumberValue() != 2:
			t.Errorf("parseSample(%.40q) = %v, want the record as given", tt.in, got)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("parseSample(%.40q): %v, want an error with %q", tt.in, err, tt.want)
		}
	}
}
