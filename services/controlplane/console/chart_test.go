package console

import (
	"encoding/xml"
	"html/template"
	"math"
	"strconv"
	"strings"
	"testing"
)

// element is one element of a chart, with its attributes and its text.
type element struct {
	name string
	attr map[string]string
	text string
}

// parseSVG reads a chart as XML (so it must be well formed) into its elements, in order.
func parseSVG(t *testing.T, h template.HTML) []*element {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(h)))
	var all, open []*element
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("the chart is not well-formed XML: %v\n%s", err, h)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &element{name: tok.Name.Local, attr: map[string]string{}}
			for _, a := range tok.Attr {
				e.attr[a.Name.Local] = a.Value
			}
			all, open = append(all, e), append(open, e)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			// An element's text includes its children's: a bar's is its tooltip.
			for _, e := range open {
				e.text += string(tok)
			}
		}
	}
	if len(all) == 0 || all[0].name != "svg" {
		t.Fatalf("the chart does not start with <svg>:\n%s", h)
	}
	return all
}

// withClass returns the elements whose class list holds class.
func withClass(els []*element, class string) []*element {
	var out []*element
	for _, e := range els {
		for _, c := range strings.Fields(e.attr["class"]) {
			if c == class {
				out = append(out, e)
			}
		}
	}
	return out
}

func float(t *testing.T, e *element, attr string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(e.attr[attr], 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", e.name, attr, e.attr[attr], err)
	}
	return v
}

func texts(els []*element, class string) []string {
	var out []string
	for _, e := range withClass(els, class) {
		out = append(out, e.text)
	}
	return out
}

// checkAccessible checks what a screen reader needs of a chart: role img, named by its
// title and described by its desc, both first; and that it scales to its container.
func checkAccessible(t *testing.T, els []*element) (title, desc string) {
	t.Helper()
	root := els[0]
	if root.attr["role"] != "img" || root.attr["width"] != "100%" || root.attr["viewBox"] != "0 0 400 200" {
		t.Errorf("the chart's svg has %v: want role img, width 100%% and a viewBox of 400 by 200", root.attr)
	}
	if els[1].name != "title" || els[2].name != "desc" {
		t.Fatalf("the chart's first children are %s and %s, want title and desc", els[1].name, els[2].name)
	}
	ids := strings.Fields(root.attr["aria-labelledby"])
	if len(ids) != 2 || ids[0] != els[1].attr["id"] || ids[1] != els[2].attr["id"] {
		t.Errorf("aria-labelledby %q, want the ids of the title and the desc", root.attr["aria-labelledby"])
	}
	return els[1].text, els[2].text
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.01 }

const plotHeight = plotBottom - plotTop

