package controlplane

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/syncline/syncline/pkg/flowconfig"
)

// Limits on what an apply may store. They keep one tenant's resources from
// filling the store, the bus or the data plane's memory, and keep every
// stored resource publishable: the README's "Limits" table lists them, and
// the resource files' JSON Schema mirrors those a schema can say, but the
// server is the authority. Each is far above what a real integration needs.
const (
	// MaxResourcesPerApply bounds the resources of one apply, which is
	// checked, stored and published as a whole.
	MaxResourcesPerApply = 1_000
	// MaxApplySize bounds the specs of one apply together, as JSON.
	MaxApplySize = 8 << 20
	// MaxResourceSize bounds one resource's spec as JSON, as it is stored.
	MaxResourceSize = 256 << 10
	// maxRequestSize bounds an Apply request on the wire, before it is
	// decoded: MaxApplySize with room for the protobuf framing.
	maxRequestSize = 2 * MaxApplySize

	// MaxDescription bounds an endpoint's description, in characters.
	MaxDescription = 1_000
	// MaxDisplayName bounds a tenant's display name, in characters.
	MaxDisplayName = 200
	// MaxExpression bounds one mapping expression (a field's, the filter, a
	// validation's check), in characters.
	MaxExpression = 4_096
	// MaxMappingFields bounds a flow's own fields, defaults, value maps,
	// validations and excludes, each.
	MaxMappingFields = 500
	// MaxValueMapEntries bounds the values of one value map.
	MaxValueMapEntries = 10_000
	// MaxText bounds every other string of a spec that a user writes: a
	// field name, a value map's values and fallback, a validation's
	// message, a setting's value, a credential, a webhook URL.
	MaxText = 16 << 10
)

// checkSize refuses a resource whose spec is past MaxResourceSize.
func checkSize(spec []byte) error {
	if len(spec) > MaxResourceSize {
		return fieldErr("spec", "is %s bytes as JSON, above the limit of %s bytes (256 KiB) for one resource: keep large data out of resources",
			thousands(len(spec)), thousands(MaxResourceSize))
	}
	return nil
}

// checkTenantLimits, checkEndpointLimits and checkFlowLimits refuse fields
// past their limits, naming the field, its size and the limit.
func checkTenantLimits(s *TenantSpec) error {
	if err := maxChars("spec.displayName", s.DisplayName, MaxDisplayName); err != nil {
		return err
	}
	if a := s.Alerts; a != nil {
		if err := maxChars("spec.alerts.webhook", a.Webhook, MaxText); err != nil {
			return err
		}
		return maxChars("spec.alerts.secret", a.Secret, MaxText)
	}
	return nil
}

func checkEndpointLimits(s *EndpointSpec) error {
	if err := maxChars("spec.type", s.Type, MaxText); err != nil {
		return err
	}
	if err := maxChars("spec.description", s.Description, MaxDescription); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(s.Settings)) {
		if err := maxKey("spec.settings", k); err != nil {
			return err
		}
		if v, ok := s.Settings[k].(string); ok {
			if err := maxChars("spec.settings."+k, v, MaxText); err != nil {
				return err
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Credentials)) {
		if err := maxKey("spec.credentials", k); err != nil {
			return err
		}
		if err := maxChars("spec.credentials."+k, s.Credentials[k], MaxText); err != nil {
			return err
		}
	}
	return nil
}

func checkFlowLimits(s *FlowSpec) error {
	m := s.Mapping
	const at = "spec.mapping."
	for _, n := range []struct {
		path string
		n    int
	}{
		{at + "fields", len(m.Fields)}, {at + "defaults", len(m.Defaults)}, {at + "valueMaps", len(m.ValueMaps)},
		{at + "validations", len(m.Validations)}, {at + "exclude", len(m.Exclude)}, {"spec.writeModes", len(s.WriteModes)},
	} {
		if n.n > MaxMappingFields {
			return fieldErr(n.path, "has %s entries, above the limit of %s", thousands(n.n), thousands(MaxMappingFields))
		}
	}
	if err := maxChars("spec.keyField", s.KeyField, MaxText); err != nil {
		return err
	}
	if err := maxChars(at+"filter", m.Filter, MaxExpression); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(m.Fields)) {
		if err := maxKey(at+"fields", name); err != nil {
			return err
		}
		if err := maxChars(at+"fields."+name, m.Fields[name], MaxExpression); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Defaults)) {
		if err := maxKey(at+"defaults", name); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.ValueMaps)) {
		vm := m.ValueMaps[name]
		path := at + "valueMaps." + name
		if len(vm.Values) > MaxValueMapEntries {
			return fieldErr(path+".values", "has %s entries, above the limit of %s", thousands(len(vm.Values)), thousands(MaxValueMapEntries))
		}
		for _, k := range slices.Sorted(maps.Keys(vm.Values)) {
			if err := maxKey(path+".values", k); err != nil {
				return err
			}
			if err := maxChars(path+".values."+k, vm.Values[k], MaxText); err != nil {
				return err
			}
		}
		if vm.Fallback != nil {
			if err := maxChars(path+".fallback", *vm.Fallback, MaxText); err != nil {
				return err
			}
		}
	}
	for i, r := range m.Validations {
		path := fmt.Sprintf("%svalidations[%d]", at, i)
		if err := maxChars(path+".check", r.Check, MaxExpression); err != nil {
			return err
		}
		if err := maxChars(path+".field", r.Field, MaxText); err != nil {
			return err
		}
		if err := maxChars(path+".message", r.Message, MaxText); err != nil {
			return err
		}
	}
	for i, f := range m.Exclude {
		if err := maxChars(fmt.Sprintf("%sexclude[%d]", at, i), f, MaxText); err != nil {
			return err
		}
	}
	return nil
}

// maxChars refuses a string longer than limit characters.
func maxChars(path, s string, limit int) error {
	// Bytes bound characters from above: most strings need no count.
	if len(s) <= limit {
		return nil
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return fieldErr(path, "is %s characters long, above the limit of %s", thousands(n), thousands(limit))
	}
	return nil
}

// maxKey refuses a key of a map longer than MaxText characters.
func maxKey(path, key string) error {
	if len(key) <= MaxText {
		return nil
	}
	if n := utf8.RuneCountInString(key); n > MaxText {
		return fieldErr(path, "has a key %s characters long, above the limit of %s", thousands(n), thousands(MaxText))
	}
	return nil
}

// checkCompiledSize refuses a compiled flow config that the flow-config
// bucket would not take: the flow with its endpoints, the entity's default
// mapping and sealed credentials can pass the limit though each resource is
// within its own.
func checkCompiledSize(f *flowconfig.Flow, data []byte) error {
	if len(data) > flowconfig.MaxValueSize {
		return fmt.Errorf("compiled with its endpoints %q and %q and the default mapping of %s, it is %s bytes, above the limit of %s bytes (512 KiB) of a flow config on the bus: make its mapping or its endpoints' settings smaller",
			f.Source.Name, f.Target.Name, f.Entity, thousands(len(data)), thousands(flowconfig.MaxValueSize))
	}
	return nil
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
