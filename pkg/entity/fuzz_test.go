package entity_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/syncline/syncline/pkg/entity"
)

// FuzzCheck feeds arbitrary records to Check as each entity: it never
// panics, a JSON object is accepted or refused with at least one problem
// that names what is wrong, and anything else is a plain error.
func FuzzCheck(f *testing.F) {
	for _, records := range valid {
		for _, r := range records {
			f.Add([]byte(r))
		}
	}
	for _, seed := range []string{
		`{}`, `null`, `[]`, `"x"`, `{"sku":`, `{"variants":[{"sku":1},null,[]]}`,
		`{"billing_address":{"country":"de"},"shipping_address":[]}`,
		`{"categories":[["A / B"],[],"x",null]}`, `{"parent":["a",1,null]}`,
		`{"ean":"00000000000000","price":-1e400,"on_hand":1e400}`,
		`{"attributes":{"":null,"a.b":{"c":1}},"features":{"x":true}}`,
		`{"lines":[{"quantity":-1},null,{"sku":""}],"customer":{"email":null},"type":"quote","ordered_at":"x"}`,
		`{"document_type":"write-off","party":{"name":null},"taxes":[{}],"amount":0,"kind":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var obj map[string]any
		isObject := json.Unmarshal(payload, &obj) == nil && obj != nil
		for _, name := range entity.Names() {
			err := entity.Check(name, payload)
			var refused *entity.Error
			switch {
			case err == nil:
				if !isObject {
					t.Fatalf("Check(%s) accepted %q, which is not a JSON object", name, payload)
				}
			case errors.As(err, &refused):
				if len(refused.Problems) == 0 || refused.Entity != name {
					t.Fatalf("Check(%s, %q) = %#v: a refusal without problems", name, payload, refused)
				}
				for _, p := range refused.Problems {
					if p.Message == "" {
						t.Fatalf("Check(%s, %q): problem at %q has no message", name, payload, p.Path)
					}
				}
			case isObject:
				t.Fatalf("Check(%s, %q) = %v: a JSON object is accepted or refused, not an error", name, payload, err)
			}
		}
	})
}
