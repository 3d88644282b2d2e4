package connector

import (
	"testing"
	"time"
)

// TestBreakerCounting pins down what the multi-partition test can only
// hope to provoke: pushes failing against an open breaker are one failure,
// only probes count and double the cool-down, the pause is told once at
// PauseAfter, the resume once after it, and an endpoint change lets a probe
// through within the cool-down.
func TestBreakerCounting(t *testing.T) {
	b := newBreakers(BreakerConfig{Cooldown: time.Second, MaxCooldown: 4 * time.Second, PauseAfter: 3})
	k := flowKey{"acme", "orders"}
	t0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

	if st := b.failed(k, "erp-v1", "refused", false, t0); !st.opened || st.paused || st.failures != 1 {
		t.Fatalf("first failure: %+v, want the breaker opened, not paused", st)
	}
	for range 3 { // the flow's other partitions, at the same moment
		if st := b.failed(k, "erp-v1", "refused", false, t0); st.opened || st.paused || st.failures != 1 {
			t.Fatalf("a simultaneous failure counted: %+v", st)
		}
	}
	if ok, _ := b.claim(k, "erp-v1", t0.Add(999*time.Millisecond)); ok {
		t.Fatal("a probe was let through within the first cool-down")
	}
	ok, probe := b.claim(k, "erp-v1", t0.Add(time.Second))
	if !ok || !probe {
		t.Fatalf("claim after the cool-down = %v, %v; want a probe", ok, probe)
	}
	if ok, _ := b.claim(k, "erp-v1", t0.Add(time.Second)); ok {
		t.Fatal("a second partition probes while one is probing")
	}
	st := b.failed(k, "erp-v1", "refused", true, t0.Add(time.Second))
	if st.failures != 2 || st.paused {
		t.Fatalf("failed probe: %+v, want 2 failures, not paused yet", st)
	}
	// The cool-down doubled: 2 s after the probe.
	if ok, _ := b.claim(k, "erp-v1", t0.Add(2900*time.Millisecond)); ok {
		t.Fatal("the cool-down did not double")
	}
	// An endpoint change is probed at once.
	if ok, probe := b.claim(k, "erp-v2", t0.Add(1100*time.Millisecond)); !ok || !probe {
		t.Fatal("a changed endpoint was not probed within the cool-down")
	}
	if st := b.failed(k, "erp-v2", "refused", true, t0.Add(1100*time.Millisecond)); !st.paused || st.failures != 3 || st.since != t0 {
		t.Fatalf("third failure: %+v, want the flow paused after 3 failures since %s", st, t0)
	}
	if st := b.failed(k, "erp-v2", "refused", true, t0.Add(time.Minute)); st.paused || st.failures != 4 {
		t.Fatalf("fourth failure: %+v, want it counted and the pause not told again", st)
	}
	st, wasOpen := b.succeeded(k)
	if !wasOpen || !st.resumed || st.failures != 4 {
		t.Fatalf("success: %+v, %v; want the paused flow resumed", st, wasOpen)
	}
	if ok, probe := b.claim(k, "erp-v2", t0.Add(time.Minute)); !ok || probe {
		t.Fatal("a closed breaker does not let releases through without a probe")
	}
	if st, wasOpen := b.succeeded(k); wasOpen || st.resumed {
		t.Fatal("a second success resumed the flow again")
	}
}
