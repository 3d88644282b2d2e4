package connector

import (
	"fmt"
	"regexp"
	"slices"
)

// The value types a setting can have. They are few on purpose: each maps to one JSON Schema
// type and to one Go type in the settings a factory receives (see ValidateSettings).
const (
	TypeString   = "string"
	TypeInt      = "int"
	TypeBool     = "bool"
	TypeDuration = "duration"
	TypeMap      = "map"
)

// Spec describes a connector's settings. It drives validation when an endpoint is saved, and
// the reference docs and JSON Schema, so every field carries a summary a user can act on.
type Spec struct {
	// Type is the name endpoints refer to ("sql", "rest"): lower-case letters, digits,
	// '-' and '_', starting with a letter.
	Type    string
	Kind    Kind
	Summary string
	Fields  []Field
	// KeyIsID says that the target identifies records by their source key
	// (it upserts by key), so the id it returns is always the key. The
	// ledger then knows a created record's id without waiting for the
	// target to confirm it.
	KeyIsID bool
	// Reaches lists what an endpoint's settings make the connector reach, so that the egress
	// policy is checked when the endpoint is applied and again when it is opened. Every
	// target has it; a source that runs nothing on Syncline's side (nats) has none.
	Reaches ReachFunc
	// Entities lists what an endpoint with these (checked) settings serves, per entity;
	// every target has it. The control plane checks each flow against it, and the
	// connector composes the flow's recipe from it.
	Entities EntitiesFunc
	// Check checks what the fields' own rules cannot: settings that depend on each other, or
	// a number's bounds. It gets settings that passed every field's rules, with defaults
	// filled in, and runs wherever they are validated (an endpoint's apply, the data plane's
	// open), so that a bad value is refused when it is saved, not when it is first used. A
	// credential may be a placeholder there ("(secret)" where the control plane keeps the
	// stored value), so Check judges no credential's value. A problem is a *SettingsError
	// (several are joined); nil: no checks beyond the fields'.
	Check func(settings map[string]any) error
	// Budget is the default of the two settings the registry adds to every target spec
	// (max_requests_per_second and max_concurrency, see BudgetFromSettings): a target whose
	// system cannot take parallel writes says so here (MaxConcurrency 1). Zero is no limit.
	Budget BudgetConfig
}

// EntitiesFunc lists the entities an endpoint's checked settings serve, with what the
// target can do with each. A problem with the settings is a *SettingsError.
type EntitiesFunc func(settings map[string]any) ([]Capabilities, error)

// Field describes one setting.
type Field struct {
	// Name is the settings key: lower-case letters, digits and '_', starting with a letter.
	Name string
	// Type is one of TypeString, TypeInt, TypeBool, TypeDuration, TypeMap.
	Type    string
	Summary string
	// Required fields must be given; they cannot have a Default.
	Required bool
	// Default is filled in when the setting is absent; nil means absent stays absent.
	Default any
	// Enum lists the allowed values of a string setting.
	Enum []string
	// Pattern is a regular expression (RE2) that a string setting must match in full; it
	// lets the control plane refuse a bad value when it is saved, not when it is first used.
	Pattern string
	// Secret settings (passwords, DSNs, tokens) are never echoed in an error message.
	Secret bool
	// Credential settings (passwords, API tokens) are an endpoint's credentials: given
	// under spec.credentials, stored encrypted, never returned. A credential is Secret too.
	Credential bool
}

// checkedSpec is a spec that passed checkSpec, with its patterns compiled and its defaults
// normalised so that validation does neither per call.
type checkedSpec struct {
	spec     Spec
	patterns map[string]*regexp.Regexp
}

