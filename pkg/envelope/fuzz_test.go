package envelope_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/mapping"
)

// FuzzDecode feeds arbitrary bytes to Decode, as anyone may publish to an
// ingest subject (seeds in testdata/fuzz/FuzzDecode). It must return (never
// panic); what it accepts must pass Check and survive encoding again
// unchanged.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := envelope.Decode(data)
		if err != nil {
			if e != nil {
				t.Fatalf("Decode returned %v with error %v", e, err)
			}
			return
		}
		if err := envelope.Check(e); err != nil {
			t.Fatalf("Decode accepted an envelope Check refuses: %v", err)
		}
		again, err := envelope.Encode(e)
		if err != nil {
			t.Fatalf("encoding a decoded envelope: %v", err)
		}
		e2, err := envelope.Decode(again)
		if err != nil || !proto.Equal(e, e2) {
			t.Fatalf("envelope changed on the way round: %v, %v", e2, err)
		}
	})
}

// FuzzCheckRecord feeds arbitrary records to CheckRecord (seeds in
// testdata/fuzz/FuzzCheckRecord). It must return
// (never panic), refuse with ErrInvalidPayload and a position or size, and
// every record it accepts must pass the mapping with every value and every
// digit of every number as it was: that is the promise it keeps.
func FuzzCheckRecord(f *testing.F) {
	pass, err := mapping.Compile(mapping.Spec{Fields: map[string]string{"r": "source"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, record []byte) {
		err := envelope.CheckRecord(record)
		if err != nil {
			msg := err.Error()
			if !errors.Is(err, envelope.ErrInvalidPayload) || !(strings.Contains(msg, "line ") || strings.Contains(msg, "empty") || strings.Contains(msg, "not a JSON object: it is ") || strings.Contains(msg, "bytes, more than")) {
				t.Fatalf("CheckRecord(%q) = %v: want ErrInvalidPayload saying where", record, err)
			}
			return
		}
		if !json.Valid(record) || !utf8.Valid(record) || bytes.TrimLeft(record, " \t\r\n")[0] != '{' {
			t.Fatalf("CheckRecord accepted %q, which is not a UTF-8 JSON object", record)
		}
		out, skip, _, err := pass.ApplyJSON(record)
		if err != nil || skip {
			t.Fatalf("the mapping refused %q, which CheckRecord accepted: %v (skip %v)", record, err, skip)
		}
		var in, mapped map[string]any
		if err := decode(record, &in); err != nil {
			t.Fatal(err)
		}
		if err := decode(out, &mapped); err != nil {
			t.Fatalf("mapping output %q: %v", out, err)
		}
		if !sameJSON(in, mapped["r"]) {
			t.Fatalf("the mapping changed %q into %q", record, out)
		}
	})
}

func decode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// sameJSON compares decoded JSON values, numbers by their exact value.
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, okx := new(big.Rat).SetString(string(a))
		y, oky := new(big.Rat).SetString(string(b))
		return okx && oky && x.Cmp(y) == 0
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if !sameJSON(v, b[k]) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
