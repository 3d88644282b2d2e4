package tryton

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/syncline/syncline/pkg/connector"
)

// variant is one variant of a canonical product.
type variant struct {
	SKU        string         `json:"sku"`
	Attributes map[string]any `json:"attributes"`
	Price      *float64       `json:"price"`
	EAN        string         `json:"ean"`
}

// product is the canonical product record.
type product struct {
	SKU              string         `json:"sku"`
	Name             string         `json:"name"`
	Description      string         `json:"description"`
	ShortDescription string         `json:"short_description"`
	Price            *float64       `json:"price"`
	PriceIncludesTax bool           `json:"price_includes_tax"`
	Currency         string         `json:"currency"`
	EAN              string         `json:"ean"`
	Unit             string         `json:"unit"`
	Attributes       map[string]any `json:"attributes"`
	Features         map[string]any `json:"features"`
	Categories       [][]string     `json:"categories"`
	Variants         []variant      `json:"variants"`
}

// description is what Tryton's one product description holds: the long description, or
// the short one when there is no long one (Tryton 6.0 has a single description field).
func (p *product) description() string {
	if p.Description != "" {
		return p.Description
	}
	return p.ShortDescription
}

// variantSpec is a variant as the target writes it: the suffix of its code after the
// template's code, and its attributes (the product's, its features, then its own).
type variantSpec struct {
	sku, suffix string
	attributes  map[string]any
	ean         string
}

// variants spells out the Tryton variants of p: its variants, or one for a simple product.
// Tryton builds a variant's code as the template's code followed by the variant's suffix, so
// a variant's SKU must start with the product's.
func (p *product) variants() ([]variantSpec, error) {
	base := map[string]any{}
	maps.Copy(base, p.Features)
	maps.Copy(base, p.Attributes)
	if len(p.Variants) == 0 {
		return []variantSpec{{sku: p.SKU, attributes: base, ean: p.EAN}}, nil
	}
	out := make([]variantSpec, 0, len(p.Variants))
	seen := map[string]bool{}
	for _, v := range p.Variants {
		if v.SKU == "" {
			return nil, refuse("a variant has no sku")
		}
		if !strings.HasPrefix(v.SKU, p.SKU) || v.SKU == p.SKU {
			return nil, refuse("variant sku %q does not start with the product's sku %q followed by more: Tryton 6.0 builds a variant's code from the template's code and a suffix", v.SKU, p.SKU)
		}
		if seen[v.SKU] {
			return nil, refuse("variant sku %q appears twice", v.SKU)
		}
		seen[v.SKU] = true
		if v.Price != nil && p.Price != nil && math.Abs(*v.Price-*p.Price) > 1e-9 {
			return nil, refuse("variant %q has price %v, the product %v: Tryton 6.0 keeps one list price per template", v.SKU, *v.Price, *p.Price)
		}
		attrs := maps.Clone(base)
		maps.Copy(attrs, v.Attributes)
		out = append(out, variantSpec{sku: v.SKU, suffix: strings.TrimPrefix(v.SKU, p.SKU), attributes: attrs, ean: v.EAN})
	}
	return out, nil
}

// attributeValue is an attribute's value as Tryton's dict field holds it: text.
func attributeValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func attributeDict(attrs map[string]any) map[string]any {
	out := make(map[string]any, len(attrs))
	for k, v := range attrs {
		out[k] = attributeValue(v)
	}
	return out
}

