package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/resourcefile"
	"github.com/syncline/syncline/services/controlplane/controlplane"
)

// assertNothingStored checks that a refused apply left the store and the
// data plane as they were: empty.
func assertNothingStored(t *testing.T, f *fixture) {
	t.Helper()
	for _, kind := range []string{"Tenant", "Integrator", "Endpoint", "Flow"} {
		if list, err := f.store.List(context.Background(), kind, ""); err != nil || len(list) != 0 {
			t.Errorf("a refused apply stored %d %ss (%v)", len(list), kind, err)
		}
	}
	if fl := f.flows.Get("acme", "orders"); fl != nil {
		t.Errorf("a refused apply published flow %s", fl.Name)
	}
}

func TestApplyRefusesFieldsOverTheirLimits(t *testing.T) {
	f := setup(t)
	valueMap := func(entries int) map[string]any {
		values := map[string]any{}
		for i := range entries {
			values[fmt.Sprint(i)] = "x"
		}
		return map[string]any{"n": map[string]any{"values": values}}
	}
	rules := make([]any, 501)
	for i := range rules {
		rules[i] = map[string]any{"field": "n", "check": "value != ''"}
	}
	bigSettings := map[string]any{"driver": "sqlite", "dsn": "x.db", "table": "orders"}
	for i := range 30 {
		bigSettings[fmt.Sprintf("s%d", i)] = strings.Repeat("s", 10_000)
	}
	tests := []struct {
		name   string
		change func(rs []*controlplanev1.Resource)
		want   []string
	}{
		{"a long description", func(rs []*controlplanev1.Resource) {
			rs[2].Spec.Fields["description"] = structpb.NewStringValue(strings.Repeat("é", 1_001))
		}, []string{"Endpoint shop", "spec.description is 1,001 characters long, above the limit of 1,000"}},
		{"a long display name", func(rs []*controlplanev1.Resource) {
			rs[0].Spec.Fields["displayName"] = structpb.NewStringValue(strings.Repeat("a", 201))
		}, []string{"Tenant acme", "spec.displayName is 201 characters long, above the limit of 200"}},
		{"a long expression", func(rs []*controlplanev1.Resource) {
			setMapping(t, rs[4], "fields", map[string]any{"n": "'" + strings.Repeat("a", 4_095) + "'"})
		}, []string{"Flow orders", "spec.mapping.fields.n is 4,097 characters long, above the limit of 4,096"}},
		{"a long filter", func(rs []*controlplanev1.Resource) {
			setMapping(t, rs[4], "filter", strings.Repeat("!", 4_097)+"true")
		}, []string{"Flow orders", "spec.mapping.filter is 4,101 characters long, above the limit of 4,096"}},
		{"a large value map", func(rs []*controlplanev1.Resource) {
			setMapping(t, rs[4], "valueMaps", valueMap(10_001))
		}, []string{"Flow orders", "spec.mapping.valueMaps.n.values has 10,001 entries, above the limit of 10,000"}},
		{"many validations", func(rs []*controlplanev1.Resource) {
			setMapping(t, rs[4], "validations", rules)
		}, []string{"Flow orders", "spec.mapping.validations has 501 entries, above the limit of 500"}},
		{"a mapping over the estimated cost", func(rs []*controlplanev1.Resource) {
			setMapping(t, rs[4], "fields", map[string]any{"n": "source.x" + strings.Repeat(`.replace("a", "aaaaaaaaaa")`, 9)})
		}, []string{"Flow orders", "spec.mapping", "fields.n: estimated cost on a record of 1048576 bytes is ", "above the limit of 100,000,000"}},
		{"a large resource", func(rs []*controlplanev1.Resource) {
			rs[3] = res(t, "Endpoint", "acme", "erp", map[string]any{"type": "sql", "description": "ERP", "settings": bigSettings})
		}, []string{"Endpoint erp", "spec is 300,", "bytes as JSON, above the limit of 262,144 bytes (256 KiB) for one resource"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := orders(t, map[string]any{"n": "source.n"})
			tt.change(rs)
			_, err := f.client.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs})
			wantErr(t, err, connect.CodeInvalidArgument, "INVALID_RESOURCE", tt.want...)
			assertNothingStored(t, f)
		})
	}
}

// setMapping sets one part of a flow resource's mapping.
func setMapping(t *testing.T, flow *controlplanev1.Resource, part string, v any) {
	t.Helper()
	val, err := structpb.NewValue(v)
	if err != nil {
		t.Fatal(err)
	}
	flow.Spec.Fields["mapping"].GetStructValue().Fields[part] = val
}

