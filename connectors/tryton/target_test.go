package tryton

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
	"github.com/syncline/syncline/pkg/connector"
)

var srv *trytontest.Server

func TestMain(m *testing.M) {
	var err error
	start := time.Now()
	srv, err = trytontest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting Tryton for the tests:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "trytond ready in %s\n", time.Since(start).Round(time.Millisecond))
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping Tryton:", err)
	}
	os.Exit(code)
}

func testEnv(t *testing.T) connector.Env {
	t.Helper()
	eg, err := connector.NewEgress(connector.EgressConfig{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	// The spec's default budget, as the platform gives it: one request at a time.
	return connector.Env{Tenant: "acme", Egress: eg, Budget: connector.NewBudget(spec().Budget)}
}

func baseSettings(url, database string) Settings {
	return Settings{URL: url, Database: database, User: trytontest.AdminUser, Password: trytontest.AdminPassword,
		AccountCategory: "Goods", ManageStock: true}
}

// open opens the target on a fresh database; change adjusts the settings.
func open(t *testing.T, change func(*Settings)) (*Target, *trytontest.Database) {
	t.Helper()
	db := srv.NewDatabase(t)
	return openOn(t, db, change), db
}

// openOn opens another target on db.
func openOn(t *testing.T, db *trytontest.Database, change func(*Settings)) *Target {
	t.Helper()
	s := baseSettings(srv.URL, db.Name)
	if change != nil {
		change(&s)
	}
	tg, err := Open(context.Background(), s, testEnv(t))
	if err != nil {
		t.Fatalf("opening the target: %v", err)
	}
	t.Cleanup(func() {
		if err := tg.Close(); err != nil {
			t.Errorf("closing: %v", err)
		}
	})
	return tg
}

// write applies one write and fails the test on an error or a refusal.
func write(t *testing.T, tg *Target, entity string, w connector.Write) string {
	t.Helper()
	res, err := tg.Write(context.Background(), entity, []connector.Write{w})
	if err != nil {
		t.Fatalf("writing %s %s: %v", entity, w.Key, err)
	}
	if res[0].Err != nil {
		t.Fatalf("writing %s %s: refused: %v", entity, w.Key, res[0].Err)
	}
	return res[0].TargetID
}

func create(key, payload string) connector.Write {
	return connector.Write{Op: connector.WriteCreate, Key: key, Payload: json.RawMessage(payload)}
}

func update(id, payload string) connector.Write {
	return connector.Write{Op: connector.WriteUpdate, ID: id, Payload: json.RawMessage(payload)}
}

func find(t *testing.T, tg *Target, entity, field string, values ...string) []connector.Found {
	t.Helper()
	f, err := tg.Find(context.Background(), entity, field, values)
	if err != nil {
		t.Fatalf("finding %s by %s %v: %v", entity, field, values, err)
	}
	return f
}

type mech struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	Name  string `json:"name"`
}

type addr struct {
	Street   string `json:"street"`
	City     string `json:"city"`
	Invoice  int    `json:"invoice"`
	Delivery int    `json:"delivery"`
}

func TestCustomerCompanyAndPerson(t *testing.T) {
	tg, db := open(t, nil)
	company := write(t, tg, EntityCustomer, create("c-1", `{"email":"Jane.Doe@ACME.example","name":"Jane Doe","company":"ACME GmbH","phone":"+49 30 1234567","tax_id":"DE136695976",
		"billing_address":{"street":"Hauptstr.","house_number":"1","postcode":"10115","city":"Berlin","country":"DE"},
		"shipping_address":{"street":"Hauptstr.","house_number":"1","postcode":"10115","city":"Berlin","country":"DE"}}`))
	person := write(t, tg, EntityCustomer, create("c-2", `{"email":"max@example.com","name":"Max Mustermann",
		"billing_address":{"street":"Lindenweg","house_number":"5","postcode":"80331","city":"München","country":"de"}}`))

	var parties []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	db.Call(t, &parties, "model.party.party.read", []string{company, person}, []string{"name"}, map[string]any{})
	if parties[0].Name != "ACME GmbH" || parties[1].Name != "Max Mustermann" {
		t.Fatalf("parties = %+v, want the company ACME GmbH and the person Max Mustermann", parties)
	}
	var rel []struct {
		To *struct {
			Name string `json:"name"`
		} `json:"to."`
		Type *struct {
			Name string `json:"name"`
		} `json:"type."`
	}
	db.Call(t, &rel, "model.party.relation.all.search_read", []any{[]any{"from_", "=", company}}, 0, nil, nil, []string{"to.name", "type.name"}, map[string]any{})
	if len(rel) != 1 || rel[0].To.Name != "Jane Doe" || rel[0].Type.Name != "Contact Person" {
		t.Fatalf("company relations = %+v, want Jane Doe as its Contact Person", rel)
	}
	db.Call(t, &rel, "model.party.relation.all.search_read", []any{[]any{"from_", "=", person}}, 0, nil, nil, []string{"to.name", "type.name"}, map[string]any{})
	if len(rel) != 0 {
		t.Fatalf("person customer has relations %+v, want none", rel)
	}
	var addrs []addr
	db.Call(t, &addrs, "model.party.address.search_read", []any{[]any{"party", "=", company}}, 0, nil, nil, []string{"street", "city", "invoice", "delivery"}, map[string]any{})
	if len(addrs) != 1 || addrs[0].Street != "Hauptstr. 1" || addrs[0].Invoice != 1 || addrs[0].Delivery != 1 {
		t.Fatalf("company addresses = %+v, want one for invoices and deliveries", addrs)
	}

	// Found by e-mail case-insensitively, as the company (not its contact person), and by
	// external reference, with its fields read back.
	for _, email := range []string{"jane.doe@acme.example", "JANE.DOE@acme.EXAMPLE"} {
		f := find(t, tg, EntityCustomer, FieldEmail, email)
		if len(f) != 1 || f[0].ID != company || f[0].Value != email {
			t.Fatalf("find by email %q = %+v, want the company party %s", email, f, company)
		}
	}
	if f := find(t, tg, EntityCustomer, FieldEmail, "jane_doe@acme.example"); len(f) != 0 {
		t.Fatalf("find by an e-mail that only matches as a LIKE pattern = %+v, want nothing", f)
	}
	f := find(t, tg, EntityCustomer, connector.FieldExternalRef, "c-1", "c-2", "c-3")
	if len(f) != 2 {
		t.Fatalf("find by external_ref = %+v, want c-1 and c-2", f)
	}
	for _, x := range f {
		var fields map[string]any
		json.Unmarshal(x.Fields, &fields)
		if x.Value == "c-1" && (x.ID != company || fields["company"] != "ACME GmbH" || fields["name"] != "Jane Doe" || fields["phone"] != "+49 30 1234567" || fields["tax_id"] != "DE136695976") {
			t.Errorf("c-1 found as %s with %s", x.ID, x.Fields)
		}
		if x.Value == "c-2" && (x.ID != person || fields["company"] != nil || fields["email"] != "max@example.com") {
			t.Errorf("c-2 found as %s with %s", x.ID, x.Fields)
		}
	}
}

// TestCustomerRefusals: what Tryton refuses comes back as the record's error with Tryton's
// message.
func TestCustomerRefusals(t *testing.T) {
	tg, _ := open(t, nil)
	res, err := tg.Write(context.Background(), EntityCustomer, []connector.Write{
		create("c-1", `{"email":"a@example.com","name":"A","tax_id":"DE000000"}`),
		create("c-2", `{"email":"b@example.com","name":"B"}`),
		update("999", `{"name":"Gone"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), `The European VAT Number "DE000000"`) || !strings.HasPrefix(res[0].Err.Error(), `customer "c-1": `) {
		t.Errorf("an invalid VAT number: %v", res[0].Err)
	}
	if res[1].Err != nil || res[1].TargetID == "" {
		t.Errorf("the valid record after it: %+v", res[1])
	}
	if res[2].Err == nil || !strings.Contains(res[2].Err.Error(), "don't exist anymore") {
		t.Errorf("an update of a party deleted in Tryton: %v", res[2].Err)
	}
}

func TestCustomerUpdateKeepsAddressesAndMechanismsInStep(t *testing.T) {
	tg, db := open(t, nil)
	id := write(t, tg, EntityCustomer, create("c-1", `{"email":"max@example.com","name":"Max Mustermann","phone":"+49 1",
		"billing_address":{"street":"Lindenweg","house_number":"5","postcode":"80331","city":"München","country":"DE"}}`))
	// The same again, then a new e-mail and phone, a shipping address, a moved billing address.
	write(t, tg, EntityCustomer, update(id, `{"email":"max@example.com","name":"Max Mustermann","phone":"+49 1",
		"billing_address":{"street":"Lindenweg","house_number":"5","postcode":"80331","city":"München","country":"DE"}}`))
	write(t, tg, EntityCustomer, update(id, `{"email":"MAX.M@example.com","phone":"+49 2",
		"shipping_address":{"street":"Lindenweg","house_number":"5","postcode":"80331","city":"München","country":"DE"}}`))
	write(t, tg, EntityCustomer, update(id, `{"billing_address":{"street":"Ring","house_number":"9","postcode":"80331","city":"München","country":"DE"}}`))

	var mechs []mech
	db.Call(t, &mechs, "model.party.contact_mechanism.search_read", []any{[]any{"party", "=", id}}, 0, nil, [][]string{{"id", "ASC"}}, []string{"type", "value", "name"}, map[string]any{})
	want := []mech{{Type: "email", Value: "MAX.M@example.com"}, {Type: "phone", Value: "+49 2"}}
	if !slices.Equal(mechs, want) {
		t.Fatalf("contact mechanisms = %+v, want %+v", mechs, want)
	}
	var addrs []addr
	db.Call(t, &addrs, "model.party.address.search_read", []any{[]any{"party", "=", id}}, 0, nil, [][]string{{"id", "ASC"}}, []string{"street", "city", "invoice", "delivery"}, map[string]any{})
	wantA := []addr{{Street: "Lindenweg 5", City: "München", Invoice: 0, Delivery: 1}, {Street: "Ring 9", City: "München", Invoice: 1, Delivery: 0}}
	if !slices.Equal(addrs, wantA) {
		t.Fatalf("addresses = %+v, want %+v", addrs, wantA)
	}
}

func TestProductWithVariantsAndCategories(t *testing.T) {
	tg, db := open(t, nil)
	id := write(t, tg, EntityProduct, create("p-1", `{"sku":"TSHIRT-","name":"T-Shirt","description":"Soft cotton","price":19.9,"currency":"EUR",
		"attributes":{"colour":"red"},"features":{"country_of_origin":"PT"},"categories":[["Clothing","T-Shirts"],["Sale"]],
		"variants":[{"sku":"TSHIRT-S","attributes":{"size":"S"}},{"sku":"TSHIRT-M","attributes":{"size":"M"},"ean":"4006381333931"}]}`))
	simple := write(t, tg, EntityProduct, create("p-2", `{"sku":"MUG-001","name":"Mug","price":11.9,"price_includes_tax":true,"categories":[["Clothing","T-Shirts"]]}`))

	type variantRow struct {
		Code        string            `json:"code"`
		Attributes  map[string]string `json:"attributes"`
		Description string            `json:"description"`
		ListPrice   *struct {
			Decimal string `json:"decimal"`
		} `json:"list_price"`
		Template *struct {
			Categories []int64 `json:"categories"`
		} `json:"template."`
	}
	var vs []variantRow
	db.Call(t, &vs, "model.product.product.search_read", []any{}, 0, nil, [][]string{{"code", "ASC"}}, []string{"code", "attributes", "description", "list_price", "template.categories"}, map[string]any{"company": 1})
	if len(vs) != 3 || vs[0].Code != "MUG-001" || vs[1].Code != "TSHIRT-M" || vs[2].Code != "TSHIRT-S" {
		t.Fatalf("variants = %+v, want MUG-001, TSHIRT-M, TSHIRT-S", vs)
	}
	if a := vs[1].Attributes; a["size"] != "M" || a["colour"] != "red" || a["country_of_origin"] != "PT" || vs[1].Description != "Soft cotton" {
		t.Errorf("TSHIRT-M = %+v, want size M, colour red, country_of_origin PT, the description", vs[1])
	}
	if vs[1].ListPrice.Decimal != "19.9" || vs[0].ListPrice.Decimal != "10" {
		t.Errorf("list prices = %s and %s, want 19.9 and the mug's 11.90 gross as 10 net (VAT 19%%)", vs[1].ListPrice.Decimal, vs[0].ListPrice.Decimal)
	}
	var cats []struct {
		RecName string `json:"rec_name"`
	}
	db.Call(t, &cats, "model.product.category.search_read", []any{[]any{"accounting", "=", false}}, 0, nil, [][]string{{"id", "ASC"}}, []string{"rec_name"}, map[string]any{})
	if got := fmt.Sprint(cats); got != "[{Clothing} {Clothing / T-Shirts} {Sale}]" {
		t.Fatalf("categories = %s, want Clothing, Clothing / T-Shirts and Sale, each once", got)
	}
	if len(vs[0].Template.Categories) != 1 || len(vs[1].Template.Categories) != 2 {
		t.Errorf("template categories = %v and %v", vs[0].Template.Categories, vs[1].Template.Categories)
	}

	if f := find(t, tg, EntityProduct, FieldSKU, "TSHIRT-", "MUG-001", "NOPE"); len(f) != 2 {
		t.Fatalf("find by sku = %+v", f)
	}
	if f := find(t, tg, EntityProduct, FieldSKU, "TSHIRT-M"); len(f) != 1 || f[0].ID != id || f[0].Value != "TSHIRT-M" {
		t.Fatalf("find by a variant's sku = %+v, want its template %s", f, id)
	}
	f := find(t, tg, EntityProduct, connector.FieldExternalRef, "p-1")
	if len(f) != 1 || f[0].ID != id {
		t.Fatalf("find by external_ref = %+v, want template %s", f, id)
	}
	var fields product
	if err := json.Unmarshal(f[0].Fields, &fields); err != nil || fields.Name != "T-Shirt" || len(fields.Variants) != 2 || len(fields.Categories) != 2 {
		t.Fatalf("read back %s (%v)", f[0].Fields, err)
	}
	if f := find(t, tg, EntityProduct, connector.FieldExternalRef, "p-2"); len(f) != 1 || f[0].ID != simple {
		t.Fatalf("find simple by external_ref = %+v", f)
	}

	// Variants kept in step: S goes, L comes, M stays; the description is written.
	write(t, tg, EntityProduct, update(id, `{"description":"Softer","variants":[{"sku":"TSHIRT-M","attributes":{"size":"M"}},{"sku":"TSHIRT-L","attributes":{"size":"L"}}]}`))
	tid, _ := strconv.ParseInt(id, 10, 64)
	vs = nil
	db.Call(t, &vs, "model.product.product.search_read", []any{[]any{"template", "=", tid}}, 0, nil, [][]string{{"code", "ASC"}}, []string{"code", "attributes", "description"}, map[string]any{"company": 1})
	if len(vs) != 2 || vs[0].Code != "TSHIRT-L" || vs[1].Code != "TSHIRT-M" || vs[0].Description != "Softer" || vs[0].Attributes["colour"] != "" {
		t.Fatalf("variants after update = %+v, want L and M with the new description", vs)
	}

	// Another product with the same attributes shares their set; a new size joins the
	// selection of the seeded attribute "size".
	write(t, tg, EntityProduct, create("p-5", `{"sku":"HOODIE-","name":"Hoodie","price":39,"variants":[{"sku":"HOODIE-M","attributes":{"size":"M"}},{"sku":"HOODIE-XXL","attributes":{"size":"XXL"}}]}`))
	var sets []struct {
		Name       string  `json:"name"`
		Attributes []int64 `json:"attributes"`
	}
	db.Call(t, &sets, "model.product.attribute.set.search_read", []any{}, 0, nil, [][]string{{"name", "ASC"}}, []string{"name", "attributes"}, map[string]any{})
	if got := fmt.Sprint(sets); !strings.Contains(got, "{size [1]}") || strings.Count(got, "{size ") != 1 {
		t.Errorf("attribute sets = %s, want one set size holding the attribute size", got)
	}
	var size []struct {
		Selection string `json:"selection"`
	}
	db.Call(t, &size, "model.product.attribute.search_read", []any{[]any{"name", "=", "size"}}, 0, nil, nil, []string{"selection"}, map[string]any{})
	if !strings.HasSuffix(size[0].Selection, "\nXXL:XXL") {
		t.Errorf("size selection = %q, want XXL added", size[0].Selection)
	}

	// A variant SKU Tryton cannot build from the template's code is the record's refusal.
	res, err := tg.Write(context.Background(), EntityProduct, []connector.Write{create("p-3", `{"sku":"CAP","name":"Cap","price":5,"variants":[{"sku":"HAT-1"}]}`)})
	if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), `"HAT-1"`) {
		t.Fatalf("bad variant sku: %v, %+v", err, res)
	}
	// Tryton's own refusal: a duplicate SKU.
	res, err = tg.Write(context.Background(), EntityProduct, []connector.Write{create("p-4", `{"sku":"MUG-001","name":"Mug 2","price":5}`)})
	if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "Code of active product must be unique") {
		t.Fatalf("duplicate sku: %v, %+v", err, res)
	}
}

// TestGrossListPrices: a Tryton whose list prices include tax gets net prices converted.
func TestGrossListPrices(t *testing.T) {
	tg, db := open(t, func(s *Settings) { s.PriceIncludesTax = true })
	id := write(t, tg, EntityProduct, create("p-1", `{"sku":"NET","name":"Net","price":10}`))
	gross := write(t, tg, EntityProduct, create("p-2", `{"sku":"GROSS","name":"Gross","price":11.9,"price_includes_tax":true}`))
	var rows []struct {
		ListPrice struct {
			Decimal string `json:"decimal"`
		} `json:"list_price"`
	}
	db.Call(t, &rows, "model.product.template.read", []string{id, gross}, []string{"list_price"}, map[string]any{"company": 1})
	if rows[0].ListPrice.Decimal != "11.9" || rows[1].ListPrice.Decimal != "11.9" {
		t.Fatalf("list prices = %+v, want 11.9 for both", rows)
	}
	noCategory, _ := open(t, func(s *Settings) { s.PriceIncludesTax, s.AccountCategory = true, "" })
	res, err := noCategory.Write(context.Background(), EntityProduct, []connector.Write{create("p-1", `{"sku":"NET","name":"Net","price":10}`)})
	if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "settings.account_category") {
		t.Fatalf("a conversion without taxes: %v %+v", err, res)
	}
}

func TestCategories(t *testing.T) {
	tg, db := open(t, nil)
	// A product creates Clothing / T-Shirts on the way; the category records take them over.
	write(t, tg, EntityProduct, create("p-1", `{"sku":"TEE","name":"Tee","price":5,"categories":[["Clothing","T-Shirts"]]}`))
	top := write(t, tg, EntityCategory, create("cat-1", `{"name":"Clothing"}`))
	tees := write(t, tg, EntityCategory, create("cat-2", `{"name":"T-Shirts","parent":["Clothing"]}`))
	other := write(t, tg, EntityCategory, create("cat-3", `{"name":"T-Shirts","parent":["Merch"]}`))
	var n int
	db.Call(t, &n, "model.product.category.search_count", []any{[]any{"accounting", "=", false}}, map[string]any{})
	if n != 4 || tees == other {
		t.Fatalf("%d categories (want 4: Clothing, Clothing / T-Shirts, Merch, Merch / T-Shirts); tees %s, other %s", n, tees, other)
	}
	f := find(t, tg, EntityCategory, FieldName, "Clothing / T-Shirts")
	if len(f) != 1 || f[0].ID != tees || string(f[0].Fields) != `{"name":"T-Shirts","parent":["Clothing"]}` {
		t.Fatalf("find by name = %+v", f)
	}
	f = find(t, tg, EntityCategory, connector.FieldExternalRef, "cat-1", "cat-3")
	if len(f) != 2 {
		t.Fatalf("find by external_ref = %+v", f)
	}
	// Move Merch's T-Shirts under Clothing and rename it.
	write(t, tg, EntityCategory, update(other, `{"name":"Shirts","parent":["Clothing"]}`))
	var rows []struct {
		RecName string `json:"rec_name"`
	}
	db.Call(t, &rows, "model.product.category.read", []string{other}, []string{"rec_name"}, map[string]any{})
	if rows[0].RecName != "Clothing / Shirts" {
		t.Fatalf("moved category is %q", rows[0].RecName)
	}
	res, err := tg.Write(context.Background(), EntityCategory, []connector.Write{create("cat-4", `{"name":"Men / Women"}`)})
	if err != nil || res[0].Err == nil {
		t.Fatalf("a name with the separator: %v %+v", err, res)
	}
	write(t, tg, EntityCategory, connector.Write{Op: connector.WriteDelete, ID: top})
	write(t, tg, EntityCategory, connector.Write{Op: connector.WriteDelete, ID: top}) // gone already: succeeds
}

func TestStock(t *testing.T) {
	tg, db := open(t, nil)
	write(t, tg, EntityProduct, create("p-1", `{"sku":"STK-1","name":"Widget","price":10}`))
	id := write(t, tg, EntityStock, create("s-1", `{"sku":"STK-1","on_hand":25}`))
	quantity := func() float64 {
		var rows []struct {
			Quantity float64 `json:"quantity"`
		}
		db.Call(t, &rows, "model.product.product.read", []string{id}, []string{"quantity"}, map[string]any{"company": 1, "locations": []int{5}})
		return rows[0].Quantity
	}
	if q := quantity(); q != 25 {
		t.Fatalf("on hand = %v, want 25", q)
	}
	write(t, tg, EntityStock, update(id, `{"sku":"STK-1","on_hand":10,"reserved":2}`))
	write(t, tg, EntityStock, update(id, `{"sku":"STK-1","on_hand":10}`)) // unchanged: no inventory
	if q := quantity(); q != 10 {
		t.Fatalf("on hand = %v, want 10", q)
	}
	var invs int
	db.Call(t, &invs, "model.stock.inventory.search_count", []any{[]any{"state", "=", "done"}}, map[string]any{"company": 1})
	if invs != 2 {
		t.Errorf("%d inventories done, want 2", invs)
	}
	f := find(t, tg, EntityStock, connector.FieldExternalRef, "s-1")
	if len(f) != 1 || f[0].ID != id || string(f[0].Fields) != `{"available":10,"on_hand":10,"reserved":0,"sku":"STK-1","warehouse":"WH"}` {
		t.Fatalf("find by external_ref = %+v", f)
	}

	// A service's level is skipped with the reason (Tryton keeps no stock of it); an unknown
	// SKU is refused.
	db.Call(t, nil, "model.product.template.create", []any{map[string]any{"name": "Installation", "code": "SVC-1", "type": "service", "default_uom": 1,
		"list_price": map[string]any{"__class__": "Decimal", "decimal": "50"}, "products": []any{[]any{"create", []any{map[string]any{}}}}}}, map[string]any{"company": 1})
	res, err := tg.Write(context.Background(), EntityStock, []connector.Write{create("s-2", `{"sku":"SVC-1","on_hand":1}`), create("s-3", `{"sku":"NOPE","on_hand":1}`)})
	if err != nil || res[0].Err != nil || !strings.Contains(res[0].Skipped, "service") || res[1].Err == nil || !strings.Contains(res[1].Err.Error(), `"NOPE"`) {
		t.Fatalf("service and unknown sku: %v %+v", err, res)
	}

	// An endpoint that does not manage stock skips every level, saying so.
	off, _ := open(t, func(s *Settings) { s.ManageStock = false })
	res, err = off.Write(context.Background(), EntityStock, []connector.Write{create("s-1", `{"sku":"STK-1","on_hand":3}`)})
	if err != nil || res[0].Err != nil || !strings.Contains(res[0].Skipped, "manage_stock") {
		t.Fatalf("manage_stock false: %v %+v", err, res)
	}
}

// TestStockAvailable reads a level back after a Tryton sale reserved part of it, under each
// formula of settings.available.
func TestStockAvailable(t *testing.T) {
	tg, db := open(t, nil)
	write(t, tg, EntityProduct, create("p-1", `{"sku":"STK-1","name":"Widget","price":10}`))
	variant := write(t, tg, EntityStock, create("s-1", `{"sku":"STK-1","on_hand":10}`))
	party := write(t, tg, EntityCustomer, create("c-1", `{"email":"max@example.com","name":"Max",
		"billing_address":{"street":"Ring","house_number":"1","postcode":"10115","city":"Berlin","country":"DE"}}`))
	var addrs []int64
	db.Call(t, &addrs, "model.party.address.search", []any{[]any{"party", "=", party}}, 0, nil, nil, map[string]any{})
	ctx := map[string]any{"company": 1}
	var sales []int64
	db.Call(t, &sales, "model.sale.sale.create", []any{map[string]any{"party": party, "invoice_address": addrs[0], "shipment_address": addrs[0],
		"lines": []any{[]any{"create", []any{map[string]any{"product": variant, "quantity": 3, "unit": 1,
			"unit_price": map[string]any{"__class__": "Decimal", "decimal": "10"}}}}}}}, ctx)
	db.Call(t, nil, "model.sale.sale.quote", sales, ctx)
	db.Call(t, nil, "model.sale.sale.confirm", sales, ctx)

	levels := func(formula string) string {
		t.Helper()
		other := openOn(t, db, func(s *Settings) { s.Available = formula })
		f := find(t, other, EntityStock, FieldSKU, "STK-1")
		if len(f) != 1 {
			t.Fatalf("find by sku = %+v", f)
		}
		return string(f[0].Fields)
	}
	// Confirmed, not yet reserved: only the forecast sees the sale.
	for formula, want := range map[string]string{
		AvailableOnHandMinusReserved: `"available":10,"on_hand":10,"reserved":0`,
		AvailableForecast:            `"available":7,"on_hand":10,"reserved":3`,
		AvailableOnHand:              `"available":10,"on_hand":10,"reserved":0`,
	} {
		if got := levels(formula); !strings.Contains(got, want) {
			t.Errorf("%s before reserving: %s, want %s", formula, got, want)
		}
	}
	var shipments []int64
	db.Call(t, &shipments, "model.stock.shipment.out.search", []any{}, 0, nil, nil, ctx)
	var assigned bool
	db.Call(t, &assigned, "model.stock.shipment.out.assign_try", shipments, ctx)
	if !assigned {
		t.Fatal("Tryton could not reserve the sale's 3 of 10")
	}
	if got, want := levels(AvailableOnHandMinusReserved), `"available":7,"on_hand":10,"reserved":3`; !strings.Contains(got, want) {
		t.Errorf("after reserving: %s, want %s", got, want)
	}
	// Setting on hand again counts the reserved goods as on hand, as Tryton does.
	write(t, tg, EntityStock, update(variant, `{"sku":"STK-1","on_hand":12}`))
	if got, want := levels(AvailableOnHandMinusReserved), `"available":9,"on_hand":12,"reserved":3`; !strings.Contains(got, want) {
		t.Errorf("after a new count: %s, want %s", got, want)
	}
}

// TestUpdateWritesOnlyWhatItIsGiven: a field the recipe leaves out of an update (a
// create_only description) keeps what was edited in Tryton.
func TestUpdateWritesOnlyWhatItIsGiven(t *testing.T) {
	tg, db := open(t, nil)
	id := write(t, tg, EntityProduct, create("p-1", `{"sku":"MUG","name":"Mug","description":"From the shop","price":5}`))
	var vs []int64
	db.Call(t, &vs, "model.product.product.search", []any{[]any{"code", "=", "MUG"}}, 0, nil, nil, map[string]any{})
	db.Call(t, nil, "model.product.product.write", vs, map[string]any{"description": "Edited in Tryton"}, map[string]any{})
	write(t, tg, EntityProduct, update(id, `{"name":"Big Mug","price":6}`))
	var rows []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	db.Call(t, &rows, "model.product.product.read", vs, []string{"name", "description"}, map[string]any{})
	if rows[0].Name != "Big Mug" || rows[0].Description != "Edited in Tryton" {
		t.Fatalf("after the update: %+v, want the new name and Tryton's description", rows[0])
	}
}

// TestSessionRenewed: a session Tryton no longer knows (expired, or deleted by a failed
// fresh-session check) is replaced by one new login, and the call goes through.
func TestSessionRenewed(t *testing.T) {
	tg, _ := open(t, nil)
	before := tg.currentSession()
	// Log the session out behind the connector's back: Tryton deletes it.
	if err := tg.c.post(context.Background(), before, nil, "common.db.logout", []any{}); err != nil {
		t.Fatal(err)
	}
	if err := tg.c.post(context.Background(), before, nil, "model.res.user.get_preferences", []any{true, map[string]any{}}); err != errSessionRefused {
		t.Fatalf("the logged-out session: %v, want it refused", err)
	}
	if f := find(t, tg, EntityCustomer, FieldEmail, "nobody@example.com"); len(f) != 0 {
		t.Fatalf("find = %+v", f)
	}
	if err := tg.Check(context.Background()); err != nil {
		t.Fatalf("Check after the session was deleted: %v", err)
	}
	if tg.currentSession() == before {
		t.Fatal("the connector kept the deleted session")
	}
}

func TestWrongPassword(t *testing.T) {
	db := srv.NewDatabase(t)
	s := baseSettings(srv.URL, db.Name)
	s.User, s.Password = trytontest.ProbeUser, "wrong"
	_, err := Open(context.Background(), s, testEnv(t))
	if err == nil || !strings.Contains(err.Error(), "password is wrong") || strings.Contains(err.Error(), "wrong\"") {
		t.Fatalf("Open with a wrong password = %v, want a clear error that does not show the password", err)
	}
	// The client does not spend Tryton's failed attempts: a second call within the pause
	// gets the same answer without a request.
	var requests atomic.Int32
	c := newClient(countingTransport{&requests}, srv.URL, db.Name, trytontest.ProbeUser, "wrong", 10*time.Second)
	for range 3 {
		if err := c.call(context.Background(), nil, "model.res.user.get_preferences", true, map[string]any{}); err == nil || !strings.Contains(err.Error(), "password is wrong") {
			t.Fatalf("call with a wrong password = %v", err)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d login attempts, want 1", n)
	}

	s.Password = trytontest.ProbePassword
	tg, err := Open(context.Background(), s, testEnv(t))
	if err != nil {
		t.Fatalf("Open with the right password: %v", err)
	}
	if err := tg.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	tg.Close()
}

func TestAnswersThatAreNotTryton(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body>Welcome to nginx!</body></html>")
		}, `not JSON-RPC ("<html><body>Welcome to nginx!</body></html>")`},
		{"10 MiB", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"id":1,"result":"`))
			w.Write([]byte(strings.Repeat("x", 10<<20)))
			w.Write([]byte(`"}`))
		}, "larger than 8 MiB"},
		{"429", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		}, "HTTP 429"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(tc.handler)
			defer hs.Close()
			_, err := Open(context.Background(), baseSettings(hs.URL, "erp"), testEnv(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error saying %q", err, tc.want)
			}
			if tc.name == "429" {
				var th *connector.ThrottledError
				if !errorsAs(err, &th) || th.RetryAfter != 7*time.Second {
					t.Fatalf("429 = %#v, want a ThrottledError of 7s", err)
				}
			}
		})
	}
}

