package apilog_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
	"github.com/syncline/syncline/services/eventlog/apilog"
	"github.com/syncline/syncline/services/eventlog/apilog/apilogtest"
)

func TestConformance(t *testing.T) {
	for _, backend := range sqlstoretest.Backends() {
		t.Run(backend.Name, func(t *testing.T) {
			apilogtest.Run(t, func(t *testing.T) apilog.Store {
				s, err := apilog.New(t.Context(), backend.Open(t))
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
			first, err := apilog.New(t.Context(), db)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			r := apilog.Record{Tenant: "acme", EventID: "ev-1", Flow: "orders", Action: apilog.ActionCreated, Status: apilog.StatusSuccess}
			if err := first.Insert(t.Context(), []apilog.Record{r}); err != nil {
				t.Fatalf("Insert: %v", err)
			}
			second, err := apilog.New(t.Context(), db)
			if err != nil {
				t.Fatalf("New on a migrated database: %v", err)
			}
			p, err := second.Query(t.Context(), apilog.Query{Tenant: "acme"})
			if err != nil || len(p.Records) != 1 {
				t.Fatalf("Query after the second New = %+v, %v; want the record kept", p, err)
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
		{"NewPostgres on SQLite", func() error { _, err := apilog.NewPostgres(t.Context(), sqlite); return err }},
		{"NewSQLite on PostgreSQL", func() error { _, err := apilog.NewSQLite(t.Context(), pg); return err }},
		{"New on no dialect", func() error { _, err := apilog.New(t.Context(), &sqlstore.DB{}); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.open(); err == nil || !strings.Contains(err.Error(), "API log") {
				t.Fatalf("got %v, want an error about the API log's database", err)
			}
		})
	}
}

// BenchmarkInsert measures the batched write path: batches of 500 new records.
func BenchmarkInsert(b *testing.B) {
	const batch = 500
	for _, backend := range sqlstoretest.Backends() {
		b.Run(backend.Name, func(b *testing.B) {
			s, err := apilog.New(b.Context(), backend.Open(b))
			if err != nil {
				b.Fatalf("New: %v", err)
			}
			rs := make([]apilog.Record, batch)
			for i := range rs {
				rs[i] = apilog.Record{
					Tenant: "acme", Integrator: "shop-to-erp", Flow: "orders", Entity: "order", SourceEndpoint: "shop",
					SourceKey: fmt.Sprintf("SO-%d", i), TargetID: fmt.Sprintf("T-%d", i),
					Action: apilog.ActionCreated, Status: apilog.StatusSuccess, Attempts: 1,
					Duration: 12 * time.Millisecond, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
					OccurredAt: time.Now(),
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				for i := range rs {
					rs[i].EventID = fmt.Sprintf("0192f7a4-%08d-%04d", n, i)
				}
				n++
				if err := s.Insert(b.Context(), rs); err != nil {
					b.Fatalf("Insert: %v", err)
				}
			}
			b.ReportMetric(float64(n*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
