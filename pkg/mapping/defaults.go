package mapping

import (
	"maps"
	"slices"
	"strings"

	pkgentity "github.com/syncline/syncline/pkg/entity"
)

// Default mappings ship with the platform, one per entity: a flow of that
// entity starts from its entity's default and overrides only what it names
// (Merge). Every expression is optional-safe (`source.?x`), so a source that
// lacks a field simply leaves the target field out.
//
// The defaults of customer, product, category and stock produce the
// canonical shapes of pkg/entity (its entities.md) from the record shapes
// webshops commonly send, trying the usual spellings in turn; a source
// field that is null or "" counts as missing. They read:
//
//   - customer: email (else billing_address.email), lower-cased; name (else
//     first_name and last_name, else those of billing_address); company and
//     phone (else those of billing_address); tax_id (else vat_id, else
//     vat_number); billing_address (else address) and shipping_address, each
//     with name (else first_name and last_name), street (else address_1,
//     else address1), house_number, postcode (else zip), city and
//     country_code (else country), upper-cased.
//   - product: sku (text); name (else title); description;
//     short_description; price (a number or numeric text); price_includes_tax
//     (else prices_include_tax); currency, upper-cased; ean (else gtin, as
//     text); unit; attributes and features (objects); categories, a list whose
//     entries are paths (lists of names) or texts such as
//     "Clothing > T-Shirts", else category, one such text; variants, each
//     with sku, attributes, price and ean (else gtin).
//   - category: name; parent, a list of names from the top or a text such as
//     "Clothing > Men".
//   - stock: sku (text); on_hand (else quantity, else stock_quantity, else
//     qty, else available plus reserved); reserved; available; warehouse.
//
// Order, invoice and payment have two defaults. Default gives the flat one,
// such as a table target takes (the order's reads examples/order-1001.json);
// CanonicalDefault gives the one that produces the canonical shape, for a
// target that reads it (the tryton target; a rest target that says so),
// which the control plane picks by the target's capabilities. They read:
//
//   - order: number (else order_number, else orderNumber, as text); type;
//     status; currency, upper-cased; ordered_at (else date_created, else
//     created_at); customer (else billing_address, else billing) with
//     email (lower-cased), name (else first_name and last_name), company,
//     phone and tax_id (else vat_id); billing_address (else billing) and
//     shipping_address (else shipping), as a customer's; payment_term;
//     payment_method; employee_number (default "999999"); lines (else
//     line_items), each with sku (text), quantity, price (else unit_price),
//     tax_rate and description (else name); totals (else total, as the
//     gross); note (else customer_note).
//   - invoice: number (text); kind; party (else customer), as an order's
//     customer; date; due_date (else due); currency; reference (else
//     order); lines as an order's; taxes; totals (else total, as the gross).
//   - payment: reference (text); kind; amount; currency; date; invoice (text);
//     party, as an invoice's.
//   - each other document type (entity.DocumentTypes: goods-receipt,
//     write-off...): number (text); document_type; date; party (else
//     customer, else supplier), as an invoice's; currency; amount (else
//     total); lines as an order's; reference; note.
var defaults = map[string]Spec{
	"order": {
		Fields: map[string]string{
			"order_number":   "source.?number",
			"status":         "source.?status",
			"currency":       "source.?currency",
			"total":          "source.?total.optMap(t, double(t))",
			"customer_name":  "source.?customer.?name",
			"customer_email": "source.?customer.?email.optMap(e, e.lowerAscii())",
			"company":        "source.?customer.?company",
		},
		Defaults: map[string]any{"employee_number": 999999},
	},
	"customer": {
		Fields: map[string]string{
			"email":            first(present("source.?email"), present("source.?billing_address.?email")) + ".optMap(v, v.lowerAscii())",
			"name":             first(present("source.?name"), fullName("source"), fullName("source.?billing_address")),
			"company":          first(present("source.?company"), present("source.?billing_address.?company")),
			"phone":            first(present("source.?phone"), present("source.?billing_address.?phone")),
			"tax_id":           first(present("source.?tax_id"), present("source.?vat_id"), present("source.?vat_number")),
			"billing_address":  address(first(present("source.?billing_address"), present("source.?address"))),
			"shipping_address": address(present("source.?shipping_address")),
		},
	},
	"product": {
		Fields: map[string]string{
			"sku":                text(present("source.?sku")),
			"name":               first(present("source.?name"), present("source.?title")),
			"description":        present("source.?description"),
			"short_description":  present("source.?short_description"),
			"price":              number("source.?price"),
			"price_includes_tax": "source.?price_includes_tax.or(source.?prices_include_tax)",
			"currency":           present("source.?currency") + ".optMap(v, v.upperAscii())",
			"ean":                text(first(present("source.?ean"), present("source.?gtin"))),
			"unit":               present("source.?unit"),
			"attributes":         present("source.?attributes"),
			"features":           present("source.?features"),
			"categories": first(
				present("source.?categories")+".optMap(cs, cs.map(c, type(c) == string ? c.split(' > ') : c))",
				present("source.?category")+".optMap(c, [c.split(' > ')])"),
			"variants": present("source.?variants") + ".optMap(vs, vs.map(x, {" +
				"?'sku': " + text(present("x.?sku")) + ", " +
				"?'attributes': " + present("x.?attributes") + ", " +
				"?'price': " + number("x.?price") + ", " +
				"?'ean': " + text(first(present("x.?ean"), present("x.?gtin"))) + "}))",
		},
	},
	"stock": {
		Fields: map[string]string{
			"sku": text(present("source.?sku")),
			"on_hand": first(number("source.?on_hand"), number("source.?quantity"), number("source.?stock_quantity"), number("source.?qty"),
				number("source.?available")+".optMap(a, a + "+number("source.?reserved")+".orValue(0.0))"),
			"reserved":  number("source.?reserved"),
			"available": number("source.?available"),
			"warehouse": text(present("source.?warehouse")),
		},
	},
	"category": {
		Fields: map[string]string{
			"name":   present("source.?name"),
			"parent": present("source.?parent") + ".optMap(p, type(p) == string ? p.split(' > ') : p)",
		},
	},
	"invoice": {
		Fields: map[string]string{
			"invoice_number": "source.?number",
			"order_number":   "source.?order",
			"total":          "source.?total.optMap(t, double(t))",
			"currency":       "source.?currency",
			"due_date":       "source.?due",
		},
	},
	"payment": {
		Fields: map[string]string{
			"reference":      "source.?reference",
			"invoice_number": "source.?invoice",
			"amount":         "source.?amount.optMap(a, double(a))",
			"currency":       "source.?currency",
			"method":         "source.?method",
		},
	},
}