// TestParallelWriters writes customers (whose party codes come from Tryton's sequence) and
// stock levels (inventory numbers) from several goroutines at once, as several partitions
// of a flow do: every record lands, once, with a code of its own.
func TestParallelWriters(t *testing.T) {
	tg, db := open(t, nil)
	const writers, each = 4, 3
	for i := range writers {
		write(t, tg, EntityProduct, create(fmt.Sprintf("p-%d", i), fmt.Sprintf(`{"sku":"PAR-%d","name":"Part %d","price":1}`, i, i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("c-%d-%d", w, i)
				payload := fmt.Sprintf(`{"email":"%s@example.com","name":"Person %s","company":"Company %s"}`, key, key, key)
				for _, pair := range []struct{ entity, key, payload string }{
					{EntityCustomer, key, payload},
					{EntityStock, fmt.Sprintf("s-%d-%d", w, i), fmt.Sprintf(`{"sku":"PAR-%d","on_hand":%d}`, w, i+1)},
				} {
					res, err := tg.Write(context.Background(), pair.entity, []connector.Write{create(pair.key, pair.payload)})
					if err == nil {
						err = res[0].Err
					}
					if err != nil {
						errs <- fmt.Errorf("%s %s: %w", pair.entity, pair.key, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var codes []struct {
		Code string `json:"code"`
	}
	db.Call(t, &codes, "model.party.party.search_read", []any{[]any{"id", ">", 1}}, 0, nil, nil, []string{"code"}, map[string]any{})
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c.Code] {
			t.Errorf("party code %s used twice", c.Code)
		}
		seen[c.Code] = true
	}
	if len(codes) != writers*each*2 {
		t.Errorf("%d parties, want %d (a company and its contact person per customer)", len(codes), writers*each*2)
	}
	for w := range writers {
		if f := find(t, tg, EntityStock, FieldSKU, fmt.Sprintf("PAR-%d", w)); len(f) != 1 || !strings.Contains(string(f[0].Fields), fmt.Sprintf(`"on_hand":%d`, each)) {
			t.Errorf("PAR-%d stock = %+v, want on hand %d", w, f, each)
		}
	}
}

type countingTransport struct{ n *atomic.Int32 }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
