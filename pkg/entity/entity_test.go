package entity_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/syncline/syncline/pkg/entity"
)

// documentTypes are the entities that share the document schema.
var documentTypes = []string{"bank-document", "cash-document", "customer-payment", "goods-receipt", "internal-transfer",
	"inventory-count", "order-return", "purchase", "supplier-return", "write-off"}

func TestNames(t *testing.T) {
	want := append([]string{"category", "customer", "invoice", "order", "payment", "product", "stock"}, documentTypes...)
	slices.Sort(want)
	if got := entity.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, n := range want {
		if !entity.Has(n) {
			t.Errorf("Has(%q) = false", n)
		}
	}
	// The shared schema is not an entity: a flow names a document type.
	for _, n := range []string{"spaceship", "document"} {
		if entity.Has(n) {
			t.Errorf("Has(%q) = true", n)
		}
	}
	if got := entity.DocumentTypes(); !slices.Equal(got, documentTypes) {
		t.Errorf("DocumentTypes() = %v, want %v", got, documentTypes)
	}
	for _, n := range documentTypes {
		if !entity.IsDocumentType(n) {
			t.Errorf("IsDocumentType(%q) = false", n)
		}
	}
	for _, n := range []string{"order", "invoice", "customer", "document", "spaceship"} {
		if entity.IsDocumentType(n) {
			t.Errorf("IsDocumentType(%q) = true", n)
		}
	}
}

// TestDocumentTypesShareTheDocumentSchema: each document type is checked
// against the one document schema, and a record that names another type
// in document_type is refused, naming the field and not the value.
func TestDocumentTypesShareTheDocumentSchema(t *testing.T) {
	shared, _ := entity.Schema("goods-receipt")
	if !bytes.Contains(shared, []byte(`"$id": "https://syncline.dev/schemas/v1/entity/document.schema.json"`)) {
		t.Fatalf("Schema(goods-receipt) is not the document schema:\n%s", shared)
	}
	for _, name := range documentTypes {
		if s, _ := entity.Schema(name); !bytes.Equal(s, shared) {
			t.Errorf("Schema(%s) is not the document schema", name)
		}
		for _, record := range []string{
			`{"number":"D-1"}`,
			`{"number":"D-1","document_type":null}`,
			`{"number":"D-1","document_type":"` + name + `","lines":[{"sku":"A","quantity":1}]}`,
		} {
			if err := entity.Check(name, []byte(record)); err != nil {
				t.Errorf("Check(%s, %s) = %v", name, record, err)
			}
		}
		other := "write-off"
		if name == other {
			other = "purchase"
		}
		err := entity.Check(name, []byte(`{"number":"D-1","document_type":"`+other+`"}`))
		var refused *entity.Error
		if !errors.As(err, &refused) || len(refused.Problems) != 1 || refused.Problems[0].Path != "document_type" || refused.Entity != name {
			t.Fatalf("Check(%s) of a %s = %v, want a refusal of document_type", name, other, err)
		}
		if want := "document_type: is another document type than the flow's entity " + name + ": "; !strings.HasPrefix(refused.Problems[0].String(), want) {
			t.Errorf("problem = %q, want it to start with %q", refused.Problems[0], want)
		}
		if strings.Contains(err.Error(), other) || refused.Problems[0].Value != other {
			t.Errorf("Error() = %q quotes the value, or Value = %v is not it", err, refused.Problems[0].Value)
		}
	}
	// A type the schema does not know is the schema's refusal, once; and
	// the document_type problem joins the schema's.
	err := entity.Check("purchase", []byte(`{"document_type":"sales_order"}`))
	if err == nil || !strings.Contains(err.Error(), `document_type: must be one of "order-return", "goods-receipt"`) || strings.Count(err.Error(), "document_type") != 1 {
		t.Errorf("Check of an unknown document type = %v", err)
	}
	err = entity.Check("purchase", []byte(`{"document_type":"write-off"}`))
	var refused *entity.Error
	if !errors.As(err, &refused) || len(refused.Problems) != 2 || refused.Problems[0].Path != "document_type" || refused.Problems[1].Path != "number" {
		t.Errorf("Check without a number and of another type = %v, want both problems, sorted", err)
	}
}

