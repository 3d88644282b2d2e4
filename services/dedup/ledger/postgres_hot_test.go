package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/syncline/syncline/pkg/pgtest"
	"github.com/syncline/syncline/pkg/sqlstore"
	"github.com/syncline/syncline/services/dedup/ledger"
)

// TestPostgresConfirmsInPlace: every entry is written twice, pending by
// Insert and applied by Confirm, so the table keeps room on each page for a
// second version of every row (migration 0004). Each confirmation then stays
// on its row's page (a HOT update, no new primary-key entry): no row's page
// changes. With migration 0003's fillfactor of 80, most rows moved.
func TestPostgresConfirmsInPlace(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	s, err := ledger.NewPostgres(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000 // tens of pages
	entries := make([]ledger.Entry, n)
	cs := make([]ledger.Confirmation, n)
	for i := range entries {
		k := ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: fmt.Sprintf("SO-%05d", i)}
		entries[i] = ledger.Entry{Key: k, ContentHash: fmt.Sprintf("%064d", i), SourceVersion: 1, State: ledger.StatePending,
			LastEventID: fmt.Sprintf("0193a3b2-7c4d-7e8f-9a0b-%012d", i), LastAction: "created"}
		cs[i] = ledger.Confirmation{Key: k, EventID: entries[i].LastEventID, State: ledger.StateApplied, TargetID: fmt.Sprintf("T-%d", i)}
	}
	if err := s.Insert(ctx, entries); err != nil {
		t.Fatal(err)
	}
	pages := func() map[string]string {
		t.Helper()
		rows, err := db.PG.Query(ctx, `SELECT source_key, (ctid::text::point)[0]::text FROM ledger_entries`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var key, page string
			if err := rows.Scan(&key, &page); err != nil {
				t.Fatal(err)
			}
			out[key] = page
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := pages()
	// In batches, as dedup confirms.
	for from := 0; from < n; from += 320 {
		if _, err := s.Confirm(ctx, cs[from:min(from+320, n)]); err != nil {
			t.Fatal(err)
		}
	}
	after := pages()
	moved := 0
	for key, page := range before {
		if after[key] != page {
			moved++
		}
	}
	if moved > 0 || len(after) != n {
		t.Errorf("%d of %d confirmations moved their entry to another page (%d entries after), want none: each should be a HOT update in the room the table's fillfactor leaves", moved, n, len(after))
	}
	var applied int
	if err := db.PG.QueryRow(ctx, `SELECT count(*) FROM ledger_entries WHERE state = 'applied' AND target_id LIKE 'T-%'`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != n {
		t.Errorf("%d entries applied with their target ids, want %d", applied, n)
	}
}
