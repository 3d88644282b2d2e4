package connector_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

func settingsRegistry(t *testing.T) *connector.Registry {
	t.Helper()
	r := connector.NewRegistry()
	err := r.RegisterTarget(connector.Spec{
		Type:    "sql",
		Kind:    connector.KindTarget,
		Summary: "rows in a table",
		Reaches: func(map[string]any) ([]connector.Destination, error) { return nil, nil },
		Entities: func(map[string]any) ([]connector.Capabilities, error) {
			return []connector.Capabilities{{Entity: connector.AnyEntity}}, nil
		},
		Fields: []connector.Field{
			{Name: "driver", Type: connector.TypeString, Summary: "database kind", Required: true, Enum: []string{"postgres", "sqlite"}},
			{Name: "dsn", Type: connector.TypeString, Summary: "where the database is", Required: true, Secret: true, Pattern: "[a-z]+://.*"},
			{Name: "table", Type: connector.TypeString, Summary: "a SQL identifier", Required: true, Pattern: "[a-z_]+"},
			{Name: "batch", Type: connector.TypeInt, Summary: "rows per statement", Default: 100},
			{Name: "create", Type: connector.TypeBool, Summary: "create the table", Default: false},
			{Name: "timeout", Type: connector.TypeDuration, Summary: "per push", Default: "30s"},
			{Name: "headers", Type: connector.TypeMap, Summary: "extra headers"},
		},
	}, nopFactory)
	if err != nil {
		t.Fatalf("RegisterTarget: %v", err)
	}
	return r
}

func TestValidateSettingsFillsDefaultsAndNormalises(t *testing.T) {
	r := settingsRegistry(t)
	base := map[string]any{"driver": "postgres", "dsn": "postgres://db", "table": "orders"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return m
	}
	tests := []struct {
		name     string
		settings map[string]any
		key      string
		want     any
	}{
		{"int default", base, "batch", int64(100)},
		{"bool default", base, "create", false},
		{"duration default", base, "timeout", 30 * time.Second},
		{"int from YAML int", with("batch", 7), "batch", int64(7)},
		{"int from JSON float", with("batch", 7.0), "batch", int64(7)},
		{"int from json.Number", with("batch", json.Number("7")), "batch", int64(7)},
		{"duration from string", with("timeout", "1m30s"), "timeout", 90 * time.Second},
		{"duration as is", with("timeout", time.Second), "timeout", time.Second},
		{"map of strings", with("headers", map[string]string{"a": "b"}), "headers", map[string]any{"a": "b"}},
		{"absent map stays absent", base, "headers", nil},
		{"null is absent", with("batch", nil), "batch", int64(100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ValidateSettings("sql", tt.settings)
			if err != nil {
				t.Fatalf("ValidateSettings: %v", err)
			}
			if !reflect.DeepEqual(got[tt.key], tt.want) {
				t.Fatalf("settings[%q] = %#v, want %#v", tt.key, got[tt.key], tt.want)
			}
		})
	}
}

