package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestApplyJSONFields(t *testing.T) {
	tests := []struct {
		name    string
		fields  map[string]string
		payload string
		want    string
	}{
		{"int arithmetic", map[string]string{"qty": "source.qty * 2"}, `{"qty": 3}`, `{"qty":6}`},
		{"double arithmetic on an integral number", map[string]string{"total": "double(source.total) * 1.21"}, `{"total": 100}`, `{"total":121}`},
		{"double arithmetic on a fraction", map[string]string{"total": "double(source.total) * 1.21"}, `{"total": 100.5}`, `{"total":121.60499999999999}`},
		{"number with exponent is a double", map[string]string{"t": "type(source.n) == double"}, `{"n": 1e2}`, `{"t":true}`},
		{"integer beyond int64 is a double", map[string]string{"t": "type(source.n) == double"}, `{"n": 9223372036854775808}`, `{"t":true}`},
		{"int compares with double", map[string]string{"big": "source.total > 100"}, `{"total": 100.5}`, `{"big":true}`},
		{"int equals double", map[string]string{"eq": "source.a == 3.0"}, `{"a": 3}`, `{"eq":true}`},
		{"string extension", map[string]string{"email": "source.email.lowerAscii().trim()"}, `{"email": " Jane@Example.COM "}`, `{"email":"jane@example.com"}`},
		{"string concatenation", map[string]string{"name": "source.first + ' ' + source.last"}, `{"first": "Jane", "last": "Doe"}`, `{"name":"Jane Doe"}`},
		{"optional with fallback", map[string]string{"emp": "source.?employee.orValue(999999)"}, `{}`, `{"emp":999999}`},
		{"optional present", map[string]string{"emp": "source.?employee.orValue(999999)"}, `{"employee": 12}`, `{"emp":12}`},
		{"empty optional leaves the field out", map[string]string{"a": "source.?missing", "b": "source.b"}, `{"b": 1}`, `{"b":1}`},
		{"optional with value", map[string]string{"a": "source.?a"}, `{"a": "x"}`, `{"a":"x"}`},
		{"null result is written", map[string]string{"a": "source.a"}, `{"a": null}`, `{"a":null}`},
		{"has macro", map[string]string{"a": "has(source.company) ? 'company' : 'person'"}, `{"company": "Doe BV"}`, `{"a":"company"}`},
		{"timestamp to RFC 3339 in UTC", map[string]string{"at": "timestamp(source.at)"}, `{"at": "2024-05-17T11:41:27.5+02:00"}`, `{"at":"2024-05-17T09:41:27.5Z"}`},
		{"timestamp arithmetic", map[string]string{"due": "timestamp(source.at) + duration('336h')"}, `{"at": "2024-05-17T09:41:27Z"}`, `{"due":"2024-05-31T09:41:27Z"}`},
		{"duration to Go string", map[string]string{"d": "duration('90m')"}, `{}`, `{"d":"1h30m0s"}`},
		{"bytes to base64", map[string]string{"b": "b'hi'"}, `{}`, `{"b":"aGk="}`},
		{"uint to int", map[string]string{"u": "uint(source.n)"}, `{"n": 7}`, `{"u":7}`},
		{"object from the source, sorted", map[string]string{"c": "source.customer"}, `{"customer": {"name": "Jane", "email": "j@x.nl"}}`, `{"c":{"email":"j@x.nl","name":"Jane"}}`},
		{"list from the source", map[string]string{"tags": "source.tags"}, `{"tags": ["a", 1, 2.5, true, null, {}]}`, `{"tags":["a",1,2.5,true,null,{}]}`},
		{"list built by an expression", map[string]string{"skus": "source.lines.map(l, l.sku)"}, `{"lines": [{"sku": "1"}, {"sku": "2"}]}`, `{"skus":["1","2"]}`},
		{"map built by an expression", map[string]string{"m": "{'b': source.n, 'a': [1.5, null], 2: true}"}, `{"n": 1}`, `{"m":{"2":true,"a":[1.5,null],"b":1}}`},
		{"concatenated lists", map[string]string{"l": "source.a + [timestamp('2024-01-01T00:00:00Z')]"}, `{"a": [null]}`, `{"l":[null,"2024-01-01T00:00:00Z"]}`},
		{"fields sorted, escapes kept", map[string]string{"z": "source.s", "a": "'\\u2028<&>'"}, `{"s": "line\nbreak \"q\" \u00e9"}`, `{"a":"\u2028<&>","z":"line\nbreak \"q\" é"}`},
		{"format extension", map[string]string{"s": "'%s-%d'.format([source.a, source.b])"}, `{"a": "SO", "b": 7}`, `{"s":"SO-7"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, Spec{Fields: tt.fields})
			out, skip, reason, err := p.ApplyJSON([]byte(tt.payload))
			if err != nil || skip {
				t.Fatalf("ApplyJSON: skip %v (%q), err %v", skip, reason, err)
			}
			if string(out) != tt.want {
				t.Errorf("ApplyJSON = %s, want %s", out, tt.want)
			}
		})
	}
}

func TestApplyJSONFilter(t *testing.T) {
	spec := Spec{
		Fields: map[string]string{"number": "source.number"},
		Filter: "source.status in ['paid', 'shipped']",
	}
	tests := []struct {
		name       string
		payload    string
		wantOut    string
		wantSkip   bool
		wantReason string
	}{
		{"kept", `{"number": "SO-1", "status": "paid"}`, `{"number":"SO-1"}`, false, ""},
		{"filtered out", `{"number": "SO-2", "status": "cancelled"}`, "", true, "filtered out by source.status in ['paid', 'shipped']"},
	}
	p := mustCompile(t, spec)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, skip, reason, err := p.ApplyJSON([]byte(tt.payload))
			if err != nil {
				t.Fatalf("ApplyJSON: %v", err)
			}
			if string(out) != tt.wantOut || skip != tt.wantSkip || reason != tt.wantReason {
				t.Errorf("ApplyJSON = (%s, %v, %q), want (%s, %v, %q)", out, skip, reason, tt.wantOut, tt.wantSkip, tt.wantReason)
			}
			res, err := p.Apply(decodeForTest(t, tt.payload))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if res.Skipped != tt.wantSkip || res.Reason != tt.wantReason || (res.Record == nil) != tt.wantSkip {
				t.Errorf("Apply = %+v, want skipped %v with reason %q", res, tt.wantSkip, tt.wantReason)
			}
		})
	}
}

func TestApplyJSONDefaults(t *testing.T) {
	spec := Spec{
		Fields:   map[string]string{"employeeNumber": "source.?emp.orValue(null)", "note": "source.?note.orValue('')", "count": "source.count", "paid": "source.paid"},
		Defaults: map[string]any{"employeeNumber": 999999.0, "note": "none", "count": 1, "paid": true, "warehouse": "MAIN"},
	}
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"missing, null and empty take the default", `{"count": null, "paid": null}`, `{"count":1,"employeeNumber":999999,"note":"none","paid":true,"warehouse":"MAIN"}`},
		{"empty string takes the default", `{"emp": "", "note": "", "count": 2, "paid": false}`, `{"count":2,"employeeNumber":999999,"note":"none","paid":false,"warehouse":"MAIN"}`},
		{"zero and false are values", `{"emp": 0, "note": "x", "count": 0, "paid": false}`, `{"count":0,"employeeNumber":0,"note":"x","paid":false,"warehouse":"MAIN"}`},
		{"present values win", `{"emp": 42, "note": "fragile", "count": 3, "paid": true}`, `{"count":3,"employeeNumber":42,"note":"fragile","paid":true,"warehouse":"MAIN"}`},
	}
	p := mustCompile(t, spec)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, _, err := p.ApplyJSON([]byte(tt.payload))
			if err != nil {
				t.Fatalf("ApplyJSON: %v", err)
			}
			if string(out) != tt.want {
				t.Errorf("ApplyJSON = %s, want %s", out, tt.want)
			}
		})
	}
}

func TestApplyJSONValueMaps(t *testing.T) {
	fallback := "NET30"
	tests := []struct {
		name     string
		spec     Spec
		payload  string
		want     string
		wantPath string // of the *EvalError, when one is wanted
		wantMsg  string
	}{
		{
			name:    "string value",
			spec:    Spec{Fields: map[string]string{"terms": "source.terms"}, ValueMaps: map[string]ValueMap{"terms": {Values: map[string]string{"14": "NET14"}}}},
			payload: `{"terms": "14"}`,
			want:    `{"terms":"NET14"}`,
		},
		{
			name:    "number value is looked up as its string",
			spec:    Spec{Fields: map[string]string{"terms": "source.terms"}, ValueMaps: map[string]ValueMap{"terms": {Values: map[string]string{"14": "NET14", "2.5": "half"}}}},
			payload: `{"terms": 14}`,
			want:    `{"terms":"NET14"}`,
		},
		{
			name:    "double value",
			spec:    Spec{Fields: map[string]string{"rate": "source.rate"}, ValueMaps: map[string]ValueMap{"rate": {Values: map[string]string{"2.5": "low"}}}},
			payload: `{"rate": 2.5}`,
			want:    `{"rate":"low"}`,
		},
		{
			name:    "bool value",
			spec:    Spec{Fields: map[string]string{"vat": "source.vat"}, ValueMaps: map[string]ValueMap{"vat": {Values: map[string]string{"true": "incl", "false": "excl"}}}},
			payload: `{"vat": false}`,
			want:    `{"vat":"excl"}`,
		},
		{
			name:    "unlisted value takes the fallback",
			spec:    Spec{Fields: map[string]string{"terms": "source.terms"}, ValueMaps: map[string]ValueMap{"terms": {Values: map[string]string{"14": "NET14"}, Fallback: &fallback}}},
			payload: `{"terms": "60"}`,
			want:    `{"terms":"NET30"}`,
		},
		{
			name:     "unlisted value without fallback is an error naming field and value",
			spec:     Spec{Fields: map[string]string{"terms": "source.terms"}, ValueMaps: map[string]ValueMap{"terms": {Values: map[string]string{"14": "NET14"}}}},
			payload:  `{"terms": "60"}`,
			wantPath: "valueMaps.terms",
			wantMsg:  `no mapping for value "60" of field "terms"; add it to valueMaps.terms.values or set a fallback`,
		},
		{
			name:     "list value is an error",
			spec:     Spec{Fields: map[string]string{"terms": "source.terms"}, ValueMaps: map[string]ValueMap{"terms": {Fallback: &fallback}}},
			payload:  `{"terms": ["14"]}`,
			wantPath: "valueMaps.terms",
			wantMsg:  `field "terms" holds a list or map`,
		},
		{
			name: "null is left for the default",
			spec: Spec{
				Fields:    map[string]string{"terms": "source.terms"},
				Defaults:  map[string]any{"terms": "NET30"},
				ValueMaps: map[string]ValueMap{"terms": {Values: map[string]string{"14": "NET14"}}},
			},
			payload: `{"terms": null}`,
			want:    `{"terms":"NET30"}`,
		},
		{
			name: "empty string is left for the default unless listed",
			spec: Spec{
				Fields:    map[string]string{"terms": "source.terms", "method": "source.method"},
				Defaults:  map[string]any{"terms": "NET30"},
				ValueMaps: map[string]ValueMap{"terms": {Values: map[string]string{"14": "NET14"}}, "method": {Values: map[string]string{"": "cash"}}},
			},
			payload: `{"terms": "", "method": ""}`,
			want:    `{"method":"cash","terms":"NET30"}`,
		},
		{
			name: "the default is a target value and is not translated",
			spec: Spec{
				Fields:    map[string]string{"terms": "source.?terms"},
				Defaults:  map[string]any{"terms": "NET30"},
				ValueMaps: map[string]ValueMap{"terms": {Values: map[string]string{"14": "NET14"}}},
			},
			payload: `{}`,
			want:    `{"terms":"NET30"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.spec)
			out, _, _, err := p.ApplyJSON([]byte(tt.payload))
			if tt.wantPath != "" {
				assertEvalError(t, err, tt.wantPath, tt.wantMsg)
				return
			}
			if err != nil {
				t.Fatalf("ApplyJSON: %v", err)
			}
			if string(out) != tt.want {
				t.Errorf("ApplyJSON = %s, want %s", out, tt.want)
			}
		})
	}
}