// ensureAttributeSet finds or creates the product.attribute of every name in attrs (new
// ones are text attributes; a value missing from a selection attribute is added to it) and
// the attribute set that holds exactly those, named after them. It runs under t.seq.
func (t *Target) ensureAttributeSet(ctx context.Context, specs []variantSpec) (any, error) {
	values := map[string][]string{}
	for _, s := range specs {
		for k, v := range s.attributes {
			if !slices.Contains(values[k], attributeValue(v)) {
				values[k] = append(values[k], attributeValue(v))
			}
		}
	}
	if len(values) == 0 {
		return nil, nil
	}
	names := slices.Sorted(maps.Keys(values))
	type attrRow struct {
		ID        int64  `json:"id"`
		Name      string `json:"name"`
		Type      string `json:"type_"`
		Selection string `json:"selection"`
	}
	rows, err := searchRead[attrRow](ctx, t, "product.attribute", []any{[]any{"name", "in", names}}, []string{"name", "type_", "selection"}, nil)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, name := range names {
		i := slices.IndexFunc(rows, func(r attrRow) bool { return r.Name == name })
		if i < 0 {
			id, err := t.create(ctx, "product.attribute", map[string]any{"name": name, "string": name, "type_": "char"})
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
			continue
		}
		r := rows[i]
		ids = append(ids, r.ID)
		if r.Type != "selection" {
			continue
		}
		keys := map[string]bool{}
		for _, line := range strings.Split(r.Selection, "\n") {
			k, _, _ := strings.Cut(line, ":")
			keys[strings.TrimSpace(k)] = true
		}
		sel := strings.TrimRight(r.Selection, "\n")
		changed := false
		for _, v := range values[name] {
			if !keys[v] && v != "" {
				sel += "\n" + v + ":" + v
				changed = true
			}
		}
		if changed {
			if err := t.write(ctx, "product.attribute", []int64{r.ID}, map[string]any{"selection": strings.TrimLeft(sel, "\n")}); err != nil {
				return nil, err
			}
		}
	}
	setName := strings.Join(names, ", ")
	sets, err := t.searchIDs(ctx, "product.attribute.set", []any{[]any{"name", "=", setName}})
	if err != nil {
		return nil, err
	}
	if len(sets) > 0 {
		return sets[0], t.write(ctx, "product.attribute.set", sets[:1], map[string]any{"attributes": []any{[]any{"add", ids}}})
	}
	return t.create(ctx, "product.attribute.set", map[string]any{"name": setName, "attributes": []any{[]any{"add", ids}}})
}

// listPrice converts the record's price to Tryton's basis (settings.price_includes_tax)
// with the customer taxes of the accounting category, when the two differ.
func (t *Target) listPrice(ctx context.Context, p *product) (float64, error) {
	price := *p.Price
	if price < 0 {
		return 0, refuse("price %v is negative", price)
	}
	if p.PriceIncludesTax == t.settings.PriceIncludesTax {
		return price, nil
	}
	rate, err := t.taxRate(ctx)
	if err != nil {
		return 0, err
	}
	if p.PriceIncludesTax {
		return math.Round(price/(1+rate)*10000) / 10000, nil
	}
	return math.Round(price*(1+rate)*10000) / 10000, nil
}

// taxRate is the sum of the percentage customer taxes of settings.account_category.
func (t *Target) taxRate(ctx context.Context) (float64, error) {
	if t.settings.AccountCategory == "" {
		return 0, refuse("the price's tax basis differs from Tryton's (settings.price_includes_tax) and settings.account_category names no category whose taxes convert it")
	}
	cat, err := t.accountCategory(ctx)
	if err != nil {
		return 0, err
	}
	var cats []struct {
		Taxes []int64 `json:"customer_taxes_used"`
	}
	if err := t.c.call(ctx, &cats, "model.product.category.read", []int64{cat}, []string{"customer_taxes_used"}, t.ctx); err != nil {
		return 0, err
	}
	if len(cats) != 1 {
		return 0, fmt.Errorf("reading the taxes of account category %q: not found", t.settings.AccountCategory)
	}
	var taxes []struct {
		Type string        `json:"type"`
		Rate *decimalValue `json:"rate"`
	}
	if err := t.c.call(ctx, &taxes, "model.account.tax.read", cats[0].Taxes, []string{"type", "rate"}, t.ctx); err != nil {
		return 0, err
	}
	rate := 0.0
	for _, tx := range taxes {
		if tx.Type != "percentage" {
			return 0, refuse("account category %q has a customer tax of type %q; only percentage taxes convert a price's tax basis", t.settings.AccountCategory, tx.Type)
		}
		rate += tx.Rate.float()
	}
	return rate, nil
}

func (t *Target) accountCategory(ctx context.Context) (int64, error) {
	return t.lookup(ctx, "product.category", "name", t.settings.AccountCategory, "product category (settings.account_category)")
}

// checkCurrency refuses a price in another currency than the company's: Tryton keeps list
// prices in the company's currency.
func (t *Target) checkCurrency(ctx context.Context, code string) error {
	if code == "" {
		return nil
	}
	var comps []struct {
		Currency *struct {
			Code string `json:"code"`
		} `json:"currency."`
	}
	if err := t.c.call(ctx, &comps, "model.company.company.read", []int64{t.company}, []string{"currency.code"}, t.ctx); err != nil {
		return err
	}
	if len(comps) == 1 && comps[0].Currency != nil && !strings.EqualFold(comps[0].Currency.Code, code) {
		return refuse("the price is in %s, Tryton keeps list prices in the company's currency %s", code, comps[0].Currency.Code)
	}
	return nil
}

