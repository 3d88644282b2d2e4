package dedup

import (
	"context"
	"log/slog"
	"testing"

	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
	"github.com/syncline/syncline/services/dedup/ledger"
)

// signalling passes every call to the ledger, and says when Confirm was
// first called.
type signalling struct {
	ledger.Store
	confirmed chan struct{}
}

func (s *signalling) Confirm(ctx context.Context, cs []ledger.Confirmation) (int, error) {
	n, err := s.Store.Confirm(ctx, cs)
	select {
	case s.confirmed <- struct{}{}:
	default:
	}
	return n, err
}

// TestConfirmWaitsForItsEntry: the dedup stage writes an entry after it
// publishes the push, so the target's answer can come first. The answer
// then waits for the entry it belongs to, and is not lost; an answer to a
// decision that a newer one replaced changes nothing and does not wait.
func TestConfirmWaitsForItsEntry(t *testing.T) {
	ctx := context.Background()
	store, err := ledger.New(ctx, sqlstoretest.OpenSQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	sig := &signalling{Store: store, confirmed: make(chan struct{}, 1)}
	s := &Service{deps: Deps{Ledger: sig}, log: slog.New(slog.DiscardHandler)}
	key := func(k string) ledger.Key { return ledger.Key{Tenant: "acme", Flow: "orders", SourceKey: k} }
	entry := func(k, event string) ledger.Entry {
		return ledger.Entry{Key: key(k), ContentHash: "h", SourceVersion: 1, State: ledger.StatePending, LastEventID: event, LastAction: "updated"}
	}
	// "new" is a create not written yet; "old" still shows the event its
	// push replaced; "gone" was replaced by a newer decision.
	if err := store.Put(ctx, []ledger.Entry{entry("old", "ev-old-1"), entry("gone", "ev-gone-2")}); err != nil {
		t.Fatal(err)
	}
	answers := []answer{
		{Confirmation: ledger.Confirmation{Key: key("new"), EventID: "ev-new-1", State: ledger.StateApplied, TargetID: "new"}},
		{Confirmation: ledger.Confirmation{Key: key("old"), EventID: "ev-old-2", State: ledger.StateFailed}, supersedes: "ev-old-1"},
		{Confirmation: ledger.Confirmation{Key: key("gone"), EventID: "ev-gone-1", State: ledger.StateApplied}},
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.confirm(ctx, nil, answers)
		done <- err
	}()
	<-sig.confirmed // the answers came before the entries
	select {
	case err := <-done:
		t.Fatalf("the answers did not wait for their entries (confirm returned %v)", err)
	default:
	}
	if err := store.Put(ctx, []ledger.Entry{entry("new", "ev-new-1"), entry("old", "ev-old-2")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("confirm: %v", err)
	}
	got, err := store.Lookup(ctx, []ledger.Key{key("new"), key("old"), key("gone")})
	if err != nil {
		t.Fatal(err)
	}
	if e := got[key("new")]; e.State != ledger.StateApplied || e.TargetID != "new" {
		t.Errorf("new: %+v, want applied with target id new", e)
	}
	if e := got[key("old")]; e.State != ledger.StateFailed {
		t.Errorf("old: %+v, want failed", e)
	}
	if e := got[key("gone")]; e.State != ledger.StatePending || e.LastEventID != "ev-gone-2" {
		t.Errorf("gone: %+v, want the newer decision's entry unchanged", e)
	}
}