func TestValidateSettingsErrors(t *testing.T) {
	r := settingsRegistry(t)
	tests := []struct {
		name     string
		settings map[string]any
		want     []string
	}{
		{"nothing given", nil, []string{
			"settings.driver: required (database kind)",
			"settings.dsn: required (where the database is)",
			"settings.table: required (a SQL identifier)",
		}},
		{"empty required string", map[string]any{"driver": "sqlite", "dsn": "x://y", "table": ""}, []string{
			"settings.table: required, and empty (a SQL identifier)",
		}},
		{"enum", map[string]any{"driver": "mysql", "dsn": "x://y", "table": "t"}, []string{
			`settings.driver: "mysql" is not one of postgres, sqlite`,
		}},
		{"unknown key lists known ones", map[string]any{"driver": "sqlite", "dsn": "x://y", "table": "t", "tabel": "t"}, []string{
			"settings.tabel: unknown setting; sql settings are batch, create, driver, dsn, headers, max_concurrency, max_requests_per_second, table, timeout",
		}},
		{"types", map[string]any{"driver": 1, "dsn": "x://y", "table": "t", "batch": 1.5, "create": "yes", "timeout": 30, "headers": []string{"a"}}, []string{
			"settings.driver: must be a string",
			"settings.batch: must be a whole number",
			"settings.create: must be true or false",
			`settings.timeout: must be a duration such as "30s" or "5m"`,
			"settings.headers: must be a map of names to values",
		}},
		{"pattern", map[string]any{"driver": "sqlite", "dsn": "x://y", "table": "Orders; DROP"}, []string{
			`settings.table: "Orders; DROP" is not valid: a SQL identifier`,
		}},
		{"secret value never shown", map[string]any{"driver": "sqlite", "dsn": "hunter2", "table": "t"}, []string{
			"settings.dsn: the value (not shown, it is secret) is not valid: where the database is",
		}},
		{"secret of wrong type", map[string]any{"driver": "sqlite", "dsn": 42, "table": "t"}, []string{
			"settings.dsn: must be a string",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ValidateSettings("sql", tt.settings)
			if err == nil {
				t.Fatalf("ValidateSettings = %v, want an error", got)
			}
			var se *connector.SettingsError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SettingsError", err)
			}
			if lines := strings.Split(err.Error(), "\n"); len(lines) != len(tt.want) {
				t.Errorf("error has %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%v\nlacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestPortableSettingsValidateAgain: checked settings in their portable form,
// through JSON as the flow config bucket carries them, validate to the same
// settings.
func TestPortableSettingsValidateAgain(t *testing.T) {
	r := connector.NewRegistry()
	if err := r.RegisterTarget(connector.Spec{Type: "x", Kind: connector.KindTarget, Summary: "s",
		Reaches:  func(map[string]any) ([]connector.Destination, error) { return nil, nil },
		Entities: func(map[string]any) ([]connector.Capabilities, error) { return nil, nil },
		Fields: []connector.Field{
			{Name: "timeout", Type: connector.TypeDuration, Default: "30s", Summary: "s"},
			{Name: "retries", Type: connector.TypeInt, Default: 3, Summary: "s"},
			{Name: "on", Type: connector.TypeBool, Default: true, Summary: "s"},
			{Name: "name", Type: connector.TypeString, Default: "n", Summary: "s"},
		}}, func(context.Context, map[string]any, connector.Env) (connector.Target, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	first, err := r.ValidateSettings("x", map[string]any{"timeout": "1m30s"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(connector.Portable(first))
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	again, err := r.ValidateSettings("x", back)
	if err != nil {
		t.Fatalf("validating the portable settings %s again: %v", b, err)
	}
	if !reflect.DeepEqual(first, again) {
		t.Errorf("validated again: %v, want %v", again, first)
	}
}

// TestSpecCheck: a spec's Check sees settings that passed the fields' rules,
// defaults filled in, and its refusal is what validation returns; settings
// the fields refuse never reach it.
func TestSpecCheck(t *testing.T) {
	r := connector.NewRegistry()
	var seen []map[string]any
	err := r.RegisterSource(connector.Spec{
		Type: "hook", Kind: connector.KindSource, Summary: "posts changes",
		Fields: []connector.Field{
			{Name: "limit", Type: connector.TypeInt, Summary: "bytes per request", Default: 1024},
		},
		Check: func(s map[string]any) error {
			seen = append(seen, s)
			if s["limit"].(int64) > 4096 {
				return &connector.SettingsError{Path: "settings.limit", Reason: "at most 4096"}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.ValidateSettings("hook", nil)
	if err != nil || got["limit"] != int64(1024) {
		t.Fatalf("ValidateSettings(nil) = %v, %v; want the default", got, err)
	}
	_, err = r.ValidateSettings("hook", map[string]any{"limit": 5000})
	var se *connector.SettingsError
	if !errors.As(err, &se) || se.Path != "settings.limit" || se.Reason != "at most 4096" {
		t.Fatalf("ValidateSettings(limit 5000) = %v, want Check's refusal", err)
	}
	before := len(seen)
	if _, err := r.ValidateSettings("hook", map[string]any{"limit": "many"}); err == nil {
		t.Fatal("a limit that is no number was accepted")
	}
	if len(seen) != before {
		t.Errorf("Check ran on settings the fields refused")
	}
}
