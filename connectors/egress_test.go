package connectors_test

import (
	"context"
	"strings"
	"testing"

	"github.com/syncline/syncline/connectors"
	sdk "github.com/syncline/syncline/pkg/connector"
)

func TestEgressFromEnv(t *testing.T) {
	t.Setenv(sdk.EnvEgressAllow, "10.0.0.0/8, 127.0.0.1")
	t.Setenv(sdk.EnvEgressProtect, "postgres://syncline@10.0.0.7:5432/syncline")
	t.Setenv(sdk.EnvEgressFiles, t.TempDir())
	e, err := connectors.EgressFromEnv("nats://127.0.0.1:4222", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.CheckDatabase(ctx, "acme", "10.0.0.5", 5432, "erp"); err != nil {
		t.Errorf("an allowed range: %v", err)
	}
	if err := e.CheckAddr(ctx, "acme", "93.184.215.14", 443); err == nil {
		t.Error("a public address passed, though the rules left public out")
	}
	if err := e.CheckAddr(ctx, "acme", "127.0.0.1", 4222); err == nil || !strings.Contains(err.Error(), "Syncline's own NATS server") {
		t.Errorf("the process's NATS server = %v, want it protected", err)
	}
	if err := e.CheckDatabase(ctx, "acme", "10.0.0.7", 5432, "syncline"); err == nil || !strings.Contains(err.Error(), "Syncline's own database") {
		t.Errorf("a store named in %s = %v, want it protected", sdk.EnvEgressProtect, err)
	}
	if err := e.CheckPath("acme", "erp.db"); err != nil {
		t.Errorf("a file in the tenant's folder under %s: %v", sdk.EnvEgressFiles, err)
	}

	t.Setenv(sdk.EnvEgressAllow, "10.0.0.5:http")
	if _, err := connectors.EgressFromEnv("nats://127.0.0.1:4222", ""); err == nil || !strings.Contains(err.Error(), sdk.EnvEgressAllow) {
		t.Errorf("a bad rule = %v, want an error naming %s", err, sdk.EnvEgressAllow)
	}
}
