package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// SettingsError is one problem with one setting, or with the connector type itself. It is a
// user-facing error: Path says where (for example "settings.table"), Reason what is wrong and,
// where it is not obvious, what to do. ValidateSettings joins several of them so that a user
// fixes every problem in one go; errors.As finds the first.
type SettingsError struct {
	Path   string
	Reason string
}

func (e *SettingsError) Error() string { return e.Path + ": " + e.Reason }

// validate checks settings against the spec and returns a new map with defaults filled in and
// values normalised (see Registry.ValidateSettings).
func (c *checkedSpec) validate(settings map[string]any) (map[string]any, error) {
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, &SettingsError{Path: "settings." + name, Reason: fmt.Sprintf(format, args...)})
	}
	out := make(map[string]any, len(c.spec.Fields))
	for _, f := range c.spec.Fields {
		raw, ok := settings[f.Name]
		if !ok || raw == nil {
			switch {
			case f.Required:
				fail(f.Name, "required (%s)", f.Summary)
			case f.Default != nil:
				out[f.Name] = cloneValue(f.Default)
			}
			continue
		}
		v, reason := normalise(f.Type, raw)
		if reason != "" {
			fail(f.Name, "%s", reason)
			continue
		}
		if n, ok := v.(int64); ok && n < 0 && isBudgetField(f.Name) {
			fail(f.Name, "must be 0 (no limit) or more")
			continue
		}
		if s, ok := v.(string); ok {
			if s == "" && f.Required {
				fail(f.Name, "required, and empty (%s)", f.Summary)
				continue
			}
			if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
				fail(f.Name, "%s is not one of %s", shown(f, s), strings.Join(f.Enum, ", "))
				continue
			}
			if re := c.patterns[f.Name]; re != nil && !re.MatchString(s) {
				fail(f.Name, "%s is not valid: %s", shown(f, s), f.Summary)
				continue
			}
		}
		out[f.Name] = v
	}
	var unknown []string
	for name := range settings {
		if !c.has(name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		fail(name, "unknown setting; %s settings are %s", c.spec.Type, c.fieldNames())
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.spec.Check != nil {
		if err := c.spec.Check(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *checkedSpec) has(name string) bool {
	return slices.ContainsFunc(c.spec.Fields, func(f Field) bool { return f.Name == name })
}

func (c *checkedSpec) fieldNames() string {
	if len(c.spec.Fields) == 0 {
		return "none"
	}
	names := make([]string, len(c.spec.Fields))
	for i, f := range c.spec.Fields {
		names[i] = f.Name
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// shown quotes a value for an error message, unless the field is secret.
func shown(f Field, s string) string {
	if f.Secret {
		return "the value (not shown, it is secret)"
	}
	return fmt.Sprintf("%q", s)
}

// normalise converts a decoded settings value (from YAML, JSON or Go) to the one Go type a
// factory receives for the field type, or says why it cannot. The reason never contains the
// value, so it is safe for secret fields.
func normalise(typ string, v any) (any, string) {
	switch typ {
	case TypeString:
		if s, ok := v.(string); ok {
			return s, ""
		}
		return nil, "must be a string"
	case TypeBool:
		if b, ok := v.(bool); ok {
			return b, ""
		}
		return nil, "must be true or false"
	case TypeInt:
		if n, ok := toInt64(v); ok {
			return n, ""
		}
		return nil, "must be a whole number"
	case TypeDuration:
		switch d := v.(type) {
		case time.Duration:
			return d, ""
		case string:
			if parsed, err := time.ParseDuration(d); err == nil {
				return parsed, ""
			}
		}
		return nil, `must be a duration such as "30s" or "5m"`
	case TypeMap:
		switch m := v.(type) {
		case map[string]any:
			return cloneValue(m), ""
		case map[string]string:
			out := make(map[string]any, len(m))
			for k, s := range m {
				out[k] = s
			}
			return out, ""
		}
		return nil, "must be a map of names to values"
	}
	return nil, fmt.Sprintf("has unsupported type %q", typ)
}

// toInt64 accepts every integer type decoders produce, and floats with no fraction because
// JSON decodes every number as float64.
func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint:
		return int64(n), n <= math.MaxInt64
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float32:
		return toInt64(float64(n))
	case float64:
		if n != math.Trunc(n) || n < math.MinInt64 || n >= math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

// cloneValue copies a map so that no two callers share one; other values are immutable.
func cloneValue(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	return maps.Clone(m)
}

// Portable returns checked settings in the form ValidateSettings takes, for a
// store or a message between services: a duration as its text ("30s"), every
// other value as it is. Validating the result again gives the same settings.
func Portable(settings map[string]any) map[string]any {
	out := make(map[string]any, len(settings))
	for k, v := range settings {
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		out[k] = v
	}
	return out
}
