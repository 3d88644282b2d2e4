package poll_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/poll"
)

func TestParseRefusesWithTheField(t *testing.T) {
	tests := []struct {
		spec        poll.Spec
		field, says string
	}{
		{poll.Spec{Mode: "interval"}, "every", "required"},
		{poll.Spec{Mode: "interval", Every: "five minutes"}, "every", "not a duration"},
		{poll.Spec{Mode: "interval", Every: "100ms"}, "every", "webhook"},
		{poll.Spec{Mode: "interval", Every: "1m", Cron: "* * * * *"}, "cron", "mode cron"},
		{poll.Spec{Mode: "cron"}, "cron", "required"},
		{poll.Spec{Mode: "cron", Cron: "61 * * * *"}, "cron", "five fields"},
		{poll.Spec{Mode: "cron", Cron: "* * * * *", Every: "1m"}, "every", "mode interval"},
		{poll.Spec{Mode: "cron", Cron: "* * * * *", Timezone: "Europe/Nowhere"}, "timezone", "IANA"},
		{poll.Spec{Mode: "interval", Every: "1m", Jitter: "-1s"}, "jitter", "zero or more"},
		{poll.Spec{Mode: "interval", Every: "1m", Jitter: "1m"}, "jitter", "period"},
		{poll.Spec{Mode: "interval", Every: "1m", Overrun: "queue"}, "overrun", "skip"},
		{poll.Spec{Mode: "realtime"}, "mode", "interval or cron"},
	}
	for _, tt := range tests {
		_, err := poll.Parse(tt.spec)
		var fe *poll.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Reason, tt.says) {
			t.Errorf("Parse(%+v) = %v, want a problem with %s that says %q", tt.spec, err, tt.field, tt.says)
		}
	}
}

