package deadletter_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/sqlstore/sqlstoretest"
	"github.com/syncline/syncline/services/eventlog/deadletter"
)

// each runs a test on a new store of every backend.
func each(t *testing.T, run func(t *testing.T, s *deadletter.Store)) {
	for _, backend := range sqlstoretest.Backends() {
		t.Run(backend.Name, func(t *testing.T) {
			s, err := deadletter.New(t.Context(), backend.Open(t))
			if err != nil {
				t.Fatal(err)
			}
			run(t, s)
		})
	}
}

var base = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func letter(tenant string, n int, flow, code string) deadletter.Letter {
	return deadletter.Letter{Tenant: tenant, ID: fmt.Sprintf("dlq:%03d", n), EventID: fmt.Sprintf("ev-%d", n), Flow: flow, Entity: "order",
		SourceKey: fmt.Sprint(1000 + n), Stage: "connector", Code: code, Reason: "refused", Attempts: 3,
		DeadAt: base.Add(time.Duration(n) * time.Minute), Sealed: fmt.Sprintf("v1:sealed-%d", n)}
}

func TestStoreListsFiltersAndPages(t *testing.T) {
	each(t, func(t *testing.T, s *deadletter.Store) {
		ctx := t.Context()
		var letters []deadletter.Letter
		for n := range 25 {
			code := "target_rejected"
			if n%5 == 0 {
				code = "mapping_failed"
			}
			letters = append(letters, letter("acme", n, []string{"orders", "products"}[n%2], code))
		}
		letters = append(letters, letter("globex", 99, "orders", "target_rejected"))
		if err := s.Insert(ctx, letters); err != nil {
			t.Fatal(err)
		}
		// A redelivered dead letter is stored once and does not reset the letter.
		if err := s.MarkReplayed(ctx, "acme", "dlq:003"); err != nil {
			t.Fatal(err)
		}
		if err := s.Insert(ctx, letters[3:4]); err != nil {
			t.Fatal(err)
		}
		var all []deadletter.Letter
		f := deadletter.Filter{Tenant: "acme", Limit: 10}
		for {
			page, err := s.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page.Letters...)
			if page.NextCursor == "" {
				break
			}
			f.Cursor = page.NextCursor
		}
		if len(all) != 25 {
			t.Fatalf("paged list of acme: %d letters, want 25", len(all))
		}
		for i, l := range all {
			if l.Tenant != "acme" || l.Sealed != "" {
				t.Fatalf("listed letter %+v: a list shows one tenant, and never the sealed event", l)
			}
			if i > 0 && !l.DeadAt.Before(all[i-1].DeadAt) {
				t.Fatalf("letter %d is not older than the one before: the list is newest first", i)
			}
		}
		if all[24-3].State != deadletter.StateReplayed || all[24-3].Replays != 1 {
			t.Errorf("letter dlq:003 after a redelivery: %+v, want still replayed once", all[24-3])
		}
		page, err := s.List(ctx, deadletter.Filter{Tenant: "acme", Flow: "orders", Code: "mapping_failed"})
		if err != nil {
			t.Fatal(err)
		}
		// n in 0..24 with n%2 == 0 and n%5 == 0: 0, 10, 20.
		if len(page.Letters) != 3 {
			t.Errorf("filtered by flow and code: %d letters, want 3", len(page.Letters))
		}
		page, err = s.List(ctx, deadletter.Filter{Tenant: "acme", From: base.Add(20 * time.Minute), To: base.Add(22 * time.Minute)})
		if err != nil || len(page.Letters) != 2 {
			t.Errorf("filtered by time: %d letters, %v; want 2", len(page.Letters), err)
		}
		if _, err := s.List(ctx, deadletter.Filter{Tenant: "acme", Cursor: "garbage"}); err == nil {
			t.Error("a bad page token was accepted")
		}
	})
}

func TestStoreEditReplayDiscardExpire(t *testing.T) {
	each(t, func(t *testing.T, s *deadletter.Store) {
		ctx := t.Context()
		if err := s.Insert(ctx, []deadletter.Letter{letter("acme", 1, "orders", "c"), letter("acme", 2, "orders", "c"), letter("globex", 3, "orders", "c")}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "acme", "dlq:001")
		if err != nil || got.Sealed != "v1:sealed-1" || got.State != deadletter.StateOpen || !got.DeadAt.Equal(base.Add(time.Minute)) {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		if _, err := s.Get(ctx, "globex", "dlq:001"); !errors.Is(err, deadletter.ErrNotFound) {
			t.Errorf("another tenant's letter: %v, want ErrNotFound", err)
		}
		if err := s.SetSealed(ctx, "acme", "dlq:001", "v1:edited"); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkReplayed(ctx, "acme", "dlq:001"); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Get(ctx, "acme", "dlq:001")
		if got.Sealed != "v1:edited" || got.State != deadletter.StateReplayed || got.Replays != 1 {
			t.Errorf("after edit and replay: %+v", got)
		}
		if err := s.Discard(ctx, "acme", "dlq:002"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "acme", "dlq:002"); got.Sealed != "" || got.State != deadletter.StateDiscarded {
			t.Errorf("a discarded letter keeps its event: %+v", got)
		}
		if err := s.Discard(ctx, "acme", "nope"); !errors.Is(err, deadletter.ErrNotFound) {
			t.Errorf("discarding a letter that does not exist: %v", err)
		}
		n, err := s.DeleteBefore(ctx, "acme", base.Add(90*time.Second))
		if err != nil || n != 1 {
			t.Errorf("DeleteBefore = %d, %v; want the one older letter", n, err)
		}
		n, err = s.DeleteTenant(ctx, "acme")
		if err != nil || n != 1 {
			t.Errorf("DeleteTenant = %d, %v; want 1", n, err)
		}
		if _, err := s.Get(ctx, "globex", "dlq:003"); err != nil {
			t.Errorf("the other tenant's letter: %v", err)
		}
	})
}
