package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// FuzzApplyJSON feeds arbitrary payloads to the order mapping. Whatever arrives on the bus,
// ApplyJSON must return (never panic), and what it writes must be JSON and the same every
// time.
func FuzzApplyJSON(f *testing.F) {
	order, err := os.ReadFile("testdata/order.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		order, []byte(`{}`), []byte(`{"status": "paid"}`), []byte(`[]`), []byte(`null`), []byte(``),
		[]byte(`{"status": "paid", "number": 1, "id": "x", "createdAt": "yesterday", "lines": {}}`),
		[]byte(`{"status": "shipped", "customer": {"email": null}, "lines": [null]}`),
		[]byte(`{"a": [[[[[[[[]]]]]]]], "b": "\ud800", "c": 1e999}`),
	} {
		f.Add(seed)
	}
	p, err := Compile(orderSpec())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, skip, reason, err := p.ApplyJSON(payload)
		switch {
		case err != nil:
			if out != nil || skip {
				t.Fatalf("error %v came with output %q, skip %v", err, out, skip)
			}
		case skip:
			if out != nil || reason == "" {
				t.Fatalf("skip came with output %q, reason %q", out, reason)
			}
		default:
			if !json.Valid(out) {
				t.Fatalf("output %q is not JSON", out)
			}
			again, _, _, err := p.ApplyJSON(payload)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("second run gave %q, %v; first %q", again, err, out)
			}
		}
	})
}

// FuzzCompile feeds arbitrary expressions to Compile, as a field, the filter and a check.
// Whatever a user applies, Compile returns (never panics): a *CompileError for each
// problem, or a Program that maps a record within the cost limits, returning a record no
// larger than MaxRecordSize or an *EvalError. The seed corpus is in
// testdata/fuzz/FuzzCompile: everyday expressions, and those that once crashed the mapper or
// stalled it (a chain of replace calls, nested loops).
func FuzzCompile(f *testing.F) {
	order, err := os.ReadFile("testdata/order.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("source.number", "source.status == 'paid'", "value != ''")
	f.Fuzz(func(t *testing.T, field, filter, check string) {
		spec := Spec{
			Fields:      map[string]string{"x": field},
			Filter:      filter,
			Validations: []Rule{{Field: "x", Check: check}},
		}
		p, err := Compile(spec)
		if err != nil {
			var joined interface{ Unwrap() []error }
			errs := []error{err}
			if errors.As(err, &joined) {
				errs = joined.Unwrap()
			}
			for _, e := range errs {
				var ce *CompileError
				if !errors.As(e, &ce) || ce.Path == "" || ce.Message == "" {
					t.Fatalf("Compile error %v (%T) is not a *CompileError naming its part", e, e)
				}
			}
			return
		}
		out, _, _, err := p.ApplyJSON(order)
		var ee *EvalError
		var ve *ValidationError
		switch {
		case err == nil:
			if len(out) > MaxRecordSize {
				t.Fatalf("mapped record is %d bytes, above MaxRecordSize", len(out))
			}
		case !errors.As(err, &ee) && !errors.As(err, &ve):
			t.Fatalf("ApplyJSON error %v (%T) is neither an *EvalError nor a *ValidationError", err, err)
		}
	})
}
