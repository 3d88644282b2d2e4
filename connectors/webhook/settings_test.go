package webhook_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/webhook"
	"github.com/syncline/syncline/pkg/connector"
)

func registry(t testing.TB) *connector.Registry {
	t.Helper()
	r := connector.NewRegistry()
	if err := webhook.Register(r); err != nil {
		t.Fatal(err)
	}
	return r
}

const secret = "whsec-0123456789abcdef0123456789ab"

func TestSettingsDefaults(t *testing.T) {
	s, err := webhook.Open(registry(t), map[string]any{"secret": secret})
	if err != nil {
		t.Fatal(err)
	}
	want := webhook.Settings{Auth: webhook.AuthHMAC, Secret: secret, Window: 5 * time.Minute, MaxBody: 1 << 20,
		Body: webhook.BodyObject, KeyField: "id", DeliveryHeader: "X-Syncline-Delivery"}
	if s != want {
		t.Errorf("Open = %+v, want %+v", s, want)
	}
	if r := registry(t); r.Polls(webhook.Type) {
		t.Errorf("a webhook endpoint is polled; its sender posts its changes")
	}
}

// TestSettingsRefusals: each bad setting is refused with its path and what
// to do, and the secret never shows.
func TestSettingsRefusals(t *testing.T) {
	r := registry(t)
	for _, tc := range []struct {
		name     string
		settings map[string]any
		path     string
		want     string
	}{
		{"no secret", map[string]any{}, "settings.secret", "required"},
		{"empty secret", map[string]any{"secret": ""}, "settings.secret", "required, and empty"},
		{"unknown auth", map[string]any{"secret": secret, "auth": "basic"}, "settings.auth", `"basic" is not one of hmac, token`},
		{"window zero", map[string]any{"secret": secret, "timestamp_window": "0s"}, "settings.timestamp_window", "outside 1s to 1h"},
		{"window a day", map[string]any{"secret": secret, "timestamp_window": "24h"}, "settings.timestamp_window", "outside 1s to 1h"},
		{"window no duration", map[string]any{"secret": secret, "timestamp_window": "soon"}, "settings.timestamp_window", "must be a duration"},
		{"body limit zero", map[string]any{"secret": secret, "max_body_bytes": 0}, "settings.max_body_bytes", "outside 1 to 8388608"},
		{"body limit 9 MiB", map[string]any{"secret": secret, "max_body_bytes": 9 << 20}, "settings.max_body_bytes", "outside 1 to 8388608"},
		{"body neither", map[string]any{"secret": secret, "body": "lines"}, "settings.body", "is not one of object, array"},
		{"key field no path", map[string]any{"secret": secret, "key_field": "order..id"}, "settings.key_field", "is not valid"},
		{"version field no path", map[string]any{"secret": secret, "version_field": "updated at"}, "settings.version_field", "is not valid"},
		{"delivery header no name", map[string]any{"secret": secret, "delivery_header": "X Delivery"}, "settings.delivery_header", "is not valid"},
		{"unknown setting", map[string]any{"secret": secret, "url": "https://x"}, "settings.url", "unknown setting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := webhook.Open(r, tc.settings)
			var se *connector.SettingsError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want %s refused saying %q", err, tc.path, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

// TestSettingsBounds: the bounds themselves are allowed.
func TestSettingsBounds(t *testing.T) {
	for _, settings := range []map[string]any{
		{"secret": secret, "timestamp_window": "1s", "max_body_bytes": 1},
		{"secret": secret, "timestamp_window": "1h", "max_body_bytes": 8 << 20, "auth": "token", "body": "array", "key_field": "order.number", "version_field": "updated_at"},
	} {
		if _, err := webhook.Open(registry(t), settings); err != nil {
			t.Errorf("Open(%v) = %v", settings, err)
		}
	}
}