func TestApplyRefusesRequestsOverTheirLimits(t *testing.T) {
	f := setup(t)
	t.Run("too many resources", func(t *testing.T) {
		rs := make([]*controlplanev1.Resource, 1_001)
		for i := range rs {
			rs[i] = res(t, "Tenant", "", fmt.Sprintf("t%d", i), map[string]any{})
		}
		_, err := f.client.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs})
		wantErr(t, err, connect.CodeInvalidArgument, "INVALID_RESOURCE", "resources are 1,001, above the limit of 1,000 per apply")
		assertNothingStored(t, f)
	})
	t.Run("too many bytes", func(t *testing.T) {
		rs := orders(t, map[string]any{"n": "source.n"})
		fields := map[string]any{}
		for i := range 60 {
			fields[fmt.Sprintf("f%d", i)] = "'" + strings.Repeat("x", 4_000) + "'"
		}
		for i := range 40 {
			rs = append(rs, res(t, "Flow", "acme", fmt.Sprintf("orders-%d", i), map[string]any{
				"integrator": "sync", "source": "shop", "target": "erp", "entity": "order", "mapping": map[string]any{"fields": fields},
			}))
		}
		_, err := f.client.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs})
		wantErr(t, err, connect.CodeInvalidArgument, "INVALID_RESOURCE", "above the limit of 8,388,608 bytes (8 MiB) per apply")
		assertNothingStored(t, f)
	})
	t.Run("a request too large to read", func(t *testing.T) {
		rs := orders(t, map[string]any{"n": "source.n"})
		rs[2].Spec.Fields["description"] = structpb.NewStringValue(strings.Repeat("d", 50<<20))
		_, err := f.client.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs})
		if connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Errorf("Apply of a 50 MB description = %v, want ResourceExhausted", err)
		}
		assertNothingStored(t, f)
	})
}

// TestApplyStoresNothingItCannotPublish: a flow whose compiled config is
// past the bucket's limit (JSON writes "<" as "\u003c", six bytes) was
// stored and never reached the data plane; now the apply is refused whole.
func TestApplyStoresNothingItCannotPublish(t *testing.T) {
	f := setup(t)
	rs := orders(t, map[string]any{"n": "source.n"})
	values := map[string]any{}
	for i := range 20 {
		values[fmt.Sprint(i)] = strings.Repeat("<", 12_000)
	}
	setMapping(t, rs[4], "valueMaps", map[string]any{"n": map[string]any{"values": values}})
	_, err := f.client.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs})
	wantErr(t, err, connect.CodeInvalidArgument, "INVALID_RESOURCE",
		"Flow acme/orders", `compiled with its endpoints "shop" and "erp" and the default mapping of order`, "above the limit of 524,288 bytes (512 KiB)")
	assertNothingStored(t, f)

	// The same apply with a smaller value map is stored and published.
	setMapping(t, rs[4], "valueMaps", map[string]any{"n": map[string]any{"values": map[string]any{"1": "<"}}})
	if _, err := f.client.Apply(t.Context(), &controlplanev1.ApplyRequest{Resources: rs}); err != nil {
		t.Fatal(err)
	}
	waitFlow(t, f, 1)
}

// TestSchemaMirrorsTheLimits: the resource files' schema says the server's
// limits, so that `syncline apply` refuses a file before sending it.
func TestSchemaMirrorsTheLimits(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(resourcefile.Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	at := func(path string) any {
		var v any = schema["$defs"]
		for _, k := range strings.Split(path, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	for path, want := range map[string]int{
		"tenantSpec.properties.displayName.maxLength":                        controlplane.MaxDisplayName,
		"endpointSpec.properties.description.maxLength":                      controlplane.MaxDescription,
		"endpointSpec.properties.credentials.additionalProperties.maxLength": controlplane.MaxText,
		"mapping.properties.fields.maxProperties":                            controlplane.MaxMappingFields,
		"mapping.properties.fields.additionalProperties.maxLength":           controlplane.MaxExpression,
		"mapping.properties.filter.maxLength":                                controlplane.MaxExpression,
		"mapping.properties.defaults.maxProperties":                          controlplane.MaxMappingFields,
		"mapping.properties.valueMaps.maxProperties":                         controlplane.MaxMappingFields,
		"mapping.properties.validations.maxItems":                            controlplane.MaxMappingFields,
		"mapping.properties.exclude.maxItems":                                controlplane.MaxMappingFields,
		"flowSpec.properties.writeModes.maxProperties":                       controlplane.MaxMappingFields,
		"valueMap.properties.values.maxProperties":                           controlplane.MaxValueMapEntries,
		"valueMap.properties.values.additionalProperties.maxLength":          controlplane.MaxText,
		"valueMap.properties.fallback.maxLength":                             controlplane.MaxText,
		"rule.properties.check.maxLength":                                    controlplane.MaxExpression,
		"rule.properties.message.maxLength":                                  controlplane.MaxText,
	} {
		if got, _ := at(path).(float64); int(got) != want {
			t.Errorf("schema $defs.%s = %v, want %d", path, at(path), want)
		}
	}
}
