package chaos_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHoldingsAndOverlaps checks the reading of the services' logs that the
// chaos test relies on: a hand-over (one run stops a consumer, another then
// runs it) is no overlap; a consumer a killed run held until its kill
// overlaps another run's that started before the kill; consumers are told
// apart by name, whatever they are called.
func TestHoldingsAndOverlaps(t *testing.T) {
	dir := t.TempDir()
	at := func(sec int) time.Time { return time.Date(2026, 1, 1, 12, 0, sec, 0, time.UTC) }
	line := func(sec int, msg, consumer string) string {
		return `{"time":"` + at(sec).Format(time.RFC3339Nano) + `","level":"INFO","msg":"` + msg + `","service":"dedup","consumer":"` + consumer + `"}`
	}
	write := func(name string, lines ...string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// a runs dedup-p0 from 1 s to 5 s and dedup-p1 from 1 s until it is
	// killed at 20 s; its last line was cut short by the kill.
	a := write("a", line(1, "running consumer", "dedup-p0"), line(1, "running consumer", "dedup-p1"),
		line(5, "stopped consumer", "dedup-p0"), `{"time":"2026-01-01T12:00:19Z","msg":"runn`)
	// b takes dedup-p0 over at 6 s (a hand-over) and dedup-p1 at 12 s,
	// while a still holds it.
	b := write("b", line(6, "running consumer", "dedup-p0"), line(12, "running consumer", "dedup-p1"),
		line(30, "stopped consumer", "dedup-p1"))

	var hs []holding
	for _, r := range []struct {
		path, name string
		end        time.Time
	}{{a, "dedup-a#1", at(20)}, {b, "dedup-b#1", at(40)}} {
		got, err := readHoldings(r.path, r.name, r.end)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, got...)
	}
	if len(hs) != 4 {
		t.Fatalf("read %d holdings, want 4: %+v", len(hs), hs)
	}
	got := overlaps(hs)
	if len(got) != 1 || !strings.Contains(got[0], "consumer dedup-p1 was held by") ||
		!strings.Contains(got[0], "dedup-a#1 from 12:00:01.000 to 12:00:20.000") || !strings.Contains(got[0], "dedup-b#1 from 12:00:12.000 to 12:00:30.000") {
		t.Fatalf("overlaps = %q, want dedup-p1 held by dedup-a#1 (1 s to its kill at 20 s) and dedup-b#1 (12 s to 30 s)", got)
	}
}
