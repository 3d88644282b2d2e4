// Package ledgertest is the conformance suite every ledger.Store backend must pass.
package ledgertest

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/services/dedup/ledger"
)

// Run runs the suite. newStore must return a store over a new, empty database for each call;
// the subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s ledger.Store)
	}{
		{"lookup of unknown keys finds nothing", testLookupEmpty},
		{"insert of new keys, then of the same keys again, acts as put", testInsertActsAsPut},
		{"put then lookup returns every field", testRoundTrip},
		{"put stamps a missing updated-at", testStampsUpdatedAt},
		{"lookup spans tenants and flows and tolerates repeats", testLookupAcrossTenants},
		{"lookup of a batch larger than one query", testLookupLargeBatch},
		{"put replaces an existing entry", testPutReplaces},
		{"the last of a key within a batch wins", testPutLastWins},
		{"an invalid entry fails the whole batch", testPutRejectsInvalid},
		{"confirm changes only entries of the same event", testConfirmMatchingEvent},
		{"confirm keeps the target id when none is given", testConfirmKeepsTargetID},
		{"the last confirmation of a key within a batch wins", testConfirmLastWins},
		{"an invalid confirmation fails the whole batch", testConfirmRejectsInvalid},
		{"advance raises versions only, and remembers unknown keys as deleted", testAdvance},
		{"an invalid version fails the whole batch", testAdvanceRejectsInvalid},
		{"delete tenant removes that tenant only", testDeleteTenant},
		{"concurrent batch writers all succeed", testConcurrentWriters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

// at is a fixed instant with microseconds, the precision both backends keep.
var at = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func entry(tenant, flow, key string) ledger.Entry {
	return ledger.Entry{
		Key:           ledger.Key{Tenant: tenant, Flow: flow, SourceKey: key},
		TargetID:      "T-" + key,
		ContentHash:   "hash-" + key,
		SourceVersion: 7,
		State:         ledger.StateApplied,
		LastEventID:   "ev-" + key,
		LastAction:    "created",
		UpdatedAt:     at,
	}
}

func put(t *testing.T, s ledger.Store, entries ...ledger.Entry) {
	t.Helper()
	if err := s.Put(t.Context(), entries); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func lookup(t *testing.T, s ledger.Store, keys ...ledger.Key) map[ledger.Key]ledger.Entry {
	t.Helper()
	got, err := s.Lookup(t.Context(), keys)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return got
}

// want builds the map Lookup should return for entries.
func want(entries ...ledger.Entry) map[ledger.Key]ledger.Entry {
	m := make(map[ledger.Key]ledger.Entry, len(entries))
	for _, e := range entries {
		m[e.Key] = e
	}
	return m
}

func assertEntries(t *testing.T, got, want map[ledger.Key]ledger.Entry) {
	t.Helper()
	if maps.EqualFunc(got, want, func(a, b ledger.Entry) bool { return a == b }) {
		return
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("missing %s", k)
		case g != w:
			t.Errorf("%s:\n got %+v\nwant %+v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s", k)
		}
	}
}

func testLookupEmpty(t *testing.T, s ledger.Store) {
	for _, keys := range [][]ledger.Key{nil, {{Tenant: "acme", Flow: "orders", SourceKey: "1"}}} {
		if got := lookup(t, s, keys...); len(got) != 0 {
			t.Fatalf("Lookup(%v) = %v, want nothing", keys, got)
		}
	}
}

func testRoundTrip(t *testing.T, s ledger.Store) {
	e := entry("acme", "orders", "SO-1")
	e.SourceVersion = 1<<53 + 1 // survives without float rounding
	e.SourceKey = "key with spaces, 'quotes' and ünïcode"
	pending := entry("acme", "orders", "SO-2")
	pending.State, pending.TargetID, pending.LastAction = ledger.StatePending, "", "updated"
	put(t, s, e, pending)
	assertEntries(t, lookup(t, s, e.Key, pending.Key), want(e, pending))
}

func testStampsUpdatedAt(t *testing.T, s ledger.Store) {
	e := entry("acme", "orders", "1")
	e.UpdatedAt = time.Time{}
	before := time.Now().Add(-time.Second)
	put(t, s, e)
	got := lookup(t, s, e.Key)[e.Key].UpdatedAt
	if got.Before(before) || got.After(time.Now().Add(time.Second)) || got.Location() != time.UTC {
		t.Fatalf("UpdatedAt = %v, want the time of the Put in UTC", got)
	}
}

func testLookupAcrossTenants(t *testing.T, s ledger.Store) {
	a := entry("acme", "orders", "42")
	b := entry("acme", "invoices", "42")
	c := entry("globex", "orders", "42")
	d := entry("globex", "orders", "43")
	put(t, s, a, b, c, d)
	got := lookup(t, s,
		a.Key, c.Key, a.Key, // a repeat
		ledger.Key{Tenant: "initech", Flow: "orders", SourceKey: "42"}, // unknown tenant
		ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: "43"},    // key of another tenant
		b.Key,
	)
	assertEntries(t, got, want(a, b, c))
}

func testLookupLargeBatch(t *testing.T, s ledger.Store) {
	const n = 2500
	entries := make([]ledger.Entry, n)
	keys := make([]ledger.Key, 0, n+n/2)
	for i := range entries {
		entries[i] = entry(fmt.Sprintf("tenant-%d", i%3), "products", fmt.Sprintf("SKU-%05d", i))
		keys = append(keys, entries[i].Key)
	}
	for i := range n / 2 {
		keys = append(keys, ledger.Key{Tenant: "tenant-0", Flow: "products", SourceKey: fmt.Sprintf("missing-%d", i)})
	}
	put(t, s, entries...)
	assertEntries(t, lookup(t, s, keys...), want(entries...))
}

func testPutReplaces(t *testing.T, s ledger.Store) {
	old := entry("acme", "orders", "1")
	put(t, s, old)
	newer := old
	newer.ContentHash, newer.SourceVersion, newer.State = "hash-2", 8, ledger.StatePending
	newer.LastEventID, newer.LastAction, newer.UpdatedAt = "ev-2", "updated", at.Add(time.Minute)
	put(t, s, newer)
	assertEntries(t, lookup(t, s, old.Key), want(newer))
}

func testPutLastWins(t *testing.T, s ledger.Store) {
	first := entry("acme", "orders", "1")
	second := first
	second.ContentHash, second.SourceVersion, second.LastEventID = "hash-second", 9, "ev-second"
	other := entry("acme", "orders", "2")
	put(t, s, first, other, second)
	assertEntries(t, lookup(t, s, first.Key, other.Key), want(other, second))
}

func testPutRejectsInvalid(t *testing.T, s ledger.Store) {
	good := entry("acme", "orders", "good")
	tests := []struct {
		name   string
		change func(*ledger.Entry)
		want   string
	}{
		{"empty tenant", func(e *ledger.Entry) { e.Tenant = "" }, "tenant, flow and source key"},
		{"empty source key", func(e *ledger.Entry) { e.SourceKey = "" }, "tenant, flow and source key"},
		{"unknown state", func(e *ledger.Entry) { e.State = "done" }, `unknown state "done"`},
		{"unknown action", func(e *ledger.Entry) { e.LastAction = "upserted" }, `unknown last action "upserted"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := entry("acme", "orders", "bad")
			tc.change(&bad)
			err := s.Put(t.Context(), []ledger.Entry{good, bad})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "entry 1") {
				t.Fatalf("Put = %v, want an error naming entry 1 and containing %q", err, tc.want)
			}
			if got := lookup(t, s, good.Key); len(got) != 0 {
				t.Fatalf("the valid entry of a refused batch was written: %v", got)
			}
		})
	}
}

func testConfirmMatchingEvent(t *testing.T, s ledger.Store) {
	pending := func(key, event string) ledger.Entry {
		e := entry("acme", "orders", key)
		e.State, e.TargetID, e.LastEventID = ledger.StatePending, "", event
		return e
	}
	a, b, c := pending("a", "ev-a2"), pending("b", "ev-b1"), pending("c", "ev-c1")
	put(t, s, a, b, c)
	cs := []ledger.Confirmation{
		{Key: a.Key, EventID: "ev-a1", State: ledger.StateApplied, TargetID: "T-old"}, // superseded event
		{Key: b.Key, EventID: "ev-b1", State: ledger.StateApplied, TargetID: "T-b"},
		{Key: c.Key, EventID: "ev-c1", State: ledger.StateFailed},
		{Key: ledger.Key{Tenant: "globex", Flow: "orders", SourceKey: "b"}, EventID: "ev-b1", State: ledger.StateApplied}, // other tenant
	}
	n, err := s.Confirm(t.Context(), cs)
	if err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if n != 2 {
		t.Fatalf("Confirm changed %d entries, want 2", n)
	}
	wantB, wantC := b, c
	wantB.State, wantB.TargetID = ledger.StateApplied, "T-b"
	wantC.State = ledger.StateFailed
	got := lookup(t, s, a.Key, b.Key, c.Key)
	for k, e := range got {
		if k != a.Key && !e.UpdatedAt.After(at) {
			t.Errorf("%s: UpdatedAt %v did not move on confirmation", k, e.UpdatedAt)
		}
		e.UpdatedAt = at
		got[k] = e
	}
	assertEntries(t, got, want(a, wantB, wantC))

	// A redelivered confirmation finds nothing left to change.
	n, err = s.Confirm(t.Context(), cs)
	if err != nil || n != 0 {
		t.Fatalf("Confirm of the same batch again = %d, %v; want 0 changes", n, err)
	}
}

func testConfirmKeepsTargetID(t *testing.T, s ledger.Store) {
	e := entry("acme", "orders", "1")
	e.State = ledger.StatePending
	put(t, s, e)
	n, err := s.Confirm(t.Context(), []ledger.Confirmation{{Key: e.Key, EventID: e.LastEventID, State: ledger.StateApplied}})
	if err != nil || n != 1 {
		t.Fatalf("Confirm = %d, %v; want 1 change", n, err)
	}
	if got := lookup(t, s, e.Key)[e.Key]; got.TargetID != e.TargetID || got.State != ledger.StateApplied {
		t.Fatalf("entry = %+v, want state applied and target id %q kept", got, e.TargetID)
	}
	// A new target id on an entry already applied is a change.
	n, err = s.Confirm(t.Context(), []ledger.Confirmation{{Key: e.Key, EventID: e.LastEventID, State: ledger.StateApplied, TargetID: "T-new"}})
	if err != nil || n != 1 {
		t.Fatalf("Confirm with a new target id = %d, %v; want 1 change", n, err)
	}
	if got := lookup(t, s, e.Key)[e.Key]; got.TargetID != "T-new" {
		t.Fatalf("target id = %q, want T-new", got.TargetID)
	}
}

func testConfirmLastWins(t *testing.T, s ledger.Store) {
	e := entry("acme", "orders", "1")
	e.State, e.TargetID = ledger.StatePending, ""
	put(t, s, e)
	n, err := s.Confirm(t.Context(), []ledger.Confirmation{
		{Key: e.Key, EventID: e.LastEventID, State: ledger.StateApplied, TargetID: "T-first"},
		{Key: e.Key, EventID: e.LastEventID, State: ledger.StateFailed},
	})
	if err != nil || n != 1 {
		t.Fatalf("Confirm = %d, %v; want 1 change", n, err)
	}
	if got := lookup(t, s, e.Key)[e.Key]; got.State != ledger.StateFailed || got.TargetID != "" {
		t.Fatalf("entry = %+v, want only the last confirmation applied (failed, no target id)", got)
	}
}

func testConfirmRejectsInvalid(t *testing.T, s ledger.Store) {
	e := entry("acme", "orders", "1")
	e.State = ledger.StatePending
	put(t, s, e)
	good := ledger.Confirmation{Key: e.Key, EventID: e.LastEventID, State: ledger.StateApplied}
	tests := []struct {
		name string
		bad  ledger.Confirmation
		want string
	}{
		{"empty event id", ledger.Confirmation{Key: e.Key, State: ledger.StateApplied}, "event id is required"},
		{"unknown state", ledger.Confirmation{Key: e.Key, EventID: "x", State: "ok"}, `unknown state "ok"`},
		{"empty flow", ledger.Confirmation{Key: ledger.Key{Tenant: "acme", SourceKey: "1"}, EventID: "x", State: ledger.StateApplied}, "tenant, flow and source key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.Confirm(t.Context(), []ledger.Confirmation{good, tc.bad})
			if err == nil || n != 0 || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "confirmation 1") {
				t.Fatalf("Confirm = %d, %v; want an error naming confirmation 1 and containing %q", n, err, tc.want)
			}
			if got := lookup(t, s, e.Key)[e.Key]; got.State != ledger.StatePending {
				t.Fatalf("a refused batch changed the entry to %s", got.State)
			}
		})
	}
}

func testDeleteTenant(t *testing.T, s ledger.Store) {
	a1, a2 := entry("acme", "orders", "1"), entry("acme", "invoices", "1")
	g1 := entry("globex", "orders", "1")
	put(t, s, a1, a2, g1)
	n, err := s.DeleteTenant(t.Context(), "acme")
	if err != nil || n != 2 {
		t.Fatalf("DeleteTenant(acme) = %d, %v; want 2", n, err)
	}
	assertEntries(t, lookup(t, s, a1.Key, a2.Key, g1.Key), want(g1))
	if n, err := s.DeleteTenant(t.Context(), "acme"); err != nil || n != 0 {
		t.Fatalf("DeleteTenant(acme) again = %d, %v; want 0", n, err)
	}
	if _, err := s.DeleteTenant(t.Context(), ""); err == nil {
		t.Fatal("DeleteTenant(\"\") succeeded, want an error: it must not mean every tenant")
	}
}

func testConcurrentWriters(t *testing.T, s ledger.Store) {
	const writers, batches, size = 8, 10, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches*2)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				entries := make([]ledger.Entry, size)
				keys := make([]ledger.Key, size)
				for i := range entries {
					entries[i] = entry("acme", fmt.Sprintf("flow-%d", w), fmt.Sprintf("%d-%d", b, i))
					keys[i] = entries[i].Key
				}
				errs <- s.Put(t.Context(), entries)
				got, err := s.Lookup(t.Context(), keys)
				if err == nil && len(got) != size {
					err = fmt.Errorf("writer %d batch %d: Lookup after Put found %d of %d entries", w, b, len(got), size)
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent writer failed: %v", err)
		}
	}
	var all []ledger.Key
	for w := range writers {
		for b := range batches {
			for i := range size {
				all = append(all, ledger.Key{Tenant: "acme", Flow: fmt.Sprintf("flow-%d", w), SourceKey: fmt.Sprintf("%d-%d", b, i)})
			}
		}
	}
	if got := lookup(t, s, all...); len(got) != len(all) {
		t.Fatalf("found %d of %d entries written concurrently", len(got), len(all))
	}
}

// testInsertActsAsPut: Insert writes new keys, and a batch that meets existing
// keys or repeats one (a redelivery) ends as Put would leave it.
func testInsertActsAsPut(t *testing.T, s ledger.Store) {
	ctx := t.Context()
	mk := func(key, event string, version int64) ledger.Entry {
		return ledger.Entry{Key: ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: key}, ContentHash: "h" + event,
			SourceVersion: version, State: ledger.StatePending, LastEventID: event, LastAction: "created"}
	}
	if err := s.Insert(ctx, []ledger.Entry{mk("1", "e1", 1), mk("2", "e2", 1)}); err != nil {
		t.Fatalf("Insert of new keys: %v", err)
	}
	// Key 2 again (exists), key 3 twice (last wins).
	if err := s.Insert(ctx, []ledger.Entry{mk("2", "e2b", 2), mk("3", "e3", 1), mk("3", "e3b", 2)}); err != nil {
		t.Fatalf("Insert meeting existing and repeated keys: %v", err)
	}
	got, err := s.Lookup(ctx, []ledger.Key{{Tenant: "acme", Flow: "orders", SourceKey: "1"}, {Tenant: "acme", Flow: "orders", SourceKey: "2"}, {Tenant: "acme", Flow: "orders", SourceKey: "3"}})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"1": "e1", "2": "e2b", "3": "e3b"} {
		e, ok := got[ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: key}]
		if !ok || e.LastEventID != want {
			t.Errorf("key %s holds event %q (present %v), want %s", key, e.LastEventID, ok, want)
		}
	}
}

func testAdvance(t *testing.T, s ledger.Store) {
	pending := entry("acme", "orders", "pending")
	pending.State, pending.TargetID = ledger.StatePending, ""
	newer := entry("acme", "orders", "newer")
	newer.SourceVersion = 20
	put(t, s, pending, newer)
	// The pending entry is confirmed between the dedup stage's read and its advance: the
	// advance must keep the confirmation.
	if n, err := s.Confirm(t.Context(), []ledger.Confirmation{{Key: pending.Key, EventID: pending.LastEventID, State: ledger.StateFailed}}); err != nil || n != 1 {
		t.Fatalf("Confirm = %d, %v; want 1 change", n, err)
	}
	unknown := ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: "never-created"}
	err := s.Advance(t.Context(), []ledger.Version{
		{Key: pending.Key, SourceVersion: 9},
		{Key: pending.Key, SourceVersion: 12}, // the higher of a repeated key wins
		{Key: pending.Key, SourceVersion: 8},
		{Key: newer.Key, SourceVersion: 15}, // lower than the entry's: no change
		{Key: unknown, SourceVersion: 4},
	})
	if err != nil {
		t.Fatalf("Advance: %v", err)
	}
	got := lookup(t, s, pending.Key, newer.Key, unknown)
	wantPending := pending
	wantPending.State, wantPending.SourceVersion = ledger.StateFailed, 12
	if g := got[pending.Key]; !g.UpdatedAt.After(at) {
		t.Errorf("%s: UpdatedAt %v did not move on advance", pending.Key, g.UpdatedAt)
	}
	tomb, ok := got[unknown]
	if !ok || tomb.SourceVersion != 4 || tomb.LastAction != "deleted" || tomb.State != ledger.StateApplied || tomb.LastEventID != "" || tomb.TargetID != "" || tomb.ContentHash != "" {
		t.Errorf("%s = %+v (present %v), want a deleted entry of version 4, applied, with no event", unknown, tomb, ok)
	}
	delete(got, unknown)
	g := got[pending.Key]
	g.UpdatedAt = at
	got[pending.Key] = g
	assertEntries(t, got, want(wantPending, newer))
}

func testAdvanceRejectsInvalid(t *testing.T, s ledger.Store) {
	good := ledger.Version{Key: ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: "1"}, SourceVersion: 3}
	bad := ledger.Version{Key: ledger.Key{Tenant: "acme", SourceKey: "2"}, SourceVersion: 3}
	err := s.Advance(t.Context(), []ledger.Version{good, bad})
	if err == nil || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "tenant, flow and source key") {
		t.Fatalf("Advance = %v, want an error naming version 1 and its missing key parts", err)
	}
	if got := lookup(t, s, good.Key); len(got) != 0 {
		t.Fatalf("the valid version of a refused batch was written: %v", got)
	}
}