// canonicalDefaults are the defaults of the documents whose flat default is
// the one Default gives; see the package's comment above.
var canonicalDefaults = map[string]Spec{
	"order": {
		Fields: map[string]string{
			"number":           text(first(present("source.?number"), present("source.?order_number"), present("source.?orderNumber"))),
			"type":             present("source.?type"),
			"status":           present("source.?status"),
			"currency":         present("source.?currency") + ".optMap(v, v.upperAscii())",
			"ordered_at":       first(present("source.?ordered_at"), present("source.?date_created"), present("source.?created_at")),
			"customer":         party(first(present("source.?customer"), present("source.?billing_address"), present("source.?billing"))),
			"billing_address":  address(first(present("source.?billing_address"), present("source.?billing"))),
			"shipping_address": address(first(present("source.?shipping_address"), present("source.?shipping"))),
			"payment_term":     present("source.?payment_term"),
			"payment_method":   present("source.?payment_method"),
			"employee_number":  text(present("source.?employee_number")),
			"lines":            lines(first(present("source.?lines"), present("source.?line_items"))),
			"totals":           totals(),
			"note":             first(present("source.?note"), present("source.?customer_note")),
		},
		Defaults: map[string]any{"employee_number": "999999"},
	},
	"invoice": {
		Fields: map[string]string{
			"number":    text(present("source.?number")),
			"kind":      present("source.?kind"),
			"party":     party(first(present("source.?party"), present("source.?customer"))),
			"date":      present("source.?date"),
			"due_date":  first(present("source.?due_date"), present("source.?due")),
			"currency":  present("source.?currency") + ".optMap(v, v.upperAscii())",
			"reference": text(first(present("source.?reference"), present("source.?order"))),
			"lines":     lines(present("source.?lines")),
			"taxes":     present("source.?taxes"),
			"totals":    totals(),
		},
	},
	"payment": {
		Fields: map[string]string{
			"reference": text(present("source.?reference")),
			"kind":      present("source.?kind"),
			"amount":    number("source.?amount"),
			"currency":  present("source.?currency") + ".optMap(v, v.upperAscii())",
			"date":      present("source.?date"),
			"invoice":   text(present("source.?invoice")),
			"party":     party(present("source.?party")),
		},
	},
}

