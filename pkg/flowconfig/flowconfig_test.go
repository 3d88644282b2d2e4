package flowconfig_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/secret"
)

// TestOpenSettings: an endpoint's credentials open only with the master key
// and for the tenant and endpoint they were sealed for, and are laid over its
// settings without changing them.
func TestOpenSettings(t *testing.T) {
	k, err := secret.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := secret.ParseKey(k)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal(flowconfig.CredentialsBinding("acme", "erp"), []byte(`{"password":"hunter2"}`))
	if err != nil {
		t.Fatal(err)
	}
	ep := flowconfig.Endpoint{Name: "erp", Settings: map[string]any{"user": "syncline"}, Credentials: sealed}

	got, err := ep.OpenSettings("acme", box)
	if err != nil || got["user"] != "syncline" || got["password"] != "hunter2" {
		t.Fatalf("OpenSettings = %v, %v; want the settings and the password", got, err)
	}
	if _, ok := ep.Settings["password"]; ok {
		t.Error("OpenSettings wrote the password into the endpoint's own settings")
	}
	if _, err := ep.OpenSettings("acme", nil); !errors.Is(err, flowconfig.ErrNoMasterKey) {
		t.Errorf("without a master key: %v, want ErrNoMasterKey", err)
	}
	// Sealed for acme's erp: another tenant's endpoint of the same name cannot open them.
	if _, err := ep.OpenSettings("globex", box); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("another tenant's endpoint: %v, want a refusal that does not show the password", err)
	}
	plain := flowconfig.Endpoint{Name: "shop", Settings: map[string]any{"url": "x"}}
	if got, err := plain.OpenSettings("acme", nil); err != nil || got["url"] != "x" {
		t.Errorf("an endpoint without credentials: %v, %v", got, err)
	}
}
