package mapping

import (
	"maps"
	"slices"
)

// Default mappings ship with the platform, one per entity: a flow of that
// entity starts from its entity's default and overrides only what it names
// (Merge). They read Syncline's documented source shapes (the README's
// "Records" section) and write the target fields the built-in connectors
// expect. Every expression is optional-safe (`source.?x`), so a source that
// lacks a field simply leaves the target field out.
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
			"name":    "source.?name",
			"email":   "source.?email.optMap(e, e.lowerAscii())",
			"company": "source.?company",
			"phone":   "source.?phone",
			"city":    "source.?address.?city",
			"country": "source.?address.?country",
		},
	},
	"product": {
		Fields: map[string]string{
			"sku":         "source.?sku",
			"name":        "source.?name",
			"description": "source.?description",
			"price":       "source.?price.optMap(p, double(p))",
			"category":    "source.?category",
		},
	},
	"stock": {
		Fields: map[string]string{
			"sku": "source.?sku",
			// Available minus reserved for sales, the usual definition.
			"quantity": "source.?available.optMap(a, double(a) - double(source.?reserved.orValue(0)))",
		},
	},
	"category": {
		Fields: map[string]string{
			"name":   "source.?name",
			"parent": "source.?parent",
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

// Default returns the default mapping of entity; ok is false for an entity
// without one, whose flows map only what they name.
func Default(entity string) (spec Spec, ok bool) {
	d, ok := defaults[entity]
	if !ok {
		return Spec{}, false
	}
	return d.clone(), true
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