func (t *Target) variantValues(s variantSpec, key, desc string, setDesc bool) map[string]any {
	v := map[string]any{"suffix_code": s.suffix, "attributes": attributeDict(s.attributes)}
	ids := []map[string]any{{"type": nil, "code": refPrefix + key}}
	if s.ean != "" {
		ids = append(ids, map[string]any{"type": "ean", "code": s.ean})
	}
	v["identifiers"] = []any{[]any{"create", ids}}
	if setDesc {
		v["description"] = desc
	}
	return v
}

// writeProduct creates, updates or deletes one product: a template whose code is the SKU,
// with its variants.
func (t *Target) writeProduct(ctx context.Context, w connector.Write) (string, error) {
	if w.Op == connector.WriteDelete {
		return w.ID, t.deleteTemplate(ctx, w.ID)
	}
	var rec product
	have, err := decodePayload(w.Payload, &rec)
	if err != nil {
		return "", err
	}
	// Categories, attributes and attribute sets are found or created on the way.
	t.seq.Lock()
	defer t.seq.Unlock()
	switch w.Op {
	case connector.WriteCreate:
		id, err := t.createProduct(ctx, w.Key, &rec)
		if err != nil {
			return "", err
		}
		return idString(id), nil
	case connector.WriteUpdate:
		id, err := parseID(w.ID)
		if err != nil {
			return "", err
		}
		return w.ID, t.updateProduct(ctx, id, w.Key, &rec, have)
	}
	return "", refuse("write %q is not create, update or delete", w.Op)
}

func (t *Target) createProduct(ctx context.Context, key string, rec *product) (int64, error) {
	if rec.SKU == "" || rec.Name == "" || rec.Price == nil {
		return 0, refuse("a product needs a sku, a name and a price")
	}
	if err := t.checkCurrency(ctx, rec.Currency); err != nil {
		return 0, err
	}
	specs, err := rec.variants()
	if err != nil {
		return 0, err
	}
	price, err := t.listPrice(ctx, rec)
	if err != nil {
		return 0, err
	}
	unit := rec.Unit
	if unit == "" {
		unit = "u"
	}
	uom, err := t.lookup(ctx, "product.uom", "symbol", unit, "unit of measure with the symbol")
	if err != nil {
		return 0, err
	}
	values := map[string]any{
		"name": rec.Name, "code": rec.SKU, "type": "goods", "default_uom": uom, "sale_uom": uom,
		"salable": true, "list_price": decimal(price),
	}
	if t.settings.AccountCategory != "" {
		cat, err := t.accountCategory(ctx)
		if err != nil {
			return 0, err
		}
		values["account_category"] = cat
	}
	cats, err := t.categoryIDs(ctx, rec.Categories)
	if err != nil {
		return 0, err
	}
	if len(cats) > 0 {
		values["categories"] = []any{[]any{"add", cats}}
	}
	set, err := t.ensureAttributeSet(ctx, specs)
	if err != nil {
		return 0, err
	}
	if set != nil {
		values["attribute_set"] = set
	}
	desc := rec.description()
	var vs []map[string]any
	for _, s := range specs {
		vs = append(vs, t.variantValues(s, key, desc, desc != ""))
	}
	values["products"] = []any{[]any{"create", vs}}
	return t.create(ctx, "product.template", values)
}