func TestRecordsChartScales(t *testing.T) {
	days := []dayTotals{
		{Day: "2026-12-05", Created: 6, Updated: 2, Failed: 2, Total: 10, Failures: 2},
		{Day: "2026-12-06", Created: 3, Skipped: 1, Deleted: 1, Total: 5},
	}
	els := parseSVG(t, recordsChart(days))
	title, desc := checkAccessible(t, els)
	if title != "Records per day by action" {
		t.Errorf("title %q", title)
	}
	for _, want := range []string{"2 days from 2026-12-05 to 2026-12-06", "15 records", "9 created", "2 updated", "1 deleted", "1 skipped", "2 failed", "The most on 2026-12-05: 10"} {
		if !strings.Contains(desc, want) {
			t.Errorf("desc %q does not say %q", desc, want)
		}
	}
	// The axis goes to 10, the highest day; 10 records fill the plot's height.
	if got := texts(els, "tick"); strings.Join(got, " ") != "0 5 10" {
		t.Errorf("y axis labels %v, want 0 5 10", got)
	}
	segs := withClass(els, "seg")
	if len(segs) != 6 {
		t.Fatalf("%d segments, want 6 (three actions on each day)", len(segs))
	}
	heights := map[string]float64{}
	var first float64
	for _, s := range segs {
		heights[s.attr["class"]+" "+s.text[:10]] += float(t, s, "height")
		if strings.HasPrefix(s.text, "2026-12-05") {
			first += float(t, s, "height")
		}
		if !strings.Contains(s.text, ": ") {
			t.Errorf("segment %v has no tooltip naming its day and count", s.attr)
		}
	}
	if !near(first, plotHeight) {
		t.Errorf("the day of 10 records is %v high, want the plot's %v", first, plotHeight)
	}
	for key, want := range map[string]float64{
		"seg seg-created 2026-12-05": 6, "seg seg-updated 2026-12-05": 2, "seg seg-failed 2026-12-05": 2,
		"seg seg-created 2026-12-06": 3, "seg seg-deleted 2026-12-06": 1, "seg seg-skipped 2026-12-06": 1,
	} {
		if !near(heights[key], want/10*plotHeight) {
			t.Errorf("%s is %v high, want %v", key, heights[key], want/10*plotHeight)
		}
	}
	// Stacked: on each day, each segment sits on the one below, the first on the axis.
	bottom := map[string]float64{}
	for _, s := range segs {
		day := s.text[:10]
		y, h := float(t, s, "y"), float(t, s, "height")
		want := float64(plotBottom)
		if b, ok := bottom[day]; ok {
			want = b
		}
		if !near(y+h, want) {
			t.Errorf("%s on %s ends at %v, want %v", s.attr["class"], day, y+h, want)
		}
		bottom[day] = y
	}
	if got := texts(els, "day"); strings.Join(got, " ") != "12-05 12-06" {
		t.Errorf("day labels %v", got)
	}
}

func TestChartsOfAnEmptyRange(t *testing.T) {
	for name, chart := range map[string]template.HTML{"records": recordsChart(nil), "rate": failureRateChart(nil)} {
		t.Run(name, func(t *testing.T) {
			els := parseSVG(t, chart)
			_, desc := checkAccessible(t, els)
			if desc != "No days in the range." {
				t.Errorf("desc %q", desc)
			}
			if n := len(withClass(els, "seg")) + len(withClass(els, "rate")) + len(withClass(els, "day")); n != 0 {
				t.Errorf("an empty range draws %d bars or days", n)
			}
		})
	}
}

func TestChartsOfOneDay(t *testing.T) {
	days := []dayTotals{{Day: "2026-12-06", Created: 3, Failed: 1, Total: 4, Failures: 1}}
	els := parseSVG(t, recordsChart(days))
	_, desc := checkAccessible(t, els)
	if !strings.HasPrefix(desc, "2026-12-06, 4 records: 3 created") {
		t.Errorf("desc %q", desc)
	}
	segs := withClass(els, "seg")
	if len(segs) != 2 {
		t.Fatalf("%d segments, want created and failed", len(segs))
	}
	x, w := float(t, segs[0], "x"), float(t, segs[0], "width")
	if x < plotLeft || x+w > plotRight || w < (plotRight-plotLeft)/2 {
		t.Errorf("one day's bar spans %v to %v: want it inside the plot (%d to %d) and wide", x, x+w, plotLeft, plotRight)
	}
	// 4 records: the axis goes to 5.
	if got := texts(els, "tick"); strings.Join(got, " ") != "0 2.5 5" {
		t.Errorf("y axis labels %v, want 0 2.5 5", got)
	}

	els = parseSVG(t, failureRateChart(days))
	_, desc = checkAccessible(t, els)
	if desc != "2026-12-06: 25 % of the records failed (1 of 4)." {
		t.Errorf("desc %q", desc)
	}
	bars := withClass(els, "rate")
	if len(bars) != 1 {
		t.Fatalf("%d rate bars, want 1", len(bars))
	}
	// 25 %: the axis goes to 50 %, the bar halfway up.
	if got := texts(els, "tick"); strings.Join(got, " ") != "0 % 25 % 50 %" {
		t.Errorf("y axis labels %v", got)
	}
	if h := float(t, bars[0], "height"); !near(h, plotHeight/2) {
		t.Errorf("25 %% of 50 %% is %v high, want %v", h, plotHeight/2.0)
	}
}

