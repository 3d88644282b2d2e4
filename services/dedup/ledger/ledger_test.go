package ledger_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
	"github.com/syncline/syncline/services/dedup/ledger"
	"github.com/syncline/syncline/services/dedup/ledger/ledgertest"
)

func TestConformance(t *testing.T) {
	for _, backend := range sqlstoretest.Backends() {
		t.Run(backend.Name, func(t *testing.T) {
			ledgertest.Run(t, func(t *testing.T) ledger.Store {
				s, err := ledger.New(t.Context(), backend.Open(t))
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
			first, err := ledger.New(t.Context(), db)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			switch first.(type) {
			case *ledger.Postgres:
				if db.Dialect != sqlstore.Postgres {
					t.Fatalf("New on %s returned the PostgreSQL store", db.Dialect)
				}
			case *ledger.SQLite:
				if db.Dialect != sqlstore.SQLite {
					t.Fatalf("New on %s returned the SQLite store", db.Dialect)
				}
			default:
				t.Fatalf("New returned %T", first)
			}
			key := ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: "1"}
			if err := first.Put(t.Context(), []ledger.Entry{{Key: key, State: ledger.StateApplied}}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			second, err := ledger.New(t.Context(), db)
			if err != nil {
				t.Fatalf("New on a migrated database: %v", err)
			}
			got, err := second.Lookup(t.Context(), []ledger.Key{key})
			if err != nil || len(got) != 1 {
				t.Fatalf("Lookup after the second New = %v, %v; want the entry kept", got, err)
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
		{"NewPostgres on SQLite", func() error { _, err := ledger.NewPostgres(t.Context(), sqlite); return err }},
		{"NewSQLite on PostgreSQL", func() error { _, err := ledger.NewSQLite(t.Context(), pg); return err }},
		{"New on no dialect", func() error { _, err := ledger.New(t.Context(), &sqlstore.DB{}); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.open(); err == nil || !strings.Contains(err.Error(), "ledger") {
				t.Fatalf("got %v, want an error about the ledger's database", err)
			}
		})
	}
}

// BenchmarkPut measures the batched write path: batches of 500 new entries.
func BenchmarkPut(b *testing.B) {
	const batch = 500
	for _, backend := range sqlstoretest.Backends() {
		b.Run(backend.Name, func(b *testing.B) {
			s, err := ledger.New(b.Context(), backend.Open(b))
			if err != nil {
				b.Fatalf("New: %v", err)
			}
			entries := make([]ledger.Entry, batch)
			for i := range entries {
				entries[i] = ledger.Entry{
					Key:           ledger.Key{Tenant: "acme", Flow: "orders"},
					TargetID:      fmt.Sprintf("T-%d", i),
					ContentHash:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
					SourceVersion: int64(i),
					State:         ledger.StatePending,
					LastEventID:   "0192f7a4-6c1e-7c4e-9a7b-3f1d2e5a6b7c",
					LastAction:    "created",
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				for i := range entries {
					entries[i].SourceKey = fmt.Sprintf("SO-%d-%d", n, i)
				}
				n++
				if err := s.Put(b.Context(), entries); err != nil {
					b.Fatalf("Put: %v", err)
				}
			}
			b.ReportMetric(float64(n*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