// checkSpec reports the first thing wrong with a spec; specs are written by connector authors,
// so one error at a time is enough, and it names the field.
func checkSpec(spec Spec) (*checkedSpec, error) {
	if !isName(spec.Type, true) {
		return nil, fmt.Errorf("spec type %q must be lower-case letters, digits, '-' or '_', starting with a letter", spec.Type)
	}
	if spec.Kind != KindSource && spec.Kind != KindTarget {
		return nil, fmt.Errorf("spec kind %q must be %q or %q", spec.Kind, KindSource, KindTarget)
	}
	if spec.Summary == "" {
		return nil, fmt.Errorf("spec summary is empty; say what the connector connects to")
	}
	if spec.Kind == KindTarget && spec.Reaches == nil {
		return nil, fmt.Errorf("spec reaches is nil; a target lists the hosts and files its settings reach, for the egress policy")
	}
	if spec.Kind == KindTarget && spec.Entities == nil {
		return nil, fmt.Errorf("spec entities is nil; a target says which entities it serves and what it can do with each")
	}
	if spec.Kind == KindTarget && (spec.Budget.RequestsPerSecond < 0 || spec.Budget.MaxConcurrency < 0) {
		return nil, fmt.Errorf("spec budget %+v: a limit is 0 (none) or more", spec.Budget)
	}
	c := &checkedSpec{spec: cloneSpec(spec), patterns: map[string]*regexp.Regexp{}}
	for _, f := range c.spec.Fields {
		if isBudgetField(f.Name) {
			return nil, fmt.Errorf("field %q: every target has it, added by the registry; set its default with Spec.Budget", f.Name)
		}
	}
	if spec.Kind == KindTarget {
		c.spec.Fields = append(c.spec.Fields, budgetFields(spec.Budget)...)
	}
	seen := map[string]bool{}
	for i := range c.spec.Fields {
		f := &c.spec.Fields[i]
		if err := checkField(f, c.patterns); err != nil {
			return nil, fmt.Errorf("field %q: %w", f.Name, err)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("field %q is declared twice", f.Name)
		}
		seen[f.Name] = true
	}
	return c, nil
}

// checkField checks one field and normalises its default in place.
func checkField(f *Field, patterns map[string]*regexp.Regexp) error {
	if !isName(f.Name, false) {
		return fmt.Errorf("name must be lower-case letters, digits or '_', starting with a letter")
	}
	switch f.Type {
	case TypeString, TypeInt, TypeBool, TypeDuration, TypeMap:
	default:
		return fmt.Errorf("type %q is not one of %s, %s, %s, %s, %s", f.Type, TypeString, TypeInt, TypeBool, TypeDuration, TypeMap)
	}
	if f.Summary == "" {
		return fmt.Errorf("summary is empty; say what the setting does")
	}
	if (len(f.Enum) > 0 || f.Pattern != "") && f.Type != TypeString {
		return fmt.Errorf("enum and pattern apply to string fields only")
	}
	if f.Credential && (!f.Secret || f.Type != TypeString) {
		return fmt.Errorf("a credential must be a secret string")
	}
	if f.Pattern != "" {
		re, err := regexp.Compile(`^(?:` + f.Pattern + `)$`)
		if err != nil {
			return fmt.Errorf("compiling pattern: %w", err)
		}
		patterns[f.Name] = re
	}
	if f.Default == nil {
		return nil
	}
	if f.Required {
		return fmt.Errorf("a required field cannot have a default")
	}
	v, reason := normalise(f.Type, f.Default)
	if reason != "" {
		return fmt.Errorf("default %v: %s", f.Default, reason)
	}
	if len(f.Enum) > 0 && !slices.Contains(f.Enum, v.(string)) {
		return fmt.Errorf("default %q is not in the enum", v)
	}
	if re := patterns[f.Name]; re != nil && !re.MatchString(v.(string)) {
		return fmt.Errorf("default %q does not match the pattern", v)
	}
	f.Default = v
	return nil
}

// isName reports whether s is a lower-case name; dash allows '-' too (type names may have it,
// settings keys may not, so that they stay valid identifiers in every config language).
func isName(s string, dash bool) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
		case r == '-' && dash:
		default:
			return false
		}
	}
	return true
}

// cloneSpec deep-copies a spec so that neither the registering code nor a caller of Spec can
// change what the registry validates against.
func cloneSpec(s Spec) Spec {
	s.Fields = slices.Clone(s.Fields)
	for i := range s.Fields {
		s.Fields[i].Enum = slices.Clone(s.Fields[i].Enum)
		s.Fields[i].Default = cloneValue(s.Fields[i].Default)
	}
	return s
}
