package mapping

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// orderSpec is a realistic order mapping: ten field expressions, a filter, a value map, a
// default and a validation, over testdata/order.json (a 1 KiB webshop order).
func orderSpec() Spec {
	return Spec{
		Fields: map[string]string{
			"orderNumber":       `source.number`,
			"externalReference": `string(source.id)`,
			"orderDate":         `timestamp(source.createdAt)`,
			"debtorEmail":       `source.customer.email.lowerAscii()`,
			"debtorName":        `source.customer.firstName + ' ' + source.customer.lastName`,
			"companyName":       `source.customer.?company.orValue('')`,
			"totalInclVat":      `double(source.total)`,
			"shippingCost":      `double(source.shipping)`,
			"paymentTerms":      `source.paymentTerms`,
			"lines":             `source.lines.map(l, {'sku': l.sku, 'quantity': l.qty, 'unitPrice': double(l.price), 'vatCode': l.taxCode})`,
			"employeeNumber":    `source.?employeeNumber.orValue(null)`,
		},
		Filter:   `source.status in ['paid', 'shipped']`,
		Defaults: map[string]any{"employeeNumber": 999999},
		ValueMaps: map[string]ValueMap{
			"paymentTerms": {Values: map[string]string{"14": "NET14", "30": "NET30"}},
		},
		Validations: []Rule{{Field: "debtorEmail", Check: `value.contains('@')`, Message: "debtor needs an e-mail address"}},
	}
}

// BenchmarkApplyJSON maps the order with the field reads answered by
// selectors (as Compile makes them) and with CEL alone, for the ratio.
func BenchmarkApplyJSON(b *testing.B) {
	payload, err := os.ReadFile("testdata/order.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		cel  bool
	}{{"selectors", false}, {"cel", true}} {
		b.Run(mode.name, func(b *testing.B) {
			noSelectors = mode.cel
			p, err := Compile(orderSpec())
			noSelectors = false
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, skip, _, err := p.ApplyJSON(payload); err != nil || skip {
					b.Fatalf("ApplyJSON: skip %v, err %v", skip, err)
				}
			}
		})
	}
}

// BenchmarkDecode compares the payload decoder with encoding/json, which it replaces on the
// hot path (encoding/json also needs a pass over json.Number values to produce int64).
func BenchmarkDecode(b *testing.B) {
	payload, err := os.ReadFile("testdata/order.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decodeObject", func(b *testing.B) {
		st := new(stacks)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeObject(payload, st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(payload))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				b.Fatal(err)
			}
			if _, verr := normalize(m); verr != nil {
				b.Fatal(verr.msg)
			}
		}
	})
}

// BenchmarkCompile measures what applying a flow (or reloading it in the mapper) costs.
func BenchmarkCompile(b *testing.B) {
	spec := orderSpec()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(spec); err != nil {
			b.Fatal(err)
		}
	}
}
