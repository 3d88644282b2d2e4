package mapping

// Spec is a flow's mapping as users write it (YAML in a flow resource, JSON over the API).
// Compile turns it into a Program.
type Spec struct {
	// Fields maps a target field to a CEL expression over `source`, the decoded source
	// record. An expression that yields an empty optional (`source.?x`) leaves the field out.
	Fields map[string]string `json:"fields,omitempty" yaml:"fields,omitempty"`
	// Filter is a CEL bool over `source`. Empty keeps every record; false skips the record
	// with the reason "filtered out by <filter>".
	Filter string `json:"filter,omitempty" yaml:"filter,omitempty"`
	// Defaults enrich the target record: a default is used when its field is missing, null or
	// "" after mapping and value maps (for example employeeNumber: 999999). A default may name
	// a field that is not in Fields.
	Defaults map[string]any `json:"defaults,omitempty" yaml:"defaults,omitempty"`
	// ValueMaps translate the values of target fields (payment terms, tax codes...).
	ValueMaps map[string]ValueMap `json:"valueMaps,omitempty" yaml:"valueMaps,omitempty"`
	// Validations are checked on the finished target record.
	Validations []Rule `json:"validations,omitempty" yaml:"validations,omitempty"`
	// Exclude names target fields of the entity's default mapping that this
	// flow does not write; "*" excludes them all (see Merge).
	Exclude []string `json:"exclude,omitempty" yaml:"exclude,omitempty"`
}

// ValueMap translates the value of one target field from the source system's vocabulary to
// the target's.
type ValueMap struct {
	// Values maps a source value, written as a string (3, 2.5, true, "NET30"), to the target
	// value.
	Values map[string]string `json:"values" yaml:"values"`
	// Fallback is used for a value that Values does not list. Nil makes an unlisted value an
	// error that names the field and the value, so that a new code in the source stops the
	// record instead of reaching the target untranslated.
	Fallback *string `json:"fallback,omitempty" yaml:"fallback,omitempty"`
}

// Rule is one validation of a target field, for targets that demand more than the source
// guarantees (for example "SKU digits only").
type Rule struct {
	// Field is the target field to check.
	Field string `json:"field" yaml:"field"`
	// Check is a CEL bool over `value` (the field's value, null when the field is missing)
	// and `target` (the whole target record), e.g. `value.matches('^[0-9]+$')`.
	Check string `json:"check" yaml:"check"`
	// Message is shown when the check is false; empty shows the check itself.
	Message string `json:"message,omitempty" yaml:"message,omitempty"`
}