// TestSchemasDescribeEveryField: the schemas are the documentation, so a
// field without a description is a hole in it.
func TestSchemasDescribeEveryField(t *testing.T) {
	for _, name := range entity.Names() {
		src, ok := entity.Schema(name)
		if !ok {
			t.Fatalf("Schema(%q): not found", name)
		}
		var doc map[string]any
		if err := json.Unmarshal(src, &doc); err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("schema %s: $schema = %v, want draft 2020-12", name, doc["$schema"])
		}
		title := name
		if slices.Contains(documentTypes, name) {
			title = "document"
		}
		if doc["title"] != title {
			t.Errorf("schema %s: title = %v, want %q", name, doc["title"], title)
		}
		var walk func(path string, n map[string]any)
		walk = func(path string, n map[string]any) {
			// A bare $ref is described by what it refers to, which the
			// walk of $defs checks.
			_, isRef := n["$ref"]
			if d, _ := n["description"].(string); strings.TrimSpace(d) == "" && !(isRef && len(n) == 1) {
				t.Errorf("schema %s: %s has no description", name, path)
			}
			props, _ := n["properties"].(map[string]any)
			for k, v := range props {
				walk(path+".properties."+k, v.(map[string]any))
			}
			defs, _ := n["$defs"].(map[string]any)
			for k, v := range defs {
				walk(path+".$defs."+k, v.(map[string]any))
			}
			for _, key := range []string{"items", "additionalProperties"} {
				if sub, ok := n[key].(map[string]any); ok {
					walk(path+"."+key, sub)
				}
			}
		}
		walk(name, doc)
	}
	if _, ok := entity.Schema("spaceship"); ok {
		t.Error(`Schema("spaceship") found a schema`)
	}
}

// TestSchemaIsACopy: a caller that changes the bytes it got changes no
// other caller's.
func TestSchemaIsACopy(t *testing.T) {
	a, _ := entity.Schema("customer")
	a[0] = 'X'
	b, _ := entity.Schema("customer")
	if b[0] != '{' {
		t.Fatal("Schema returned the package's own bytes")
	}
}

// TestReferenceIsCurrent fails when the committed reference page differs
// from what the schemas render: run `go generate ./pkg/entity` and commit.
func TestReferenceIsCurrent(t *testing.T) {
	committed, err := os.ReadFile("entities.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, entity.Reference()) {
		t.Fatal("entities.md is not what the schemas render: run `go generate ./pkg/entity` and commit the result")
	}
	for _, name := range entity.Names() {
		section := name
		if slices.Contains(documentTypes, name) {
			section = "document"
			if !bytes.Contains(committed, []byte("`"+name+"`")) {
				t.Errorf("entities.md does not name the document type %s", name)
			}
		}
		if !bytes.Contains(committed, []byte("\n## "+section+"\n")) {
			t.Errorf("entities.md has no section for %s", name)
		}
	}
}

// TestReferenceExamplesPass: every example record the reference shows is
// a record Check accepts.
func TestReferenceExamplesPass(t *testing.T) {
	ref := string(entity.Reference())
	sections := strings.Split(ref, "\n## ")[1:]
	// One section per schema: the document types share one.
	if want := len(entity.Names()) - len(documentTypes) + 1; len(sections) != want {
		t.Fatalf("the reference has %d sections, want %d", len(sections), want)
	}
	for _, s := range sections {
		name, _, _ := strings.Cut(s, "\n")
		if name == "document" {
			name = "goods-receipt" // the example's document_type
		}
		_, rest, ok := strings.Cut(s, "```json\n")
		example, _, ok2 := strings.Cut(rest, "```")
		if !ok || !ok2 {
			t.Fatalf("section %s has no example", name)
		}
		if err := entity.Check(name, []byte(example)); err != nil {
			t.Errorf("the reference's %s example is refused: %v\n%s", name, err, example)
		}
	}
}

