package console

import (
	"strings"
	"testing"
	"time"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
)

func TestReportDays(t *testing.T) {
	from, to, _, err := reportDays("2026-12-01", "2026-12-07")
	if err != nil {
		t.Fatal(err)
	}
	if got := from.AsTime(); !got.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("from %v, want midnight of the first day", got)
	}
	if got := to.AsTime(); !got.Equal(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("to %v, want the midnight after the last day, which is included", got)
	}
	if from, to, _, err := reportDays("", ""); err != nil || from != nil || to != nil {
		t.Errorf("no days: %v %v %v, want none, for the API's default", from, to, err)
	}
	for _, tc := range []struct{ from, to, field, says string }{
		{"yesterday", "", "from", `"yesterday" is not a day`},
		{"2026-12-01", "2026-13-01", "to", `"2026-13-01" is not a day`},
		{"2026-12-07", "2026-12-01", "to", "before the first"},
	} {
		_, _, field, err := reportDays(tc.from, tc.to)
		if err == nil || field != tc.field || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("reportDays(%q, %q): field %q, %v; want %s refused, saying %q", tc.from, tc.to, field, err, tc.field, tc.says)
		}
	}
}

func TestDailyTotals(t *testing.T) {
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rows := []*eventlogv1.ReportRow{
		{Day: "2026-12-02", Flow: "a", Total: 3, Created: 2, Failed: 1, Failures: 1},
		{Day: "2026-12-02", Flow: "b", Total: 2, Updated: 1, Skipped: 1},
		{Day: "2026-12-03", Flow: "a", Total: 1, Deleted: 1},
	}
	days := dailyTotals(from, from.AddDate(0, 0, 3), rows)
	want := []dayTotals{
		{Day: "2026-12-01"},
		{Day: "2026-12-02", Created: 2, Updated: 1, Skipped: 1, Failed: 1, Total: 5, Failures: 1},
		{Day: "2026-12-03", Deleted: 1, Total: 1},
	}
	if len(days) != len(want) {
		t.Fatalf("days %v, want %v", days, want)
	}
	for i := range want {
		if days[i] != want[i] {
			t.Errorf("day %d: %+v, want %+v", i, days[i], want[i])
		}
	}
}
