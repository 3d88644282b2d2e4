package connector_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
)

type nopTarget struct{ settings map[string]any }

func (nopTarget) Find(context.Context, string, string, []string) ([]connector.Found, error) {
	return nil, nil
}

func (nopTarget) Write(context.Context, string, []connector.Write) ([]connector.Result, error) {
	return nil, nil
}

func (nopTarget) Check(context.Context) error { return nil }

func (nopTarget) Close() error { return nil }

func nopFactory(_ context.Context, settings map[string]any, _ connector.Env) (connector.Target, error) {
	return nopTarget{settings: settings}, nil
}

// reachURL says the target reaches the host of its url setting.
func reachURL(settings map[string]any) ([]connector.Destination, error) {
	u, err := url.Parse(settings["url"].(string))
	if err != nil {
		return nil, &connector.SettingsError{Path: "settings.url", Reason: "not a URL"}
	}
	port, _ := strconv.Atoi(u.Port())
	return []connector.Destination{{Setting: "settings.url", Host: u.Hostname(), Port: port}}, nil
}

func targetSpec(typ string) connector.Spec {
	return connector.Spec{
		Type:    typ,
		Kind:    connector.KindTarget,
		Summary: "writes somewhere",
		Reaches: reachURL,
		Entities: func(map[string]any) ([]connector.Capabilities, error) {
			return []connector.Capabilities{{Entity: "customer", FindBy: []string{connector.FieldExternalRef}, Create: true}}, nil
		},
		Fields: []connector.Field{
			{Name: "url", Type: connector.TypeString, Summary: "where", Required: true},
		},
	}
}