// valid records, the smallest and a full one per entity.
var valid = map[string][]string{
	"customer": {
		`{"email":"ann@example.com","name":"Ann"}`,
		`{"email":"Ann.Smith+shop@Example.co.uk","name":"Ann Smith","company":"","phone":null,"tax_id":null,"billing_address":null}`,
		`{"email":"ann@example.com","name":"Ann","company":"Ann BV","phone":"+31 20 555 0101","tax_id":"NL001234567B01",
		  "billing_address":{"street":"Kerkstraat","house_number":"41-2","postcode":"1017 GB","city":"Amsterdam","country":"NL"},
		  "shipping_address":{"name":"Ann BV, warehouse","street":"Havenweg 3","postcode":"3011","city":"Rotterdam","country":"NL","house_number":null},
		  "loyalty_tier":"gold"}`,
	},
	"product": {
		`{"sku":"100200","name":"Cup","price":0}`,
		`{"sku":"100200","name":"Cup","price":7.5,"price_includes_tax":null,"currency":null,"ean":null,"variants":[],"categories":null}`,
		`{"sku":"TS-100","name":"T-shirt","price":19,"price_includes_tax":true,"currency":"EUR","ean":"96385074","unit":"u",
		  "description":"<p>Soft</p>","short_description":"Soft","attributes":{"material":"cotton"},"features":{"weight_g":180,"origin":"PT"},
		  "categories":[["Clothing","T-Shirts"],["Sale"]],
		  "variants":[{"sku":"TS-100-M","attributes":{"size":"M"},"price":21.5,"ean":"4006381333931"},{"sku":"TS-100-L"}]}`,
	},
	"category": {
		`{"name":"Clothing"}`,
		`{"name":"Clothing","parent":[]}`,
		`{"name":"T-Shirts","parent":["Clothing","Men"]}`,
		`{"name":"Tops/Shirts","parent":null}`,
	},
	"stock": {
		`{"sku":"TS-100-M","on_hand":0}`,
		`{"sku":"TS-100-M","on_hand":12.5,"reserved":2,"available":-1,"warehouse":"WH1"}`,
		`{"sku":"TS-100-M","on_hand":3,"reserved":null,"available":null,"warehouse":null}`,
	},
}