// party maps the source customer or party opt to a document's.
func party(opt string) string {
	return opt + ".optMap(c, {" +
		"?'email': " + present("c.?email") + ".optMap(v, v.lowerAscii()), " +
		"?'name': " + first(present("c.?name"), fullName("c")) + ", " +
		"?'company': " + present("c.?company") + ", " +
		"?'phone': " + present("c.?phone") + ", " +
		"?'tax_id': " + first(present("c.?tax_id"), present("c.?vat_id")) + "})"
}

// lines maps the source lines opt to a document's.
func lines(opt string) string {
	return opt + ".optMap(ls, ls.map(l, {" +
		"?'sku': " + text(present("l.?sku")) + ", " +
		"?'quantity': " + number("l.?quantity") + ", " +
		"?'price': " + number(first("l.?price", "l.?unit_price")) + ", " +
		"?'tax_rate': " + number("l.?tax_rate") + ", " +
		"?'description': " + first(present("l.?description"), present("l.?name")) + "}))"
}

// totals maps the source's totals, else its total as the gross.
func totals() string {
	return first(present("source.?totals"), number("source.?total")+".optMap(g, {'gross': g})")
}

// The helpers below build the defaults' expressions; each takes and yields
// a CEL optional.

// present is opt without null and "": a source that sends "phone": null or
// "phone": "" has no phone.
func present(opt string) string {
	return opt + ".optFlatMap(v, optional.ofNonZeroValue(v))"
}

// first is the first of opts that has a value.
func first(opts ...string) string {
	return strings.Join(opts, ".or(") + strings.Repeat(")", len(opts)-1)
}

// text is opt as text: SKUs, EANs and house numbers often arrive as numbers.
func text(opt string) string { return opt + ".optMap(v, string(v))" }

// number is opt as a double, without null: prices and quantities arrive as
// numbers or as numeric text ("19.95").
func number(opt string) string {
	return opt + ".optFlatMap(v, v != null ? optional.of(double(v)) : optional.none())"
}

// fullName joins the first_name and last_name of the object at prefix (a
// source path), leaving out what is missing; none when both are.
func fullName(prefix string) string {
	return "optional.ofNonZeroValue([" + prefix + ".?first_name.orValue(''), " + prefix + ".?last_name.orValue('')]" +
		".filter(n, n != null && n != '').join(' '))"
}

// address maps the source address opt to the canonical one.
func address(opt string) string {
	return opt + ".optMap(a, {" +
		"?'name': " + first(present("a.?name"), fullName("a")) + ", " +
		"?'street': " + first(present("a.?street"), present("a.?address_1"), present("a.?address1")) + ", " +
		"?'house_number': " + text(present("a.?house_number")) + ", " +
		"?'postcode': " + text(first(present("a.?postcode"), present("a.?zip"))) + ", " +
		"?'city': " + present("a.?city") + ", " +
		"?'country': " + first(present("a.?country_code"), present("a.?country")) + ".optMap(v, v.upperAscii())})"
}