func TestRegisterTargetRefusesBadSpecs(t *testing.T) {
	field := func(f connector.Field) connector.Spec {
		s := targetSpec("x")
		s.Fields = append(s.Fields, f)
		return s
	}
	tests := []struct {
		name    string
		spec    connector.Spec
		factory connector.TargetFactory
		wantErr string
	}{
		{"empty type", targetSpec(""), nopFactory, "spec type"},
		{"upper-case type", targetSpec("SQL"), nopFactory, "spec type"},
		{"source kind", connector.Spec{Type: "x", Kind: connector.KindSource, Summary: "s"}, nopFactory, "a target needs"},
		{"nil factory", targetSpec("x"), nil, "factory is nil"},
		{"no summary", connector.Spec{Type: "x", Kind: connector.KindTarget}, nopFactory, "summary is empty"},
		{"no destinations", connector.Spec{Type: "x", Kind: connector.KindTarget, Summary: "s"}, nopFactory, "spec reaches is nil"},
		{"bad field name", field(connector.Field{Name: "Table", Type: "string", Summary: "s"}), nopFactory, `field "Table": name`},
		{"bad field type", field(connector.Field{Name: "n", Type: "float", Summary: "s"}), nopFactory, `type "float" is not one of`},
		{"field without summary", field(connector.Field{Name: "n", Type: "int"}), nopFactory, "summary is empty"},
		{"duplicate field", field(connector.Field{Name: "url", Type: "string", Summary: "s"}), nopFactory, `"url" is declared twice`},
		{"enum on int", field(connector.Field{Name: "n", Type: "int", Summary: "s", Enum: []string{"1"}}), nopFactory, "string fields only"},
		{"bad pattern", field(connector.Field{Name: "n", Type: "string", Summary: "s", Pattern: "("}), nopFactory, "compiling pattern"},
		{"required with default", field(connector.Field{Name: "n", Type: "int", Summary: "s", Required: true, Default: 1}), nopFactory, "cannot have a default"},
		{"default of wrong type", field(connector.Field{Name: "n", Type: "int", Summary: "s", Default: "one"}), nopFactory, "must be a whole number"},
		{"default outside enum", field(connector.Field{Name: "n", Type: "string", Summary: "s", Enum: []string{"a"}, Default: "b"}), nopFactory, "not in the enum"},
		{"default against pattern", field(connector.Field{Name: "n", Type: "string", Summary: "s", Pattern: "[a-z]+", Default: "B"}), nopFactory, "does not match the pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := connector.NewRegistry().RegisterTarget(tt.spec, tt.factory)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("RegisterTarget error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRegisterRefusesDuplicateType(t *testing.T) {
	r := connector.NewRegistry()
	if err := r.RegisterTarget(targetSpec("sql"), nopFactory); err != nil {
		t.Fatalf("first RegisterTarget: %v", err)
	}
	source := connector.Spec{Type: "sql", Kind: connector.KindSource, Summary: "events"}
	for name, register := range map[string]func() error{
		"target": func() error { return r.RegisterTarget(targetSpec("sql"), nopFactory) },
		"source": func() error { return r.RegisterSource(source) },
	} {
		t.Run(name, func(t *testing.T) {
			if err := register(); err == nil || !strings.Contains(err.Error(), "already registered") {
				t.Fatalf("second registration error = %v, want already registered", err)
			}
		})
	}
}

func TestSpecsAreSortedCopies(t *testing.T) {
	r := connector.NewRegistry()
	for _, typ := range []string{"sql", "rest", "webhook"} {
		if err := r.RegisterTarget(targetSpec(typ), nopFactory); err != nil {
			t.Fatalf("RegisterTarget(%s): %v", typ, err)
		}
	}
	if err := r.RegisterSource(connector.Spec{Type: "nats", Kind: connector.KindSource, Summary: "events on the bus"}); err != nil {
		t.Fatalf("RegisterSource: %v", err)
	}
	var got []string
	for _, s := range r.Specs() {
		got = append(got, s.Type)
	}
	if want := "nats,rest,sql,webhook"; strings.Join(got, ",") != want {
		t.Fatalf("Specs types = %v, want %s", got, want)
	}

	spec, ok := r.Spec("sql")
	if !ok {
		t.Fatal(`Spec("sql") not found`)
	}
	spec.Fields[0].Required = false
	if _, err := r.ValidateSettings("sql", map[string]any{}); err == nil {
		t.Fatal("changing a returned spec changed the registry: url is no longer required")
	}
	if _, ok := r.Spec("ftp"); ok {
		t.Fatal(`Spec("ftp") found, want not registered`)
	}
}

func TestOpenTarget(t *testing.T) {
	r := connector.NewRegistry()
	if err := r.RegisterTarget(targetSpec("rest"), nopFactory); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterTarget(targetSpec("broken"), func(context.Context, map[string]any, connector.Env) (connector.Target, error) {
		return nil, errors.New("dialing: refused")
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterSource(connector.Spec{Type: "nats", Kind: connector.KindSource, Summary: "events"}); err != nil {
		t.Fatal(err)
	}
	egress, err := connector.NewEgress(connector.EgressConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		typ      string
		settings map[string]any
		wantErr  string
	}{
		{"opens with valid settings", "rest", map[string]any{"url": "http://93.184.215.14:80"}, ""},
		{"refused by the egress policy", "rest", map[string]any{"url": "http://127.0.0.1:80"}, "settings.url: host 127.0.0.1:80 (a loopback address) is not in the egress policy"},
		{"unknown type", "ftp", map[string]any{}, `type: "ftp" is not a registered connector type; use one of broken, nats, rest`},
		{"source type", "nats", map[string]any{}, `type: "nats" is a source connector`},
		{"invalid settings", "rest", map[string]any{}, "settings.url: required"},
		{"factory error is wrapped", "broken", map[string]any{"url": "http://93.184.215.14:80"}, "opening broken target: dialing: refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := r.OpenTarget(context.Background(), tt.typ, tt.settings, connector.Env{Tenant: "acme", Egress: egress})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("OpenTarget: %v", err)
				}
				if got := target.(nopTarget).settings["url"]; got != "http://93.184.215.14:80" {
					t.Fatalf("factory got url %v, want the validated settings", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("OpenTarget error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDestinations(t *testing.T) {
	r := connector.NewRegistry()
	if err := r.RegisterTarget(targetSpec("rest"), nopFactory); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterSource(connector.Spec{Type: "nats", Kind: connector.KindSource, Summary: "events"}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Destinations("rest", map[string]any{"url": "https://erp.example.com:8443/api"})
	if err != nil || len(got) != 1 || got[0] != (connector.Destination{Setting: "settings.url", Host: "erp.example.com", Port: 8443}) {
		t.Fatalf("Destinations = %+v, %v; want erp.example.com:8443 from settings.url", got, err)
	}
	if _, err := r.Destinations("rest", map[string]any{}); err == nil || !strings.Contains(err.Error(), "settings.url: required") {
		t.Fatalf("Destinations of invalid settings = %v, want the settings error", err)
	}
	if got, err := r.Destinations("nats", map[string]any{}); err != nil || got != nil {
		t.Fatalf("Destinations of a source that reaches nothing = %+v, %v", got, err)
	}
}
