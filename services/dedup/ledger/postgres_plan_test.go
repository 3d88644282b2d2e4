package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/services/dedup/ledger"
)

// TestPostgresPlansProbeByKey: the hot statements of the PostgreSQL ledger
// (lookup, put, advance, confirm) are prepared once per connection, and run
// many times while the ledger is tiny, as in a new deployment. Once the
// ledger holds tens of thousands of entries, their plans — read with
// auto_explain, which logs the EXPLAIN of every statement the store runs,
// including those inside functions — must still probe the primary key and
// never scan the table: a batch then costs the same at any ledger size.
func TestPostgresPlansProbeByKey(t *testing.T) {
	ctx := context.Background()
	// One session, so the statements warmed on the small table are the
	// ones whose plans are read.
	plans := pgtest.NewPlans(t, pgtest.NewDatabase(t))
	pool := plans.Pool
	s, err := ledger.NewPostgres(ctx, &sqlstore.DB{Dialect: sqlstore.Postgres, PG: pool})
	if err != nil {
		t.Fatal(err)
	}

	const batch = 500
	batchOf := func(prefix string) ([]ledger.Key, []ledger.Entry, []ledger.Version, []ledger.Confirmation) {
		keys := make([]ledger.Key, batch)
		entries := make([]ledger.Entry, batch)
		versions := make([]ledger.Version, batch)
		cs := make([]ledger.Confirmation, batch)
		for i := range keys {
			k := ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: fmt.Sprintf("%s-%d", prefix, i*97%50000)}
			keys[i] = k
			entries[i] = ledger.Entry{Key: k, ContentHash: "h", SourceVersion: 2, State: ledger.StatePending, LastEventID: "ev-" + k.SourceKey, LastAction: "updated"}
			versions[i] = ledger.Version{Key: k, SourceVersion: 3}
			cs[i] = ledger.Confirmation{Key: k, EventID: "ev-" + k.SourceKey, State: ledger.StateApplied}
		}
		return keys, entries, versions, cs
	}
	run := func(keys []ledger.Key, entries []ledger.Entry, versions []ledger.Version, cs []ledger.Confirmation) {
		t.Helper()
		if _, err := s.Lookup(ctx, keys); err != nil {
			t.Fatalf("Lookup: %v", err)
		}
		if err := s.Put(ctx, entries); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if err := s.Advance(ctx, versions); err != nil {
			t.Fatalf("Advance: %v", err)
		}
		if _, err := s.Confirm(ctx, cs); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
	}

	// Tiny: the first batches of a new deployment, more than the five runs
	// after which PostgreSQL may settle on a generic plan.
	keys, entries, versions, cs := batchOf("new")
	for range 10 {
		run(keys[:5], entries[:5], versions[:5], cs[:5])
	}
	// Realistic: 60,000 entries, loaded at once.
	if _, err := pool.Exec(ctx, `INSERT INTO ledger_entries (tenant, flow, source_key, target_id, content_hash, source_version, state, last_event_id, last_action, updated_at)
SELECT 'acme', 'orders', 'SO-' || g, 'T-' || g, md5(g::text), 1, 'applied', 'ev-SO-' || g, 'created', now()
FROM generate_series(0, 59999) AS g`); err != nil {
		t.Fatal(err)
	}

	plans.Explain(t)
	keys, entries, versions, cs = batchOf("SO")
	for _, step := range []struct {
		name      string
		run       func() error
		wantProbe bool
	}{
		{"Lookup", func() error { _, err := s.Lookup(ctx, keys); return err }, true},
		{"Put", func() error { return s.Put(ctx, entries) }, false},
		{"Advance", func() error { return s.Advance(ctx, versions) }, false},
		{"Confirm", func() error { _, err := s.Confirm(ctx, cs); return err }, true},
	} {
		plans.Take()
		if err := step.run(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got := plans.Take()
		if got == "" {
			t.Fatalf("%s: auto_explain logged no plan", step.name)
		}
		if pgtest.Scans(got, "ledger_entries") {
			t.Errorf("%s at 60,000 entries scans the table:\n%s", step.name, got)
		}
		if step.wantProbe && !strings.Contains(got, "Index Scan using ledger_entries_pkey") && !strings.Contains(got, "Index Only Scan using ledger_entries_pkey") {
			t.Errorf("%s at 60,000 entries does not probe the primary key:\n%s", step.name, got)
		}
	}
}