// assertEvalError checks that err is an *EvalError at path whose message contains msg.
func assertEvalError(t *testing.T, err error, path, msg string) {
	t.Helper()
	var ee *EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("error = %v (%T), want an *EvalError", err, err)
	}
	if ee.Path != path || !strings.Contains(ee.Message, msg) {
		t.Errorf("EvalError = {Path: %q, Message: %q}, want {%q, containing %q}", ee.Path, ee.Message, path, msg)
	}
}

func TestApplyJSONEvalErrors(t *testing.T) {
	const tenLoop = "[0,1,2,3,4,5,6,7,8,9]"
	tests := []struct {
		name    string
		spec    Spec
		payload string
		path    string
		msg     string
	}{
		{"missing key", Spec{Fields: map[string]string{"total": "source.total"}}, `{}`, "fields.total", "no such key: total"},
		{"division by zero", Spec{Fields: map[string]string{"avg": "source.sum / source.n"}}, `{"sum": 1, "n": 0}`, "fields.avg", "division by zero"},
		{"int times double", Spec{Fields: map[string]string{"total": "source.total * 1.21"}}, `{"total": 100}`, "fields.total", "no such overload"},
		{"infinite result", Spec{Fields: map[string]string{"r": "double(source.a) / 0.0"}}, `{"a": 1}`, "fields.r", "+Inf cannot be written as JSON"},
		{"NaN inside a list", Spec{Fields: map[string]string{"r": "[1.0, 0.0 / 0.0]"}}, `{}`, "fields.r", "list element 1: result NaN"},
		{"unsupported result type", Spec{Fields: map[string]string{"t": "type(source)"}}, `{}`, "fields.t", "cannot be written as JSON"},
		{"map key of type double", Spec{Fields: map[string]string{"m": "{1.5: 'x'}"}}, `{}`, "fields.m", "map key of type double"},
		{"uint beyond int64", Spec{Fields: map[string]string{"u": "18446744073709551615u"}}, `{}`, "fields.u", "above the int64 range"},
		{"filter on a missing key", Spec{Fields: map[string]string{"a": "1"}, Filter: "source.status == 'paid'"}, `{}`, "filter", "no such key: status"},
		{"dyn filter that is not bool", Spec{Fields: map[string]string{"a": "1"}, Filter: "source.status"}, `{"status": "paid"}`, "filter", "result is string, want bool"},
		{
			"runaway loop stops at the cost limit",
			Spec{Fields: map[string]string{"n": fmt.Sprintf("%[1]s.map(a, %[1]s.map(b, %[1]s.map(c, %[1]s.map(d, %[1]s.map(e, %[1]s.map(f, a+b+c+d+e+f))))))", tenLoop)}},
			`{}`, "fields.n", "cost limit exceeded",
		},
		{"dyn check that is not bool", Spec{Fields: map[string]string{"sku": "source.sku"}, Validations: []Rule{{Field: "sku", Check: "value"}}}, `{"sku": "1"}`, "validations[0].check", "result is string, want bool"},
		{"check on a missing field", Spec{Fields: map[string]string{"sku": "source.?sku"}, Validations: []Rule{{Field: "sku", Check: "value.matches('^[0-9]+$')"}}}, `{}`, "validations[0].check", `checking field "sku": no such overload; the field is null or missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.spec)
			out, skip, _, err := p.ApplyJSON([]byte(tt.payload))
			if out != nil || skip {
				t.Errorf("ApplyJSON returned output %s, skip %v with an error", out, skip)
			}
			assertEvalError(t, err, tt.path, tt.msg)
			_, err = p.Apply(decodeForTest(t, tt.payload))
			assertEvalError(t, err, tt.path, tt.msg)
		})
	}
}

func TestApplyJSONRefusesPayloads(t *testing.T) {
	p := mustCompile(t, Spec{Fields: map[string]string{"a": "source.?a"}})
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"array", `[{"a": 1}]`, "payload is a JSON array, want a JSON object"},
		{"string", `"a"`, "payload is a JSON string, want a JSON object"},
		{"number", `-1`, "payload is a JSON number, want a JSON object"},
		{"null", `null`, "payload is JSON null, want a JSON object"},
		{"boolean", ` true`, "payload is a JSON boolean, want a JSON object"},
		{"not JSON", `<order/>`, "payload is not JSON, want a JSON object"},
		{"empty", ``, "payload is empty, want a JSON object"},
		{"two objects", `{} {}`, "decoding payload at byte 3: unexpected data after the JSON object"},
		{"truncated", `{"a": [1, 2`, "decoding payload at byte 11: unexpected end of input in array"},
		{"trailing comma", `{"a": 1,}`, "decoding payload at byte 8: want a string key in object"},
		{"too deep", `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, "nested deeper than 512 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := p.ApplyJSON([]byte(tt.payload))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ApplyJSON error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestValidations(t *testing.T) {
	spec := Spec{
		Fields: map[string]string{"sku": "source.sku", "qty": "source.qty", "ean": "source.?ean"},
		Validations: []Rule{
			{Field: "sku", Check: "value.matches('^[0-9]+$')", Message: "SKU digits only"},
			{Field: "qty", Check: "value > 0 && value <= target.max", Message: "quantity out of range"},
			{Field: "ean", Check: "value == null || size(value) == 13"},
		},
		Defaults: map[string]any{"max": 100},
	}
	p := mustCompile(t, spec)
	tests := []struct {
		name    string
		payload string
		want    []ValidationError // nil: the record passes
	}{
		{"valid", `{"sku": "100200", "qty": 3, "ean": "8711234567890"}`, nil},
		{"missing optional field passes its check", `{"sku": "100200", "qty": 3}`, nil},
		{"one failure", `{"sku": "AB-1", "qty": 3}`, []ValidationError{{Field: "sku", Value: "AB-1", Message: "SKU digits only"}}},
		{"check reads the target record", `{"sku": "1", "qty": 101}`, []ValidationError{{Field: "qty", Value: int64(101), Message: "quantity out of range"}}},
		{
			"every failure is reported",
			`{"sku": "AB-1", "qty": 0, "ean": "123"}`,
			[]ValidationError{
				{Field: "sku", Value: "AB-1", Message: "SKU digits only"},
				{Field: "qty", Value: int64(0), Message: "quantity out of range"},
				{Field: "ean", Value: "123", Message: `check "value == null || size(value) == 13" is false`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, _, err := p.ApplyJSON([]byte(tt.payload))
			_, applyErr := p.Apply(decodeForTest(t, tt.payload))
			for _, err := range []error{err, applyErr} {
				got := validationErrors(err)
				if len(got) != len(tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("error = %v, want %d validation errors", err, len(tt.want))
				}
				for i := range tt.want {
					if !reflect.DeepEqual(*got[i], tt.want[i]) {
						t.Errorf("validation error %d = %+v, want %+v", i, *got[i], tt.want[i])
					}
				}
			}
			if (out == nil) != (tt.want != nil) {
				t.Errorf("ApplyJSON output = %s with %d validation failures", out, len(tt.want))
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	missing := mustCompile(t, Spec{Fields: map[string]string{"total": "source.total"}})
	_, _, _, evalErr := missing.ApplyJSON([]byte(`{"sum": 1}`))
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"eval error names the field and the CEL error", evalErr, "fields.total: no such key: total"},
		{
			"validation error names the field but leaves the value out of the log",
			&ValidationError{Field: "email", Value: "jane@example.com", Message: "must be a company address"},
			`validation failed for field "email": must be a company address`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || tt.err.Error() != tt.want {
				t.Errorf("error = %v, want %s", tt.err, tt.want)
			}
		})
	}
}

func validationErrors(err error) []*ValidationError {
	var errs []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var out []*ValidationError
	for _, e := range errs {
		var ve *ValidationError
		if errors.As(e, &ve) {
			out = append(out, ve)
		}
	}
	return out
}

// decodeForTest decodes a payload the way a caller of Apply would: with encoding/json.
func decodeForTest(t *testing.T, payload string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		t.Fatalf("decoding test payload: %v", err)
	}
	return m
}

func TestApply(t *testing.T) {
	p := mustCompile(t, Spec{
		Fields:   map[string]string{"qty": "source.qty * 2", "price": "source.price", "big": "source.big", "tags": "source.tags"},
		Defaults: map[string]any{"employeeNumber": 999999},
	})
	tests := []struct {
		name   string
		source map[string]any
		want   map[string]any
	}{
		{
			name:   "encoding/json numbers: integral floats read as int",
			source: map[string]any{"qty": 3.0, "price": 2.5, "big": 1e20, "tags": []any{1.0, "a"}},
			want:   map[string]any{"qty": int64(6), "price": 2.5, "big": 1e20, "tags": []any{int64(1), "a"}, "employeeNumber": int64(999999)},
		},
		{
			name:   "json.Number follows the text",
			source: map[string]any{"qty": json.Number("3"), "price": json.Number("2.0"), "big": json.Number("12345678901234567890"), "tags": nil},
			want:   map[string]any{"qty": int64(6), "price": 2.0, "big": 12345678901234567890.0, "tags": nil, "employeeNumber": int64(999999)},
		},
		{
			name:   "Go integer types",
			source: map[string]any{"qty": int32(3), "price": uint8(2), "big": uint64(7), "tags": []any{int16(1)}},
			want:   map[string]any{"qty": int64(6), "price": int64(2), "big": int64(7), "tags": []any{int64(1)}, "employeeNumber": int64(999999)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := p.Apply(tt.source)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if res.Skipped || !reflect.DeepEqual(res.Record, tt.want) {
				t.Errorf("Apply = %#v, want record %#v", res, tt.want)
			}
		})
	}
}

func TestApplyRefusesUnsupportedSource(t *testing.T) {
	p := mustCompile(t, Spec{Fields: map[string]string{"a": "source.a"}})
	tests := []struct {
		name   string
		source map[string]any
		path   string
		msg    string
	}{
		{"struct deep inside", map[string]any{"a": map[string]any{"lines": []any{1, struct{}{}}}}, "source.a.lines[1]", "unsupported value of Go type struct {}"},
		{"NaN", map[string]any{"a": math.NaN()}, "source.a", "cannot be written as JSON"},
		{"uint64 beyond int64", map[string]any{"a": uint64(1 << 63)}, "source.a", "above the int64 range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Apply(tt.source)
			assertEvalError(t, err, tt.path, tt.msg)
		})
	}
}

// TestApplyMatchesApplyJSON proves the two entry points agree: a record decoded with
// encoding/json and mapped with Apply encodes to the same bytes ApplyJSON writes.
func TestApplyMatchesApplyJSON(t *testing.T) {
	payload, err := os.ReadFile("testdata/order.json")
	if err != nil {
		t.Fatal(err)
	}
	p := mustCompile(t, orderSpec())
	want, _, _, err := p.ApplyJSON(payload)
	if err != nil {
		t.Fatalf("ApplyJSON: %v", err)
	}
	res, err := p.Apply(decodeForTest(t, string(payload)))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got, err := appendJSON(nil, res.Record)
	if err != nil {
		t.Fatalf("encoding Apply's record: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Apply record encodes to\n%s\nApplyJSON wrote\n%s", got, want)
	}
	const wantOrder = `{"companyName":"Doe Trading B.V.","debtorEmail":"jane.doe@example.com","debtorName":"Jane Doe",` +
		`"employeeNumber":999999,"externalReference":"100234","lines":[` +
		`{"quantity":6,"sku":"100200300","unitPrice":7.5,"vatCode":"high"},` +
		`{"quantity":6,"sku":"100200301","unitPrice":4.25,"vatCode":"high"},` +
		`{"quantity":3,"sku":"100200777","unitPrice":24.5,"vatCode":"low"},` +
		`{"quantity":1,"sku":"100200901","unitPrice":40,"vatCode":"zero"}],` +
		`"orderDate":"2024-05-17T09:41:27Z","orderNumber":"SO-2024-100234","paymentTerms":"NET14",` +
		`"shippingCost":4.95,"totalInclVat":223.4}`
	if string(want) != wantOrder {
		t.Errorf("ApplyJSON(order) =\n%s\nwant\n%s", want, wantOrder)
	}
}

// TestApplyJSONDeterministic proves that the output depends on the record, not on the order
// of keys in the payload or on Go's map iteration order.
func TestApplyJSONDeterministic(t *testing.T) {
	p := mustCompile(t, Spec{Fields: map[string]string{
		"customer": "source.customer",
		"lines":    "source.lines.map(l, {'sku': l.sku, 'qty': l.qty, 'attrs': l.attrs})",
		"meta":     "{'z': 1, 'a': 2, 'm': {'y': source.customer.name, 'b': 3}}",
	}})
	payloads := []string{
		`{"customer": {"name": "Jane", "email": "j@x.nl", "address": {"city": "Ede", "street": "Markt 1"}}, "lines": [{"sku": "1", "qty": 2, "attrs": {"size": "L", "colour": "red"}}]}`,
		`{"lines": [{"attrs": {"colour": "red", "size": "L"}, "qty": 2, "sku": "1"}], "customer": {"address": {"street": "Markt 1", "city": "Ede"}, "email": "j@x.nl", "name": "Jane"}}`,
		`{"customer": {"email": "j@x.nl", "address": {"street": "Markt 1", "city": "Ede"}, "name": "Jane"}, "lines": [{"qty": 2, "sku": "1", "attrs": {"size": "L", "colour": "red"}}]}`,
	}
	var first []byte
	for i, payload := range payloads {
		for range 20 {
			out, _, _, err := p.ApplyJSON([]byte(payload))
			if err != nil {
				t.Fatalf("ApplyJSON(payload %d): %v", i, err)
			}
			if first == nil {
				first = out
			}
			if !bytes.Equal(out, first) {
				t.Fatalf("payload %d gave\n%s\nwant\n%s", i, out, first)
			}
		}
	}
	// encoding/json sorts map keys too; its output must match byte for byte.
	var v any
	if err := json.Unmarshal(first, &v); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if got := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, first) {
		t.Errorf("encoding/json writes\n%s\nApplyJSON wrote\n%s", got, first)
	}
}

// TestApplyJSONConcurrent runs one Program from many goroutines; run with -race.
func TestApplyJSONConcurrent(t *testing.T) {
	payload, err := os.ReadFile("testdata/order.json")
	if err != nil {
		t.Fatal(err)
	}
	p := mustCompile(t, orderSpec())
	want, _, _, err := p.ApplyJSON(payload)
	if err != nil {
		t.Fatalf("ApplyJSON: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				out, _, _, err := p.ApplyJSON(payload)
				if err != nil || !bytes.Equal(out, want) {
					errs <- fmt.Errorf("ApplyJSON = %s, %v", out, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