func init() {
	valid["order"] = []string{
		`{"number":"SO-1","lines":[{"sku":"A","quantity":1,"price":0}]}`,
		`{"number":"SO-1","type":null,"status":null,"currency":null,"ordered_at":null,"customer":null,"billing_address":null,"shipping_address":null,
		  "payment_term":null,"payment_method":null,"employee_number":null,"totals":null,"note":null,
		  "lines":[{"sku":"A","quantity":0.5,"price":-5,"tax_rate":null,"description":null}]}`,
		`{"number":"SO-2026-1001","type":"invoice","status":"processing","currency":"EUR","ordered_at":"2026-12-01T09:30:00+01:00",
		  "customer":{"email":"jane@doe.example","name":"Jane Doe","company":"Doe Trading GmbH","phone":"+49 30 1234567","tax_id":"DE123456789"},
		  "billing_address":{"street":"Friedrichstraße","house_number":"123a","postcode":"10117","city":"Berlin","country":"DE"},
		  "shipping_address":{"name":"Goods In","street":"Hafenweg 3","postcode":"20457","city":"Hamburg","country":"DE"},
		  "payment_term":"14 days","payment_method":"paypal","employee_number":"999999",
		  "lines":[{"sku":"TS-100-M","quantity":2,"price":19.95,"tax_rate":19,"description":"T-shirt, M"},{"sku":"SHIP","quantity":1,"price":4.9,"tax_rate":0}],
		  "totals":{"net":44.8,"tax":7.58,"gross":52.38},"note":"Ring twice","channel":"web"}`,
	}
	valid["invoice"] = []string{
		`{"number":"INV-1"}`,
		`{"number":"INV-1","kind":null,"party":null,"date":null,"due_date":null,"currency":null,"reference":null,"lines":null,"taxes":null,"totals":null}`,
		`{"number":"BILL-77","kind":"purchase","party":{"name":"Supplies Ltd","email":null,"tax_id":"GB123456789"},"date":"2026-12-01","due_date":"2026-12-31",
		  "currency":"GBP","reference":"PO-31","lines":[{"description":"Consulting","quantity":3,"price":120,"tax_rate":20},{"sku":"A","quantity":-1,"price":5}],
		  "taxes":[{"rate":20,"base":355,"amount":71},{"rate":0,"amount":0}],"totals":{"net":355,"tax":71,"gross":426}}`,
	}
	valid["payment"] = []string{
		`{"reference":"PAY-1","amount":0.01,"currency":"EUR"}`,
		`{"reference":"PAY-1","amount":10,"currency":"EUR","kind":null,"date":null,"invoice":null,"party":null}`,
		`{"reference":"PAY-2","kind":"payment","amount":426,"currency":"GBP","date":"2026-12-20","invoice":"BILL-77","party":{"name":"Supplies Ltd"}}`,
	}
	valid["goods-receipt"] = []string{
		`{"number":"GR-1"}`,
		`{"number":"GR-1","document_type":"goods-receipt","date":"2026-12-02","party":{"name":"Supplies Ltd","email":"sales@supplies.example"},
		  "currency":"EUR","amount":null,"lines":[{"sku":"A","quantity":24,"price":8.4,"description":"T-shirt"},{"description":"Freight"}],
		  "reference":"PO-31","note":"Two boxes damaged"}`,
	}
	valid["bank-document"] = []string{
		`{"number":"BANK-2026-12-03","document_type":"bank-document","date":"2026-12-03","currency":"EUR","amount":-250,"lines":[]}`,
	}
}

func TestCheckAcceptsCanonicalRecords(t *testing.T) {
	for name, records := range valid {
		for _, r := range records {
			if err := entity.Check(name, []byte(r)); err != nil {
				t.Errorf("Check(%s, %s) = %v", name, r, err)
			}
		}
	}
}

