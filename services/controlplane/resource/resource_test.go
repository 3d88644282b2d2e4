package resource_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
	"github.com/syncline/syncline/services/controlplane/resource"
	"github.com/syncline/syncline/services/controlplane/resource/resourcetest"
)

func TestConformance(t *testing.T) {
	for _, backend := range sqlstoretest.Backends() {
		t.Run(backend.Name, func(t *testing.T) {
			resourcetest.Run(t, func(t *testing.T) resource.Store {
				s, err := resource.New(t.Context(), backend.Open(t))
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return s
			})
		})
	}
}

func TestNewMigratesOnce(t *testing.T) {
	for _, backend := range sqlstoretest.Backends() {
		t.Run(backend.Name, func(t *testing.T) {
			db := backend.Open(t)
			first, err := resource.New(t.Context(), db)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			r := resource.Resource{Kind: "Tenant", Tenant: "acme", Name: "acme", Spec: json.RawMessage(`{}`)}
			if _, _, err := first.Put(t.Context(), r); err != nil {
				t.Fatalf("Put: %v", err)
			}
			second, err := resource.New(t.Context(), db)
			if err != nil {
				t.Fatalf("New on a migrated database: %v", err)
			}
			if _, err := second.Get(t.Context(), "Tenant", "acme", "acme"); err != nil {
				t.Fatalf("Get after the second New: %v; want the resource kept", err)
			}
		})
	}
}

func TestConstructorsCheckDialect(t *testing.T) {
	sqlite := sqlstoretest.OpenSQLite(t)
	pg := sqlstoretest.OpenPostgres(t)
	tests := []struct {
		name string
		open func() error
	}{
		{"NewPostgres on SQLite", func() error { _, err := resource.NewPostgres(t.Context(), sqlite); return err }},
		{"NewSQLite on PostgreSQL", func() error { _, err := resource.NewSQLite(t.Context(), pg); return err }},
		{"New on no dialect", func() error { _, err := resource.New(t.Context(), &sqlstore.DB{}); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.open(); err == nil || !strings.Contains(err.Error(), "resource store") {
				t.Fatalf("got %v, want an error about the resource store's database", err)
			}
		})
	}
}

// BenchmarkPut measures applying resources one by one, the way the control plane does: half
// of them change, half are re-applied unchanged.
func BenchmarkPut(b *testing.B) {
	for _, backend := range sqlstoretest.Backends() {
		b.Run(backend.Name, func(b *testing.B) {
			s, err := resource.New(b.Context(), backend.Open(b))
			if err != nil {
				b.Fatalf("New: %v", err)
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				spec := fmt.Sprintf(`{"source":"shop","target":"erp","entity":"order","version":%d}`, n/2)
				r := resource.Resource{Kind: "Flow", Tenant: "acme", Name: fmt.Sprintf("flow-%d", n%100), Spec: json.RawMessage(spec)}
				if _, _, err := s.Put(b.Context(), r); err != nil {
					b.Fatalf("Put: %v", err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
