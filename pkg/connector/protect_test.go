package connector_test

import (
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/connector"
)

func TestProtect(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want []connector.Protected
	}{
		{"postgres://syncline:pw@db1:5432,db2:5433/store?sslmode=disable", []connector.Protected{
			{What: "Syncline's own database", Host: "db1", Port: 5432, Database: "store"},
			{What: "Syncline's own database", Host: "db2", Port: 5433, Database: "store"},
		}},
		{"postgres://syncline@127.0.0.1/", []connector.Protected{{What: "Syncline's own database", Host: "127.0.0.1", Port: 5432, Database: "syncline"}}},
		{"nats://a:4222, tls://b", []connector.Protected{
			{What: "Syncline's own NATS server", Host: "a", Port: 4222},
			{What: "Syncline's own NATS server", Host: "b", Port: 4222},
		}},
		{"10.0.0.9:6432", []connector.Protected{{What: "Syncline's own server", Host: "10.0.0.9", Port: 6432}}},
	} {
		got, err := connector.Protect(tt.url)
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
	got, err := connector.Protect("sqlite:/data/ledger.db?_pragma=journal_mode(WAL)")
	if err != nil || len(got) == 0 || got[0].Path != "/data/ledger.db" {
		t.Errorf("Protect of a SQLite store = %+v, %v; want its file", got, err)
	}
	if _, err := connector.Protect("postgres://syncline:hunter2@db:notaport/x"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Protect of a bad postgres URL = %v, want an error without the URL", err)
	}
	if _, err := connector.Protect("db.internal"); err == nil {
		t.Error("Protect of a host without a port succeeded")
	}
}