func TestChartsOfADayWithoutRecords(t *testing.T) {
	days := []dayTotals{
		{Day: "2026-12-05", Created: 2, Failed: 2, Total: 4, Failures: 2},
		{Day: "2026-12-06"},
		{Day: "2026-12-07", Updated: 1, Total: 1},
	}
	els := parseSVG(t, recordsChart(days))
	for _, s := range withClass(els, "seg") {
		if strings.HasPrefix(s.text, "2026-12-06") {
			t.Errorf("the quiet day has a segment: %s", s.text)
		}
	}
	if n := len(withClass(els, "seg")); n != 3 {
		t.Errorf("%d segments, want 3", n)
	}
	if got := texts(els, "day"); strings.Join(got, " ") != "12-05 12-06 12-07" {
		t.Errorf("day labels %v: want the quiet day labelled too", got)
	}

	els = parseSVG(t, failureRateChart(days))
	_, desc := checkAccessible(t, els)
	if desc != "3 days from 2026-12-05 to 2026-12-07: 40 % of the records failed (2 of 5). The highest rate on 2026-12-05: 50 % (2 of 4)." {
		t.Errorf("desc %q", desc)
	}
	if bars := withClass(els, "rate"); len(bars) != 1 || !strings.HasPrefix(bars[0].text, "2026-12-05") {
		t.Errorf("rate bars %v: want one, of 2026-12-05", bars)
	}

	// Only quiet days: nothing drawn, and the description says so.
	quiet := []dayTotals{{Day: "2026-12-06"}, {Day: "2026-12-07"}}
	els = parseSVG(t, failureRateChart(quiet))
	if _, desc := checkAccessible(t, els); desc != "2 days from 2026-12-06 to 2026-12-07: no records, so no failures." {
		t.Errorf("desc %q", desc)
	}
	els = parseSVG(t, recordsChart(quiet))
	if n := len(withClass(els, "seg")); n != 0 {
		t.Errorf("%d segments on quiet days", n)
	}
	if got := texts(els, "tick"); strings.Join(got, " ") != "0 0.5 1" {
		t.Errorf("y axis labels %v: want an axis to 1", got)
	}
}

// TestChartOfAYear: a year's days fit the plot, and their labels do not overlap.
func TestChartOfAYear(t *testing.T) {
	var days []dayTotals
	for i := range 366 {
		days = append(days, dayTotals{Day: "2026-01-01", Created: int64(i), Total: int64(i)})
	}
	els := parseSVG(t, recordsChart(days))
	segs := withClass(els, "seg")
	last := segs[len(segs)-1]
	if x := float(t, last, "x") + float(t, last, "width"); x > plotRight {
		t.Errorf("the last day's bar ends at %v, past the plot's %d", x, plotRight)
	}
	labels := withClass(els, "day")
	for i := 1; i < len(labels); i++ {
		if gap := float(t, labels[i], "x") - float(t, labels[i-1], "x"); gap < labelWidth {
			t.Fatalf("day labels %v apart, want at least %d", gap, labelWidth)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ v, floor, want float64 }{
		{0, 1, 1}, {1, 1, 1}, {3, 1, 5}, {7, 1, 10}, {10, 1, 10}, {11, 1, 20}, {150, 1, 200}, {999, 1, 1000},
		{0, 0.01, 0.01}, {0.003, 0.01, 0.01}, {0.25, 0.01, 0.5}, {0.6, 0.01, 1}, {1, 0.01, 1},
	} {
		if got := niceCeil(tc.v, tc.floor); !near(got, tc.want) {
			t.Errorf("niceCeil(%v, %v) = %v, want %v", tc.v, tc.floor, got, tc.want)
		}
	}
}

// TestChartEscapesText: text that reaches a chart cannot add markup to it.
func TestChartEscapesText(t *testing.T) {
	days := []dayTotals{{Day: `2026-<b>"x"`, Created: 1, Total: 1}}
	els := parseSVG(t, recordsChart(days))
	for _, e := range els {
		if e.name == "b" {
			t.Fatalf("a day's text became an element")
		}
	}
}