func TestScheduleDue(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	every, err := poll.Parse(poll.Spec{Mode: "interval", Every: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	if every.Jitter != 30*time.Second {
		t.Errorf("default jitter of 5m = %s, want a tenth, 30s", every.Jitter)
	}
	start := at("2026-03-01T10:00:00Z")
	if got := every.Due(start, start.Add(time.Minute)); !got.Equal(at("2026-03-01T10:05:00Z")) {
		t.Errorf("interval: due %s after a short poll, want 10:05", got)
	}
	// A poll that ran 12 minutes: skip drops the ones it ran over.
	if got := every.Due(start, start.Add(12*time.Minute)); !got.Equal(at("2026-03-01T10:17:00Z")) {
		t.Errorf("interval, skip: due %s after a 12-minute poll, want 10:17", got)
	}
	now, err := poll.Parse(poll.Spec{Mode: "interval", Every: "5m", Overrun: "now"})
	if err != nil {
		t.Fatal(err)
	}
	if got := now.Due(start, start.Add(12*time.Minute)); !got.Equal(at("2026-03-01T10:12:00Z")) {
		t.Errorf("interval, now: due %s after a 12-minute poll, want 10:12 at once", got)
	}
	// Every day at 02:30 in Amsterdam, which is 01:30 UTC in winter and 00:30 in summer.
	daily, err := poll.Parse(poll.Spec{Mode: "cron", Cron: "30 2 * * *", Timezone: "Europe/Amsterdam", Jitter: "0s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := daily.Due(at("2026-01-10T12:00:00Z"), at("2026-01-10T12:01:00Z")); !got.Equal(at("2026-01-11T01:30:00Z")) {
		t.Errorf("cron in winter: due %s, want 01:30 UTC", got)
	}
	if got := daily.Due(at("2026-07-10T12:00:00Z"), at("2026-07-10T12:01:00Z")); !got.Equal(at("2026-07-11T00:30:00Z")) {
		t.Errorf("cron in summer: due %s, want 00:30 UTC", got)
	}
	fivemin, err := poll.Parse(poll.Spec{Mode: "cron", Cron: "*/5 * * * *"})
	if err != nil {
		t.Fatal(err)
	}
	if fivemin.Jitter != 30*time.Second {
		t.Errorf("default jitter of */5 = %s, want 30s", fivemin.Jitter)
	}
	for range 100 {
		d := at("2026-03-01T10:05:00Z")
		if j := fivemin.WithJitter(d); j.Before(d) || !j.Before(d.Add(30*time.Second)) {
			t.Fatalf("jittered %s to %s, outside [0, 30s)", d, j)
		}
	}
}

func TestEventIDDerivesFromSourceKeyAndVersion(t *testing.T) {
	src := poll.Source{Tenant: "acme", Endpoint: "shop", Entity: "order"}
	a := poll.EventID(src, "17", 1000)
	if a != poll.EventID(src, "17", 1000) {
		t.Fatal("one change has two event ids")
	}
	others := []string{
		poll.EventID(src, "17", 1001),
		poll.EventID(src, "171", 1000),
		poll.EventID(poll.Source{Tenant: "acme", Endpoint: "shop", Entity: "customer"}, "17", 1000),
		poll.EventID(poll.Source{Tenant: "acme", Endpoint: "shop2", Entity: "order"}, "17", 1000),
		// Names that run into each other when joined without lengths.
		poll.EventID(poll.Source{Tenant: "acme", Endpoint: "sho", Entity: "porder"}, "17", 1000),
	}
	for _, o := range others {
		if o == a {
			t.Errorf("two changes share event id %s", a)
		}
	}
	if len(a) != 36 || a[14] != '8' {
		t.Errorf("event id %s is not a version-8 UUID", a)
	}
}

func TestStoreAndLeases(t *testing.T) {
	ctx := context.Background()
	_, js := natstest.Connect(t, natstest.Run(t))
	store := poll.NewStore(js, 1)
	src := poll.Source{Tenant: "acme", Endpoint: "shop", Entity: "order"}
	st, rev, err := store.Get(ctx, src)
	if err != nil || rev != 0 || st.Cursor != "" {
		t.Fatalf("a new source: %+v rev %d %v", st, rev, err)
	}
	rev, err = store.Put(ctx, src, poll.State{Cursor: "a"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, src, poll.State{Cursor: "b"}, 0); !errors.Is(err, poll.ErrConflict) {
		t.Fatalf("a second first write = %v, want a conflict", err)
	}
	rev2, err := store.Put(ctx, src, poll.State{Cursor: "b"}, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, src, poll.State{Cursor: "c"}, rev); !errors.Is(err, poll.ErrConflict) {
		t.Fatalf("a write from an old revision = %v, want a conflict", err)
	}
	if st, r, _ := store.Get(ctx, src); st.Cursor != "b" || r != rev2 {
		t.Fatalf("state = %+v rev %d, want cursor b at %d", st, r, rev2)
	}

	one, err := store.TryLease(ctx, src, "one")
	if err != nil || one == nil {
		t.Fatalf("first lease: %v %v", one, err)
	}
	if two, err := store.TryLease(ctx, src, "two"); err != nil || two != nil {
		t.Fatalf("a second lease while the first is held: %v %v", two, err)
	}
	if err := one.Renew(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	one.Release()
	two, err := store.TryLease(ctx, src, "two")
	if err != nil || two == nil {
		t.Fatalf("the lease after its release: %v %v", two, err)
	}
	// The first holder's lease is gone: renewing it fails, so its poll stops.
	if err := one.Renew(ctx, "one"); err == nil {
		t.Fatal("a released lease was renewed over its new holder")
	}

	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := store.RequestSync(ctx, src, poll.Request{At: at, FromStart: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := store.SyncRequested(ctx, src); err != nil || !got.At.Equal(at) || !got.FromStart {
		t.Fatalf("sync requested = %+v %v, want %s from the start", got, err, at)
	}
	other := poll.Source{Tenant: "acme2", Endpoint: "shop", Entity: "order"}
	if _, err := store.Put(ctx, other, poll.State{Cursor: "x"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := poll.Forget(ctx, js, "acme"); err != nil {
		t.Fatal(err)
	}
	if st, r, _ := store.Get(ctx, src); r != 0 || st.Cursor != "" {
		t.Errorf("after the tenant's erase its source holds %+v", st)
	}
	if got, _ := store.SyncRequested(ctx, src); !got.At.IsZero() {
		t.Errorf("after the tenant's erase its sync request is still there")
	}
	if st, _, _ := store.Get(ctx, other); st.Cursor != "x" {
		t.Errorf("another tenant's source was erased too")
	}
}

// TestLeaseOfADeadHolderExpires: a replica that died holding a source's lease holds it no
// longer than the lease's TTL; then another takes it, and the dead one can no longer renew.
func TestLeaseOfADeadHolderExpires(t *testing.T) {
	ctx := context.Background()
	_, js := natstest.Connect(t, natstest.Run(t))
	store := poll.NewStore(js, 1, poll.WithLeaseTTL(time.Second))
	src := poll.Source{Tenant: "acme", Endpoint: "shop", Entity: "order"}
	dead, err := store.TryLease(ctx, src, "dead")
	if err != nil || dead == nil {
		t.Fatalf("first lease: %v %v", dead, err)
	}
	if l, _ := store.TryLease(ctx, src, "alive"); l != nil {
		t.Fatal("the lease was taken while its holder's TTL ran")
	}
	var alive *poll.Lease
	for deadline := time.Now().Add(10 * time.Second); alive == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the lease of a holder that stopped renewing it never expired")
		}
		if alive, err = store.TryLease(ctx, src, "alive"); err != nil {
			t.Fatal(err)
		}
	}
	if err := dead.Renew(ctx, "dead"); err == nil {
		t.Fatal("the dead holder renewed a lease another holds")
	}
	if err := alive.Renew(ctx, "alive"); err != nil {
		t.Fatalf("the new holder cannot renew its lease: %v", err)
	}
}
