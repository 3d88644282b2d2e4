package connectors_test

import (
	"context"
	"strings"
	"testing"

	"github.com/syncline/syncline/connectors"
	sdk "github.com/syncline/syncline/pkg/connector"
)

func TestProtect(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want []sdk.Protected
	}{
		{"postgres://syncline:pw@db1:5432,db2:5433/store?sslmode=disable", []sdk.Protected{
			{What: "Syncline's own database", Host: "db1", Port: 5432, Database: "store"},
			{What: "Syncline's own database", Host: "db2", Port: 5433, Database: "store"},
		}},
		{"postgres://syncline@127.0.0.1/", []sdk.Protected{{What: "Syncline's own database", Host: "127.0.0.1", Port: 5432, Database: "syncline"}}},
		{"nats://a:4222, tls://b", []sdk.Protected{
			{What: "Syncline's own NATS server", Host: "a", Port: 4222},
			{What: "Syncline's own NATS server", Host: "b", Port: 4222},
		}},
		{"10.0.0.9:6432", []sdk.Protected{{What: "Syncline's own server", Host: "10.0.0.9", Port: 6432}}},
	} {
		got, err := connectors.Protect(tt.url)
		if err != nil {
			t.Errorf("Protect(%s): %v", tt.url, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("Protect(%s) = %+v, want %+v", tt.url, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("Protect(%s)[%d] = %+v, want %+v", tt.url, i, got[i], tt.want[i])
			}
		}
	}
	got, err := connectors.Protect("sqlite:/data/ledger.db?_pragma=journal_mode(WAL)")
	if err != nil || len(got) == 0 || got[0].Path != "/data/ledger.db" {
		t.Errorf("Protect of a SQLite store = %+v, %v; want its file", got, err)
	}
	if _, err := connectors.Protect("postgres://syncline:hunter2@db:notaport/x"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Protect of a bad postgres URL = %v, want an error without the URL", err)
	}
	if _, err := connectors.Protect("db.internal"); err == nil {
		t.Error("Protect of a host without a port succeeded")
	}
}

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
