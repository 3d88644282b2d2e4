package console

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSettings(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       map[string]any
		err        string
	}{
		{name: "empty", text: " \n", want: nil},
		{name: "yaml", text: "driver: sqlite\ndsn: erp.db\ncreate_table: true\nport: 5432\n",
			want: map[string]any{"driver": "sqlite", "dsn": "erp.db", "create_table": true, "port": 5432}},
		{name: "json", text: `{"base_url": "http://x", "entities": {"customer": {"path": "/c"}}, "n": 1.5}`,
			want: map[string]any{"base_url": "http://x", "entities": map[string]any{"customer": map[string]any{"path": "/c"}}, "n": 1.5}},
		{name: "a date stays the text written", text: "since: 2026-01-02\nlist: [a, 2026-01-03]\n",
			want: map[string]any{"since": "2026-01-02", "list": []any{"a", "2026-01-03"}}},
		{name: "a quoted number stays text", text: `port: "5432"`, want: map[string]any{"port": "5432"}},
		{name: "not a mapping", text: "- a\n- b\n", err: "a mapping of names to values"},
		{name: "not yaml", text: "driver: [sqlite", err: "neither YAML nor JSON"},
		{name: "alias", text: "a: &x {b: 1}\nc: *x\n", err: "c (line 2): anchors and aliases (*x)"},
		{name: "twice", text: "poll:\n  a: 1\n  a: 2\n", err: "poll.a is given twice (line 3)"},
		{name: "a list as a name", text: "[a]: 1\n", err: "a name is text"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseSettings(c.text)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("parseSettings(%q) = %v, %v; want an error with %q", c.text, got, err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("parseSettings(%q) = %#v, %v; want %#v", c.text, got, err, c.want)
			}
		})
	}
}

func TestParseCredentials(t *testing.T) {
	got, err := parseCredentials("password=p a=ss=\r\n\n token = t \n")
	if want := map[string]string{"password": "p a=ss=", "token": " t "}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, %v; want %q: the value is as written after the first =", got, err, want)
	}
	for text, want := range map[string]string{
		"hunter2":         "line 1 is not name=value",
		"=x":              "line 1 is not name=value",
		"a=1\n\na=2":      "line 3 gives credential a again",
		"ok=1\nsecretval": "line 2 is not name=value",
	} {
		_, err := parseCredentials(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseCredentials(%q): %v, want %q", text, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "secretval")) {
			t.Errorf("parseCredentials(%q) shows the line in its error: %v", text, err)
		}
	}
}

func TestEditedCredentials(t *testing.T) {
	for _, c := range []struct {
		name   string
		stored []string
		given  map[string]string
		remove map[string]bool
		want   map[string]any
	}{
		{name: "none stored or given", want: nil},
		{name: "kept", stored: []string{"token", "password"}, want: map[string]any{"token": "(secret)", "password": "(secret)"}},
		{name: "one replaced, the other kept", stored: []string{"token", "password"}, given: map[string]string{"token": "new"},
			want: map[string]any{"token": "new", "password": "(secret)"}},
		{name: "one removed", stored: []string{"token", "password"}, remove: map[string]bool{"password": true},
			want: map[string]any{"token": "(secret)"}},
		{name: "all removed", stored: []string{"token"}, remove: map[string]bool{"token": true}, want: map[string]any{}},
		{name: "a new one", given: map[string]string{"password": "p"}, want: map[string]any{"password": "p"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := editedCredentials(c.stored, c.given, c.remove); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %#v, want %#v", got, c.want)
			}
		})
	}
}