// Default returns the default mapping of entity; ok is false for an entity
// without one, whose flows map only what they name.
func Default(entity string) (spec Spec, ok bool) {
	d, ok := defaults[entity]
	if !ok {
		return Spec{}, false
	}
	return d.clone(), true
}

// documentDefault is the canonical default of every other document type.
var documentDefault = Spec{
	Fields: map[string]string{
		"number":        text(present("source.?number")),
		"document_type": present("source.?document_type"),
		"date":          present("source.?date"),
		"party":         party(first(present("source.?party"), present("source.?customer"), present("source.?supplier"))),
		"currency":      present("source.?currency") + ".optMap(v, v.upperAscii())",
		"amount":        number(first("source.?amount", "source.?total")),
		"lines":         lines(present("source.?lines")),
		"reference":     text(present("source.?reference")),
		"note":          present("source.?note"),
	},
}

// CanonicalDefault returns the default mapping of entity for a target that
// reads the entity's canonical shape (pkg/entity): for order, invoice,
// payment and the other document types the one that produces it, for every
// other entity Default's.
func CanonicalDefault(entity string) (spec Spec, ok bool) {
	if d, ok := canonicalDefaults[entity]; ok {
		return d.clone(), true
	}
	if slices.Contains(pkgentity.DocumentTypes(), entity) {
		return documentDefault.clone(), true
	}
	return Default(entity)
}

// DefaultEntities lists the entities that have a default mapping, sorted.
func DefaultEntities() []string {
	return slices.Sorted(maps.Keys(defaults))
}

func (s Spec) clone() Spec {
	out := s
	out.Fields = maps.Clone(s.Fields)
	out.Defaults = maps.Clone(s.Defaults)
	out.ValueMaps = maps.Clone(s.ValueMaps)
	out.Validations = slices.Clone(s.Validations)
	out.Exclude = slices.Clone(s.Exclude)
	return out
}

// Merge returns the mapping a flow runs: base (its entity's default)
// overridden by own (the flow's mapping). A field, default or value map that
// own names replaces base's; own's validations replace base's of the same
// field; own's filter, if any, replaces base's; and every target field own
// excludes is dropped from base with its default, value map and
// validations, so that a target without that column is not sent it. An
// exclude of "*" drops the whole default: the flow maps what it names only.
func Merge(base, own Spec) Spec {
	if slices.Contains(own.Exclude, "*") {
		base = Spec{}
	}
	out := base.clone()
	drop := map[string]bool{}
	for _, f := range own.Exclude {
		drop[f] = true
	}
	filter := func(m map[string]string) map[string]string {
		maps.DeleteFunc(m, func(k string, _ string) bool { return drop[k] })
		return m
	}
	out.Fields = filter(out.Fields)
	maps.DeleteFunc(out.Defaults, func(k string, _ any) bool { return drop[k] })
	maps.DeleteFunc(out.ValueMaps, func(k string, _ ValueMap) bool { return drop[k] })
	if out.Fields == nil {
		out.Fields = map[string]string{}
	}
	maps.Copy(out.Fields, own.Fields)
	if len(own.Defaults) > 0 {
		if out.Defaults == nil {
			out.Defaults = map[string]any{}
		}
		maps.Copy(out.Defaults, own.Defaults)
	}
	if len(own.ValueMaps) > 0 {
		if out.ValueMaps == nil {
			out.ValueMaps = map[string]ValueMap{}
		}
		maps.Copy(out.ValueMaps, own.ValueMaps)
	}
	if own.Filter != "" {
		out.Filter = own.Filter
	}
	ownRules := map[string]bool{}
	for _, r := range own.Validations {
		ownRules[r.Field] = true
	}
	rules := slices.DeleteFunc(out.Validations, func(r Rule) bool { return drop[r.Field] || ownRules[r.Field] })
	out.Validations = append(rules, own.Validations...)
	out.Exclude = nil
	if len(out.Fields) == 0 {
		out.Fields = nil
	}
	return out
}
