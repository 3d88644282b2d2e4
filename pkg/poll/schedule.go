package poll

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/robfig/cron/v3"
)

// The schedule modes of a flow (spec.schedule.mode).
const (
	ModeRealtime = "realtime" // the source publishes its changes; nothing polls
	ModeInterval = "interval" // poll every Every
	ModeCron     = "cron"     // poll on a cron schedule
)

// The overrun policies: what happens to the polls a long poll ran over.
const (
	// OverrunSkip drops them: the next poll is at the first time due after the long one
	// ended. The default: a poll reads until the source has nothing more, so a dropped
	// poll loses nothing.
	OverrunSkip = "skip"
	// OverrunNow polls once more at once, then on schedule again.
	OverrunNow = "now"
)

// MaxJitter bounds the default jitter: a tenth of the period, at most this.
const MaxJitter = 30 * time.Second

// Schedule is when a source is polled.
type Schedule struct {
	// Every is the interval of mode interval; zero for cron.
	Every time.Duration
	// Cron is the parsed expression of mode cron, in its time zone; nil for interval.
	Cron cron.Schedule
	// Jitter is the most each poll is delayed at random, so that sources on one
	// schedule do not all poll at the same moment.
	Jitter time.Duration
	// Overrun is OverrunSkip or OverrunNow.
	Overrun string
}

// Spec is a schedule as a flow states it (and as the flow configs carry it).
type Spec struct {
	Mode string `json:"mode"`
	// Every is a Go duration of mode interval, e.g. "30s", "5m".
	Every string `json:"every,omitempty"`
	// Cron is a five-field cron expression of mode cron ("*/5 * * * *"), or a descriptor
	// such as "@hourly".
	Cron string `json:"cron,omitempty"`
	// Timezone is the IANA time zone the cron expression is read in; empty: UTC.
	Timezone string `json:"timezone,omitempty"`
	// Jitter is the most a poll is delayed at random, a Go duration; empty: a tenth of
	// the period, at most MaxJitter; "0s": none.
	Jitter string `json:"jitter,omitempty"`
	// Overrun is skip (the default) or now.
	Overrun string `json:"overrun,omitempty"`
}

// MinEvery is the shortest interval: a source polled more often would be better served
// by a webhook.
const MinEvery = time.Second

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// FieldError is a problem with one field of a schedule; Field is its name within
// spec.schedule ("every", "cron"...).
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Parse checks a polling schedule (mode interval or cron) and returns it. Realtime is not a
// polling schedule: Parse refuses it, as every other mode.
func Parse(s Spec) (Schedule, error) {
	var out Schedule
	switch s.Mode {
	case ModeInterval:
		if s.Cron != "" || s.Timezone != "" {
			return out, &FieldError{"cron", "an interval schedule has no cron or timezone: use mode cron for those"}
		}
		if s.Every == "" {
			return out, &FieldError{"every", `required for mode interval, e.g. "30s" or "5m"`}
		}
		d, err := time.ParseDuration(s.Every)
		if err != nil {
			return out, &FieldError{"every", fmt.Sprintf("%q is not a duration: write it like \"30s\" or \"5m\"", s.Every)}
		}
		if d < MinEvery {
			return out, &FieldError{"every", fmt.Sprintf("%s is shorter than %s: poll less often, or have the source push its changes (a webhook)", d, MinEvery)}
		}
		out.Every = d
	case ModeCron:
		if s.Every != "" {
			return out, &FieldError{"every", "a cron schedule has no every: use mode interval for that"}
		}
		if s.Cron == "" {
			return out, &FieldError{"cron", `required for mode cron, e.g. "*/5 * * * *" (every five minutes)`}
		}
		loc := time.UTC
		if s.Timezone != "" {
			l, err := time.LoadLocation(s.Timezone)
			if err != nil {
				return out, &FieldError{"timezone", fmt.Sprintf("%q is not a time zone: use an IANA name such as \"Europe/Amsterdam\" or \"UTC\"", s.Timezone)}
			}
			loc = l
		}
		sched, err := parser.Parse(s.Cron)
		if err != nil {
			return out, &FieldError{"cron", fmt.Sprintf("%q: %v; write five fields (minute hour day-of-month month day-of-week), e.g. \"*/5 * * * *\"", s.Cron, err)}
		}
		out.Cron = inZone{sched, loc}
	default:
		return out, &FieldError{"mode", fmt.Sprintf("%q is not a polling schedule: use interval or cron", s.Mode)}
	}
	switch s.Overrun {
	case "", OverrunSkip:
		out.Overrun = OverrunSkip
	case OverrunNow:
		out.Overrun = OverrunNow
	default:
		return out, &FieldError{"overrun", fmt.Sprintf("%q: use skip (drop the polls a long poll ran over) or now (poll once more at once)", s.Overrun)}
	}
	if s.Jitter == "" {
		out.Jitter = min(out.period()/10, MaxJitter)
	} else {
		j, err := time.ParseDuration(s.Jitter)
		if err != nil || j < 0 {
			return out, &FieldError{"jitter", fmt.Sprintf("%q is not a duration of zero or more, like \"10s\"", s.Jitter)}
		}
		if p := out.period(); j >= p {
			return out, &FieldError{"jitter", fmt.Sprintf("%s is not shorter than the schedule's period (%s): polls would run into each other", j, p)}
		}
		out.Jitter = j
	}
	return out, nil
}

// inZone reads a cron schedule in a time zone.
type inZone struct {
	cron.Schedule
	loc *time.Location
}

func (z inZone) Next(t time.Time) time.Time { return z.Schedule.Next(t.In(z.loc)) }

// period is the time between two polls: the interval, or the cron schedule's shortest gap
// over its next few polls.
func (s Schedule) period() time.Duration {
	if s.Cron == nil {
		return s.Every
	}
	t := s.Cron.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p := time.Duration(1<<63 - 1)
	for range 8 {
		n := s.Cron.Next(t)
		if n.IsZero() {
			break
		}
		p = min(p, n.Sub(t))
		t = n
	}
	return p
}

// Due returns when the next poll is due after one that started at start and ended at end,
// without jitter: the first scheduled time after start, or, if the poll ran past it, what
// the overrun policy says.
func (s Schedule) Due(start, end time.Time) time.Time {
	next := s.after(start)
	if !next.Before(end) {
		return next
	}
	if s.Overrun == OverrunNow {
		return end
	}
	return s.after(end)
}

func (s Schedule) after(t time.Time) time.Time {
	if s.Cron != nil {
		return s.Cron.Next(t)
	}
	return t.Add(s.Every)
}

// WithJitter delays t by a random part of the jitter.
func (s Schedule) WithJitter(t time.Time) time.Time {
	if s.Jitter <= 0 {
		return t
	}
	return t.Add(rand.N(s.Jitter))
}