func (t *Target) categoryIDs(ctx context.Context, paths [][]string) ([]int64, error) {
	var ids []int64
	for _, p := range paths {
		if len(p) == 0 {
			return nil, refuse("a category path is empty")
		}
		id, err := t.ensureCategory(ctx, p)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

type variantRow struct {
	ID          int64          `json:"id"`
	Code        string         `json:"code"`
	Attributes  map[string]any `json:"attributes"`
	Description string         `json:"description"`
	Identifiers []int64        `json:"identifiers"`
}

type templateRow struct {
	ID         int64         `json:"id"`
	Name       string        `json:"name"`
	Code       string        `json:"code"`
	ListPrice  *decimalValue `json:"list_price"`
	Categories []int64       `json:"categories"`
	Products   []int64       `json:"products"`
	Uom        *struct {
		Symbol string `json:"symbol"`
	} `json:"default_uom."`
}

func (t *Target) readTemplate(ctx context.Context, id int64) (*templateRow, []variantRow, error) {
	var rows []templateRow
	if err := t.c.call(ctx, &rows, "model.product.template.read", []int64{id}, []string{"name", "code", "list_price", "categories", "products", "default_uom.symbol"}, t.ctx); err != nil {
		return nil, nil, err
	}
	if len(rows) != 1 {
		return nil, nil, refuse("Tryton has no product template %d", id)
	}
	vs, err := searchRead[variantRow](ctx, t, "product.product", []any{[]any{"template", "=", id}}, []string{"code", "attributes", "description", "identifiers"}, nil)
	if err != nil {
		return nil, nil, err
	}
	return &rows[0], vs, nil
}

// updateProduct writes the fields present in the record. Variants are kept in step by SKU:
// a variant the record has is written, a new one created, one it no longer has deactivated
// (Tryton keeps it for the sales and moves that name it).
func (t *Target) updateProduct(ctx context.Context, id int64, key string, rec *product, have map[string]bool) error {
	tmpl, current, err := t.readTemplate(ctx, id)
	if err != nil {
		return err
	}
	values := map[string]any{}
	if have["name"] {
		values["name"] = rec.Name
	}
	sku := tmpl.Code
	if have["sku"] && rec.SKU != tmpl.Code {
		values["code"] = rec.SKU
		sku = rec.SKU
	}
	if have["currency"] {
		if err := t.checkCurrency(ctx, rec.Currency); err != nil {
			return err
		}
	}
	if have["price"] {
		price, err := t.listPrice(ctx, rec)
		if err != nil {
			return err
		}
		values["list_price"] = decimal(price)
	}
	if have["unit"] {
		uom, err := t.lookup(ctx, "product.uom", "symbol", rec.Unit, "unit of measure with the symbol")
		if err != nil {
			return err
		}
		values["default_uom"], values["sale_uom"] = uom, uom
	}
	if have["categories"] {
		cats, err := t.categoryIDs(ctx, rec.Categories)
		if err != nil {
			return err
		}
		var cmds []any
		if drop := slices.DeleteFunc(slices.Clone(tmpl.Categories), func(c int64) bool { return slices.Contains(cats, c) }); len(drop) > 0 {
			cmds = append(cmds, []any{"remove", drop})
		}
		if add := slices.DeleteFunc(slices.Clone(cats), func(c int64) bool { return slices.Contains(tmpl.Categories, c) }); len(add) > 0 {
			cmds = append(cmds, []any{"add", add})
		}
		if len(cmds) > 0 {
			values["categories"] = cmds
		}
	}
	shape := have["variants"] || have["attributes"] || have["features"] || have["ean"]
	var specs []variantSpec
	if shape {
		rec.SKU = sku
		if specs, err = rec.variants(); err != nil {
			return err
		}
		set, err := t.ensureAttributeSet(ctx, specs)
		if err != nil {
			return err
		}
		if set != nil {
			values["attribute_set"] = set
		}
	}
	if err := t.write(ctx, "product.template", []int64{id}, values); err != nil {
		return err
	}
	setDesc := have["description"] || have["short_description"]
	desc := rec.description()
	if !shape {
		if setDesc {
			ids := make([]int64, len(current))
			for i, v := range current {
				ids[i] = v.ID
			}
			return t.write(ctx, "product.product", ids, map[string]any{"description": desc})
		}
		return nil
	}
	if !have["variants"] && len(current) == 1 && len(specs) == 1 {
		// A simple product whose attributes, features or EAN changed: its one variant.
		specs[0].suffix = strings.TrimPrefix(current[0].Code, sku)
		specs[0].sku = current[0].Code
	}
	var keep []int64
	for _, s := range specs {
		i := slices.IndexFunc(current, func(v variantRow) bool { return v.Code == s.sku })
		if i < 0 {
			v := t.variantValues(s, key, desc, setDesc)
			v["template"] = id
			nid, err := t.create(ctx, "product.product", v)
			if err != nil {
				return err
			}
			keep = append(keep, nid)
			continue
		}
		cur := current[i]
		keep = append(keep, cur.ID)
		v := map[string]any{"attributes": attributeDict(s.attributes)}
		if setDesc {
			v["description"] = desc
		}
		if err := t.write(ctx, "product.product", []int64{cur.ID}, v); err != nil {
			return err
		}
		if s.ean != "" {
			if err := t.keepEAN(ctx, cur.ID, s.ean); err != nil {
				return err
			}
		}
	}
	if have["variants"] {
		var drop []int64
		for _, v := range current {
			if !slices.Contains(keep, v.ID) {
				drop = append(drop, v.ID)
			}
		}
		return t.write(ctx, "product.product", drop, map[string]any{"active": false})
	}
	return nil
}

// keepEAN makes the variant's EAN identifier hold ean.
func (t *Target) keepEAN(ctx context.Context, variant int64, ean string) error {
	rows, err := searchRead[identifierRow](ctx, t, "product.identifier", []any{[]any{"product", "=", variant}, []any{"type", "=", "ean"}}, []string{"code"}, nil)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		_, err := t.create(ctx, "product.identifier", map[string]any{"product": variant, "type": "ean", "code": ean})
		return err
	}
	if rows[0].Code == ean {
		return nil
	}
	return t.write(ctx, "product.identifier", []int64{rows[0].ID}, map[string]any{"code": ean})
}

func (t *Target) deleteTemplate(ctx context.Context, sid string) error {
	id, err := parseID(sid)
	if err != nil {
		return err
	}
	ok, err := t.exists(ctx, "product.template", id)
	if err != nil || !ok {
		return err
	}
	return t.c.call(ctx, nil, "model.product.template.delete", []int64{id}, t.ctx)
}

// findProducts finds templates by external reference (an identifier on their variants) or
// by SKU (the template's code or a variant's).
func (t *Target) findProducts(ctx context.Context, field string, values []string) ([]connector.Found, error) {
	matches := map[int64][]string{}
	switch field {
	case connector.FieldExternalRef:
		codes := make([]string, len(values))
		for i, v := range values {
			codes[i] = refPrefix + v
		}
		type row struct {
			Code    string `json:"code"`
			Product *struct {
				Template int64 `json:"template"`
			} `json:"product."`
		}
		rows, err := searchRead[row](ctx, t, "product.identifier", []any{[]any{"code", "in", codes}, []any{"product.template.active", "=", true}}, []string{"code", "product.template"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding products by external reference: %w", err)
		}
		for _, r := range rows {
			v := strings.TrimPrefix(r.Code, refPrefix)
			if r.Product != nil && !slices.Contains(matches[r.Product.Template], v) {
				matches[r.Product.Template] = append(matches[r.Product.Template], v)
			}
		}
	case FieldSKU:
		// A SKU is a template's code (a simple product's, or the prefix of a product
		// with variants) or one variant's code; either finds the template.
		type row struct {
			ID       int64  `json:"id"`
			Code     string `json:"code"`
			Template int64  `json:"template"`
		}
		templates, err := searchRead[row](ctx, t, "product.template", []any{[]any{"code", "in", values}}, []string{"code"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding products by sku: %w", err)
		}
		variants, err := searchRead[row](ctx, t, "product.product", []any{[]any{"code", "in", values}}, []string{"code", "template"}, nil)
		if err != nil {
			return nil, fmt.Errorf("finding products by sku: %w", err)
		}
		for _, r := range templates {
			matches[r.ID] = append(matches[r.ID], r.Code)
		}
		for _, r := range variants {
			if !slices.Contains(matches[r.Template], r.Code) {
				matches[r.Template] = append(matches[r.Template], r.Code)
			}
		}
	default:
		return nil, fmt.Errorf("finding products by %s: the tryton target finds them by external_ref or sku", field)
	}
	var out []connector.Found
	for id, vals := range matches {
		fields, err := t.readProduct(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("reading product template %d: %w", id, err)
		}
		for _, v := range vals {
			out = append(out, connector.Found{Value: v, ID: idString(id), Fields: fields})
		}
	}
	return out, nil
}

// readProduct reads a template back in the canonical shape. Its price is Tryton's list
// price, on Tryton's tax basis.
func (t *Target) readProduct(ctx context.Context, id int64) (json.RawMessage, error) {
	tmpl, vs, err := t.readTemplate(ctx, id)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"sku": tmpl.Code, "name": tmpl.Name, "price": tmpl.ListPrice.float(), "price_includes_tax": t.settings.PriceIncludesTax}
	if tmpl.Uom != nil {
		out["unit"] = tmpl.Uom.Symbol
	}
	if len(tmpl.Categories) > 0 {
		var cats []categoryRow
		if err := t.c.call(ctx, &cats, "model.product.category.read", tmpl.Categories, []string{"rec_name"}, t.ctx); err != nil {
			return nil, err
		}
		var paths [][]string
		for _, c := range cats {
			paths = append(paths, strings.Split(c.RecName, categorySeparator))
		}
		out["categories"] = paths
	}
	if len(vs) > 0 && vs[0].Description != "" {
		out["description"] = vs[0].Description
	}
	if len(vs) == 1 && vs[0].Code == tmpl.Code {
		if len(vs[0].Attributes) > 0 {
			out["attributes"] = vs[0].Attributes
		}
		return mustJSON(out), nil
	}
	var variants []map[string]any
	for _, v := range vs {
		variants = append(variants, map[string]any{"sku": v.Code, "attributes": v.Attributes})
	}
	out["variants"] = variants
	return mustJSON(out), nil
}