func TestCheckRefusesNamingTheField(t *testing.T) {
	tests := []struct {
		name, entity, record string
		// want is every problem, "path: message" with the message's start.
		want []string
	}{
		{"missing required fields", "customer", `{"name":"Ann"}`,
			[]string{"email: required but missing (The customer's e-mail address (one @, a domain with a dot, no spaces)): map it in the flow's mapping"}},
		{"nested required field", "customer", `{"email":"a@b.nl","name":"Ann","billing_address":{"street":"Kerkstraat","postcode":"1017","city":"Amsterdam"}}`,
			[]string{`billing_address.country: required but missing (The country as an ISO 3166-1 alpha-2 code in upper case, e.g. "DE"): map it in the flow's mapping`}},
		{"null in a required field", "customer", `{"email":"a@b.nl","name":null}`,
			[]string{"name: required but null ("}},
		{"empty required text", "customer", `{"email":"a@b.nl","name":""}`,
			[]string{"name: must not be empty ("}},
		{"wrong format", "customer", `{"email":"ann at example","name":"Ann","shipping_address":{"street":"s","postcode":"1","city":"c","country":"Germany"}}`,
			[]string{"email: does not fit (The customer's e-mail address", "shipping_address.country: does not fit ("}},
		{"wrong type", "product", `{"sku":"1","name":"Cup","price":"7.50"}`,
			[]string{"price: must be a number, not text: convert it in the flow's mapping with double(…)"}},
		{"integer sku", "stock", `{"sku":100200,"on_hand":1}`,
			[]string{"sku: must be text, not a number: convert it in the flow's mapping with string(…)"}},
		{"negative", "stock", `{"sku":"1","on_hand":-1,"reserved":-0.5}`,
			[]string{"on_hand: must be at least 0 (", "reserved: must be at least 0 ("}},
		{"bad check digit", "product", `{"sku":"1","name":"Cup","price":1,"ean":"4006381333932"}`,
			[]string{"ean: not a valid EAN/GTIN: the check digit should be 1 ("}},
		{"ean of letters", "product", `{"sku":"1","name":"Cup","price":1,"ean":"ABC"}`,
			[]string{"ean: does not fit ("}},
		{"variant without a sku", "product", `{"sku":"T","name":"T","price":1,"variants":[{"sku":"T-S"},{"attributes":{"size":"M"}}]}`,
			[]string{"variants[1].sku: required but missing (The variant's full SKU): map it in the flow's mapping"}},
		{"attribute that is not text", "product", `{"sku":"T","name":"T","price":1,"attributes":{"size":42}}`,
			[]string{"attributes.size: must be text, not a number"}},
		{"category path as one string", "product", `{"sku":"T","name":"T","price":1,"categories":["Clothing / T-Shirts"]}`,
			[]string{"categories[0]: must be a list, not text"}},
		{"empty category path", "product", `{"sku":"T","name":"T","price":1,"categories":[[]]}`,
			[]string{"categories[0]: must not be empty (One category path: names from the top level down): map it"}},
		{"separator in a category name", "category", `{"name":"Clothing / T-Shirts","parent":["A / B"]}`,
			[]string{`name: must not contain " / "`, `parent[0]: must not contain " / "`}},
		{"parent as a string", "category", `{"name":"T-Shirts","parent":"Clothing"}`,
			[]string{"parent: must be a list, not text: map it to a list in the flow's mapping"}},
		{"everything missing", "product", `{}`,
			[]string{"name: required but missing", "price: required but missing", "sku: required but missing"}},
		{"order without a number", "order", `{"lines":[{"sku":"A","quantity":1,"price":1}]}`,
			[]string{"number: required but missing (The order's number in the source, as the customer sees it): map it in the flow's mapping"}},
		{"order without lines", "order", `{"number":"SO-1"}`,
			[]string{"lines: required but missing (The order's lines, at least one, in the source's order): map it in the flow's mapping"}},
		{"order with no lines", "order", `{"number":"SO-1","lines":[]}`,
			[]string{"lines: must not be empty (The order's lines, at least one, in the source's order): map it in the flow's mapping"}},
		{"order line without a sku", "order", `{"number":"SO-1","lines":[{"sku":"A","quantity":1,"price":1},{"quantity":1,"price":1}]}`,
			[]string{"lines[1].sku: required but missing (The SKU of the product variant (of the product, when it has no variants)): map it in the flow's mapping"}},
		{"negative quantity", "order", `{"number":"SO-1","lines":[{"sku":"A","quantity":-2,"price":1}]}`,
			[]string{"lines[0].quantity: must be more than 0 (How many, in the product's unit): map it in the flow's mapping"}},
		{"zero quantity", "order", `{"number":"SO-1","lines":[{"sku":"A","quantity":0,"price":1}]}`,
			[]string{"lines[0].quantity: must be more than 0 ("}},
		{"order customer without an e-mail", "order", `{"number":"SO-1","customer":{"name":"Ann","email":null},"lines":[{"sku":"A","quantity":1,"price":1}]}`,
			[]string{"customer.email: required but null (The customer's e-mail address"}},
		{"order of an unknown type", "order", `{"number":"SO-1","type":"quote","lines":[{"sku":"A","quantity":1,"price":1}]}`,
			[]string{`type: must be one of "order", "invoice" (What the source document is: "order" or "invoice"): translate it in the flow's mapping with a value map`}},
		{"order address from the customer's shape", "order", `{"number":"SO-1","shipping_address":{"street":"s","postcode":"1","city":"c","country":"Germany"},"lines":[{"sku":"A","quantity":1,"price":1}]}`,
			[]string{`shipping_address.country: does not fit (The country as an ISO 3166-1 alpha-2 code in upper case, e.g. "DE"): translate it`}},
		{"order address without a city", "order", `{"number":"SO-1","billing_address":{"street":"s","postcode":"1","city":null,"country":"DE"},"lines":[{"sku":"A","quantity":1,"price":1}]}`,
			[]string{"billing_address.city: required but null (The city or town)"}},
		{"order time without an offset", "order", `{"number":"SO-1","ordered_at":"2026-12-01 09:30","lines":[{"sku":"A","quantity":1,"price":1}]}`,
			[]string{"ordered_at: not a valid date-time: "}},
		{"order price as text", "order", `{"number":"SO-1","lines":[{"sku":"A","quantity":1,"price":"9.95"}]}`,
			[]string{"lines[0].price: must be a number, not text: convert it in the flow's mapping with double(…)"}},
		{"invoice without a number", "invoice", `{"kind":"sales"}`,
			[]string{"number: required but missing ("}},
		{"invoice party without a name", "invoice", `{"number":"INV-1","party":{"email":"a@b.example"}}`,
			[]string{"party.name: required but missing (The party's name: a person's full name, or a company's when company is not set)"}},
		{"invoice of an unknown kind", "invoice", `{"number":"INV-1","kind":"credit"}`,
			[]string{`kind: must be one of "sales", "purchase" (`}},
		{"invoice tax without an amount", "invoice", `{"number":"INV-1","due_date":"31.12.2026","taxes":[{"rate":19}],"lines":[{"description":"x","price":1}]}`,
			[]string{"due_date: not a valid date: ", "lines[0].quantity: required but missing (", "taxes[0].amount: required but missing (The tax at this rate)"}},
		{"payment without a reference", "payment", `{"amount":10,"currency":"EUR"}`,
			[]string{"reference: required but missing (The payment's own reference in the source, e.g. the payment provider's transaction ID: the key that makes recording it idempotent)"}},
		{"payment of nothing", "payment", `{"reference":"P-1","amount":0,"currency":"eur"}`,
			[]string{"amount: must be more than 0 (", "currency: does not fit ("}},
		{"payment without an amount and currency", "payment", `{"reference":"P-1","kind":"refund"}`,
			[]string{"amount: required but missing (", "currency: required but missing (", `kind: must be one of "receipt", "payment" (`}},
		{"document without a number", "write-off", `{"document_type":"write-off","lines":[{"sku":"A","quantity":-1}]}`,
			[]string{"lines[0].quantity: must be at least 0 (", "number: required but missing (The document's number in the source)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := entity.Check(tt.entity, []byte(tt.record))
			var refused *entity.Error
			if !errors.As(err, &refused) {
				t.Fatalf("Check = %v, want an *entity.Error", err)
			}
			if refused.Entity != tt.entity {
				t.Errorf("Entity = %q, want %q", refused.Entity, tt.entity)
			}
			if len(refused.Problems) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d:\n%s", refused, len(tt.want), strings.Join(tt.want, "\n"))
			}
			for i, p := range refused.Problems {
				if !strings.HasPrefix(p.String(), tt.want[i]) {
					t.Errorf("problem %d = %q\nwant it to start with %q", i, p.String(), tt.want[i])
				}
			}
			if !strings.HasPrefix(err.Error(), "not a canonical "+tt.entity+": ") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

// TestCheckQuotesNoValue: error texts reach the API log, which never holds
// payload data; the values are in Problem.Value for callers that may show
// them.
func TestCheckQuotesNoValue(t *testing.T) {
	err := entity.Check("customer", []byte(`{"email":"secret-address","name":"","phone":12345,"billing_address":{"street":"Hidden Lane","postcode":"","city":"Nowhere","country":"Narnia"}}`))
	var refused *entity.Error
	if !errors.As(err, &refused) {
		t.Fatalf("Check = %v", err)
	}
	for _, secret := range []string{"secret-address", "12345", "Hidden Lane", "Nowhere", "Narnia"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error quotes %q: %v", secret, err)
		}
	}
	values := map[string]any{}
	for _, p := range refused.Problems {
		values[p.Path] = p.Value
	}
	if values["email"] != "secret-address" || values["billing_address.country"] != "Narnia" {
		t.Errorf("Problem values = %v, want the fields' values", values)
	}
}

func TestCheckBadInput(t *testing.T) {
	tests := []struct{ name, entity, payload, want string }{
		{"unknown entity", "spaceship", `{}`, `"spaceship" is not a canonical entity: use bank-document, cash-document, category, customer, customer-payment, goods-receipt, internal-transfer, inventory-count, invoice, order, order-return, payment, product, purchase, stock, supplier-return, write-off`},
		{"the shared schema", "document", `{"number":"D-1"}`, `"document" is not a canonical entity`},
		{"not JSON", "stock", `{"sku":`, "checking a stock record: the record is not JSON"},
		{"not an object", "stock", `[1]`, "checking a stock record: the record is a JSON array, not an object"},
		{"null", "stock", `null`, "the record is a JSON null, not an object"},
	}
	for _, tt := range tests {
		err := entity.Check(tt.entity, []byte(tt.payload))
		var refused *entity.Error
		if err == nil || errors.As(err, &refused) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Check = %v, want a plain error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestErrorShowsTheFirstProblems(t *testing.T) {
	var fields []string
	for i := range 14 {
		fields = append(fields, `{"sku":"v","attributes":{"a":`+string(rune('0'+i%10))+`}}`)
	}
	err := entity.Check("product", []byte(`{"sku":"T","name":"T","price":1,"variants":[`+strings.Join(fields, ",")+`]}`))
	var refused *entity.Error
	if !errors.As(err, &refused) || len(refused.Problems) != 14 {
		t.Fatalf("Check = %v", err)
	}
	if !strings.HasSuffix(err.Error(), "; and 4 more") || strings.Count(err.Error(), "must be text") != 10 {
		t.Errorf("Error() = %q, want 10 problems and the count of the rest", err)
	}
}

func TestCheckIsSafeForConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if err := entity.Check("customer", []byte(valid["customer"][2])); err != nil {
					t.Error(err)
					return
				}
				if err := entity.Check("stock", []byte(`{"sku":1}`)); err == nil {
					t.Errorf("goroutine %d: a bad stock record passed", i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkCheck measures the mapper's added cost per record of a flow
// whose target serves its entity canonically.
func BenchmarkCheck(b *testing.B) {
	for _, bm := range []struct{ name, entity, record string }{
		{"customer", "customer", valid["customer"][2]},
		{"product", "product", valid["product"][2]},
		{"stock", "stock", valid["stock"][1]},
		{"order", "order", valid["order"][2]},
		{"goods-receipt", "goods-receipt", valid["goods-receipt"][1]},
		{"refused", "customer", `{"name":"Ann","billing_address":{"street":"s","postcode":"1","city":"c","country":"Germany"}}`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			payload := []byte(bm.record)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				_ = entity.Check(bm.entity, payload)
			}
		})
	}
}

// TestCheckRefusesNumbersTooLargeToHold: a number whose exponent no fraction
// can hold is refused naming its field, as the fuzzer found, instead of
// crashing the validator (and the mapper with it).
func TestCheckRefusesNumbersTooLargeToHold(t *testing.T) {
	for _, tt := range []struct{ payload, path string }{
		{`{"sku":"A-1","name":"Shirt","price":-1e8700000000}`, "price"},
		{`{"sku":"A-1","name":"Shirt","price":1,"variants":[{"sku":"A-1-S","price":2e9999999999}]}`, "variants[0].price"},
	} {
		err := entity.Check("product", []byte(tt.payload))
		var e *entity.Error
		if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Path != tt.path || !strings.Contains(err.Error(), "too large") {
			t.Errorf("Check(%s) = %v, want one problem at %s", tt.payload, err, tt.path)
		}
	}
}
