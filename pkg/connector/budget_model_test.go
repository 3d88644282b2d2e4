package connector

import (
	"flag"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var budgetSeed = flag.Uint64("budget.seed", 0, "seed of TestPacerFollowsModel's random sequences; 0 picks one")

// pacerModel is the budget's rules written as plainly as they can be: the effective rate
// halves on a throttle (not below limit/64) and gains limit/16 per success (not above limit),
// nothing starts before the back-off ends, and a throttle without Retry-After backs off 1s,
// 2s, 4s, ... up to a minute until a success.
type pacerModel struct {
	limit, rate float64
	notBefore   time.Time
	streak      int
}

func (m *pacerModel) throttled(now time.Time, retryAfter time.Duration) {
	m.streak++
	wait := retryAfter
	if wait == 0 {
		wait = time.Second
		for i := 1; i < m.streak && wait < time.Minute; i++ {
			wait *= 2
		}
		wait = min(wait, time.Minute)
	}
	if now.Add(wait).After(m.notBefore) {
		m.notBefore = now.Add(wait)
	}
	if m.limit > 0 {
		m.rate = math.Max(m.rate/2, m.limit/64)
	}
}

func (m *pacerModel) succeeded() {
	m.streak = 0
	if m.limit > 0 {
		m.rate = math.Min(m.limit, m.rate+m.limit/16)
	}
}

// TestPacerFollowsModel drives the pacer and the model with the same random sequences of
// requests, throttles and successes at made-up times, and checks that they agree on the rate,
// that no request starts during a back-off, that the requests in any stretch of time never
// exceed what the configured rate allows, and that a request told to wait may start when the
// wait is over.
func TestPacerFollowsModel(t *testing.T) {
	seed := *budgetSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -budget.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for run := range 200 {
		limit := []int{0, 1, 3, 10, 100, 1000}[rng.IntN(6)]
		start := time.Unix(1_700_000_000, 0)
		now := start
		p := newPacer(limit, now)
		m := pacerModel{limit: float64(limit), rate: float64(limit)}
		var grants []time.Time
		for step := range 300 {
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("run %d (limit %d), step %d at +%s: "+format, append([]any{run, limit, step, now.Sub(start)}, args...)...)
			}
			now = now.Add(time.Duration(rng.Int64N(int64(2 * time.Second / time.Duration(max(limit, 1))))))
			switch r := rng.IntN(10); {
			case r < 6:
				wait := p.take(now)
				if wait == 0 {
					if now.Before(m.notBefore) {
						fail("a request started %s before the back-off ends", m.notBefore.Sub(now))
					}
					grants = append(grants, now)
					break
				}
				if rng.IntN(2) == 0 {
					// Come back exactly when told: the request starts then.
					now = now.Add(wait)
					if again := p.take(now); again != 0 {
						fail("told to wait %s, and after it told to wait %s more", wait, again)
					}
					grants = append(grants, now)
				}
			case r < 8:
				p.succeeded(now)
				m.succeeded()
			default:
				retryAfter := time.Duration(0)
				if rng.IntN(2) == 0 {
					retryAfter = time.Duration(rng.Int64N(int64(10 * time.Second)))
				}
				p.throttled(now, retryAfter)
				m.throttled(now, retryAfter)
				if !p.notBefore.Equal(m.notBefore) {
					fail("back-off ends at +%s, the model says +%s", p.notBefore.Sub(start), m.notBefore.Sub(start))
				}
				if p.take(now) == 0 {
					fail("a request started right after a throttle")
				}
			}
			if math.Abs(p.rate-m.rate) > 1e-9*math.Max(1, m.limit) {
				fail("rate %v, the model says %v", p.rate, m.rate)
			}
		}
		if limit == 0 {
			continue
		}
		// The requests from any grant to any later one are at most a full bucket plus
		// what the configured rate adds meanwhile.
		burst := math.Max(1, float64(limit)/10)
		for i := range grants {
			for j := i; j < len(grants); j++ {
				allowed := burst + grants[j].Sub(grants[i]).Seconds()*float64(limit) + 1e-6
				if n := float64(j - i + 1); n > allowed {
					t.Fatalf("run %d (limit %d): %v requests in %s, the rate allows %.2f", run, limit, n, grants[j].Sub(grants[i]), allowed)
				}
			}
		}
	}
}

// TestPacerRecoversStepByStep checks the numbers a user reads in the docs: one throttle
// halves the rate, eight quiet requests make it whole again, and the rate never goes below
// a sixty-fourth of the configured one.
func TestPacerRecoversStepByStep(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := newPacer(64, now)
	p.throttled(now, time.Second)
	if p.rate != 32 {
		t.Fatalf("rate after one throttle = %v, want 32", p.rate)
	}
	for i := 1; i <= 8; i++ {
		p.succeeded(now)
		if want := 32 + float64(4*i); p.rate != want {
			t.Fatalf("rate after %d successes = %v, want %v", i, p.rate, want)
		}
	}
	p.succeeded(now)
	if p.rate != 64 {
		t.Fatalf("rate after recovering = %v, want 64", p.rate)
	}
	for range 20 {
		p.throttled(now, 0)
	}
	if p.rate != 1 {
		t.Fatalf("rate after many throttles = %v, want the floor 1", p.rate)
	}
	if wait := p.notBefore.Sub(now); wait != time.Minute {
		t.Fatalf("back-off after many throttles without Retry-After = %s, want the cap of a minute", wait)
	}
}
