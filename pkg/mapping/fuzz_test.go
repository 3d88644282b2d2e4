package mapping

import (
	"bytes"
	"encoding/json"
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
