package connector

import (
	"sync"
	"time"
)

// Circuit breaking. A push that fails as a whole — the target cannot be
// reached, times out, refuses the connection or the credentials — opens the
// flow's breaker at once. While it is open, this process holds the flow's
// events (see paused.go) instead of pushing them, so its partitions go on
// with every other flow's events: one tenant's down target stalls nobody
// else, beyond the one push that failed.
//
// After a cool-down one partition probes the target with the oldest held
// event; at once if the flow or its endpoint was changed since the last
// failure (a corrected DSN, new credentials). If it goes through, the breaker closes and the held events follow,
// oldest first and before anything newer of the flow; if not, the cool-down
// doubles, up to a maximum. A breaker that fails PauseAfter attempts in a
// row has paused its flow: the tenant is told, through a notice on the
// audit stream that the eventlog turns into an alert, and told again when
// the flow resumes. A single failure that the next probe clears is not
// worth an alert.
//
// Breakers are per process: a replica learns that a target is down from its
// own pushes, and each tells the tenant (the eventlog passes on one pause
// per flow until it resumes).

// BreakerConfig tunes the circuit breakers; the zero value of each field is
// its default.
type BreakerConfig struct {
	// Cooldown is the wait before the first probe (default 1s); each failed
	// probe doubles it, up to MaxCooldown (default 1m).
	Cooldown, MaxCooldown time.Duration
	// PauseAfter is how many failed attempts in a row pause a flow and
	// tell its tenant (default 3: the push and two probes).
	PauseAfter int
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Cooldown <= 0 {
		c.Cooldown = time.Second
	}
	if c.MaxCooldown < c.Cooldown {
		c.MaxCooldown = max(time.Minute, c.Cooldown)
	}
	if c.PauseAfter <= 0 {
		c.PauseAfter = 3
	}
	return c
}

// flowKey names a flow.
type flowKey struct{ tenant, flow string }

// breakers are the process's open breakers, by flow; a flow without one is
// closed.
type breakers struct {
	cfg BreakerConfig

	mu    sync.Mutex
	flows map[flowKey]*breaker
}

type breaker struct {
	failures int       // failed attempts in a row
	since    time.Time // when the first of them failed
	reason   string    // the last one's error
	next     time.Time // the earliest next probe
	target   string    // the flow's target (fingerprint) at the last failure
	probing  bool      // a partition is probing
	paused   bool      // the tenant was told
}

// breakerState is what a caller learns of a breaker when it changes.
type breakerState struct {
	failures int
	since    time.Time
	reason   string
	// opened: this failure opened the breaker. paused: this failure
	// paused the flow, and the tenant is to be told.
	opened, paused bool
	// resumed: this success closed the breaker of a paused flow, and the
	// tenant is to be told.
	resumed bool
}

func newBreakers(cfg BreakerConfig) *breakers {
	return &breakers{cfg: cfg.withDefaults(), flows: map[flowKey]*breaker{}}
}

// open says whether k's breaker is open.
func (b *breakers) open(k flowKey) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flows[k] != nil
}

// claim says whether the caller may push k's held events now: at once when
// the breaker is closed; when it is open, once its cool-down is over or the
// flow's target changed (target is its fingerprint now), if no other
// partition is probing, and then as the probe (which must end in failed,
// succeeded or unclaim).
func (b *breakers) claim(k flowKey, target string, now time.Time) (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.flows[k]
	switch {
	case br == nil:
		return true, false
	case br.probing || (now.Before(br.next) && target == br.target):
		return false, false
	}
	br.probing = true
	return true, true
}

// unclaim gives up a probe that was not made.
func (b *breakers) unclaim(k flowKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if br := b.flows[k]; br != nil {
		br.probing = false
	}
}

// failed records a failed push or probe of k and opens its breaker, or
// keeps it open for a longer cool-down. Only a probe counts against an open
// breaker: pushes of several partitions that fail at the same moment are one
// failure, not one each.
func (b *breakers) failed(k flowKey, target, reason string, probe bool, now time.Time) breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.flows[k]
	opened := br == nil
	switch {
	case opened:
		br = &breaker{since: now}
		b.flows[k] = br
	case !probe:
		return breakerState{failures: br.failures, since: br.since, reason: br.reason}
	}
	br.failures++
	br.reason, br.target = reason, target
	br.probing = false
	cooldown := b.cfg.Cooldown
	for i := 1; i < br.failures && cooldown < b.cfg.MaxCooldown; i++ {
		cooldown *= 2
	}
	br.next = now.Add(min(cooldown, b.cfg.MaxCooldown))
	st := breakerState{failures: br.failures, since: br.since, reason: reason, opened: opened}
	if !br.paused && br.failures >= b.cfg.PauseAfter {
		br.paused, st.paused = true, true
	}
	return st
}

// throttled holds k's events until wait has passed, because its target asked
// the flow to slow down. It is no outage: it counts no failure and pauses
// nothing, and a breaker that was open for an outage keeps its count. The
// release tick then tries again as a probe.
func (b *breakers) throttled(k flowKey, target string, wait time.Duration, now time.Time) (opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.flows[k]
	if br == nil {
		br = &breaker{since: now}
		b.flows[k] = br
		opened = true
	}
	br.target, br.probing = target, false
	br.next = now.Add(max(wait, b.cfg.Cooldown))
	return opened
}

// succeeded closes k's breaker after a push that went through.
func (b *breakers) succeeded(k flowKey) (st breakerState, wasOpen bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.flows[k]
	if br == nil {
		return breakerState{}, false
	}
	delete(b.flows, k)
	return breakerState{failures: br.failures, since: br.since, reason: br.reason, resumed: br.paused}, true
}

// forget drops k's breaker: its flow is gone.
func (b *breakers) forget(k flowKey) (wasOpen bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, wasOpen = b.flows[k]
	delete(b.flows, k)
	return wasOpen
}
