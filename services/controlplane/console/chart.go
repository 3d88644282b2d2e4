package console

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// The reports page's charts: SVG drawn here, on the server, so the page needs no script.
// Each chart is one <svg role="img"> whose <title> and <desc> say in words what it shows;
// the page's table has the same numbers. The viewBox is about a phone's width, so the text
// stays readable at 390 px and the chart scales up with the page (width 100%).

// dayTotals is one UTC day of a report: its rows summed.
type dayTotals struct {
	// Day is the UTC day, as 2006-01-02.
	Day                                        string
	Created, Updated, Deleted, Skipped, Failed int64
	Total, Failures                            int64
}

// Rate is the day's failure rate, from 0 to 1; 0 for a day without records.
func (d dayTotals) Rate() float64 {
	if d.Total == 0 {
		return 0
	}
	return float64(d.Failures) / float64(d.Total)
}

// segment is one action's part of a day's bar.
type segment struct {
	action, color string
	count         func(dayTotals) int64
}

// segments are the actions, bottom to top of a day's bar. The colours are told apart by
// people with the common colour-vision deficiencies (the Okabe-Ito palette), and each is
// also named in the legend and the table.
var segments = []segment{
	{"created", "#0072b2", func(d dayTotals) int64 { return d.Created }},
	{"updated", "#56b4e9", func(d dayTotals) int64 { return d.Updated }},
	{"deleted", "#cc79a7", func(d dayTotals) int64 { return d.Deleted }},
	{"skipped", "#999999", func(d dayTotals) int64 { return d.Skipped }},
	{"failed", "#d55e00", func(d dayTotals) int64 { return d.Failed }},
}

// The charts' geometry, in viewBox units.
const (
	chartWidth  = 400
	chartHeight = 200
	plotLeft    = 40  // room for the y axis' labels
	plotRight   = 396 // chartWidth less a margin
	plotTop     = 28  // room for the legend
	plotBottom  = 180 // room for the days
	labelWidth  = 36  // a day's label, "12-31", with room around it
	rateColor   = "#d55e00"
	axisColor   = "#57606a"
	gridColor   = "#d0d7de"
)

// frame is a chart's plot area: the days along x, a value from 0 to max along y.
type frame struct {
	days int
	max  float64
}

// band is the width of one day.
func (f frame) band() float64 { return float64(plotRight-plotLeft) / float64(max(f.days, 1)) }

// bar is where day i's bar starts, and its width: most of the band, with a gap.
func (f frame) bar(i int) (x, w float64) {
	b := f.band()
	return plotLeft + float64(i)*b + b*0.15, b * 0.7
}

// height is the height of v on the plot.
func (f frame) height(v float64) float64 {
	if f.max <= 0 {
		return 0
	}
	return v / f.max * (plotBottom - plotTop)
}

// niceCeil is the least 1, 2 or 5 times a power of ten that is at least v (and at least
// floor): the top of an axis people read at a glance.
func niceCeil(v, floor float64) float64 {
	v = math.Max(v, floor)
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// recordsChart draws the records of each day as a bar stacked by action.
func recordsChart(days []dayTotals) template.HTML {
	var most dayTotals
	var sums dayTotals
	var top int64
	for _, d := range days {
		var h int64
		for _, s := range segments {
			h += s.count(d)
		}
		top = max(top, h)
		if d.Total > most.Total {
			most = d
		}
		sums.Created += d.Created
		sums.Updated += d.Updated
		sums.Deleted += d.Deleted
		sums.Skipped += d.Skipped
		sums.Failed += d.Failed
		sums.Total += d.Total
	}
	f := frame{days: len(days), max: niceCeil(float64(top), 1)}

	desc := "No days in the range."
	if len(days) > 0 {
		desc = fmt.Sprintf("%s, %d records: %d created, %d updated, %d deleted, %d skipped, %d failed.",
			span(days), sums.Total, sums.Created, sums.Updated, sums.Deleted, sums.Skipped, sums.Failed)
		if most.Total > 0 && len(days) > 1 {
			desc += fmt.Sprintf(" The most on %s: %d.", most.Day, most.Total)
		}
	}
	var b svg
	b.open("records-chart", "Records per day by action", desc)
	x := float64(plotLeft)
	for _, s := range segments {
		b.printf(`<rect class="key" x="%s" y="6" width="10" height="10" fill="%s"/>`, num(x), s.color)
		b.printf(`<text x="%s" y="15">%s</text>`, num(x+14), s.action)
		x += 14 + 7*float64(len(s.action)) + 10
	}
	b.axis(f, func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) })
	for i, d := range days {
		bx, bw := f.bar(i)
		y := float64(plotBottom)
		for _, s := range segments {
			n := s.count(d)
			if n == 0 {
				continue
			}
			h := f.height(float64(n))
			y -= h
			b.printf(`<rect class="seg seg-%s" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s: %d %s</title></rect>`,
				s.action, num(bx), num(y), num(bw), num(h), s.color, d.Day, n, s.action)
		}
	}
	b.days(f, days)
	return b.close()
}

// failureRateChart draws each day's failure rate as a bar; a day without records has none.
func failureRateChart(days []dayTotals) template.HTML {
	var total, failures int64
	var worst dayTotals
	for _, d := range days {
		total += d.Total
		failures += d.Failures
		if d.Rate() > worst.Rate() {
			worst = d
		}
	}
	f := frame{days: len(days), max: niceCeil(worst.Rate(), 0.01)}
	if f.max > 1 {
		f.max = 1
	}

	desc := "No days in the range."
	switch {
	case len(days) == 0:
	case total == 0:
		desc = span(days) + ": no records, so no failures."
	default:
		desc = fmt.Sprintf("%s: %s of the records failed (%d of %d).", span(days), pct(float64(failures)/float64(total)), failures, total)
		if worst.Failures > 0 && len(days) > 1 {
			desc += fmt.Sprintf(" The highest rate on %s: %s (%d of %d).", worst.Day, pct(worst.Rate()), worst.Failures, worst.Total)
		}
	}
	var b svg
	b.open("rate-chart", "Failure rate per day", desc)
	b.printf(`<rect class="key" x="%d" y="6" width="10" height="10" fill="%s"/>`, plotLeft, rateColor)
	b.printf(`<text x="%d" y="15">failed records, %% of the day's</text>`, plotLeft+14)
	b.axis(f, pct)
	for i, d := range days {
		if d.Failures == 0 {
			continue
		}
		bx, bw := f.bar(i)
		h := f.height(d.Rate())
		b.printf(`<rect class="rate" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s: %s (%d of %d)</title></rect>`,
			num(bx), num(plotBottom-h), num(bw), num(h), rateColor, d.Day, pct(d.Rate()), d.Failures, d.Total)
	}
	b.days(f, days)
	return b.close()
}

// span says which days a chart covers.
func span(days []dayTotals) string {
	if len(days) == 1 {
		return days[0].Day
	}
	return fmt.Sprintf("%d days from %s to %s", len(days), days[0].Day, days[len(days)-1].Day)
}

// pct is a rate as a percentage, without needless decimals.
func pct(r float64) string {
	return strconv.FormatFloat(math.Round(r*1000)/10, 'f', -1, 64) + " %"
}

// num is a coordinate: two decimals at most.
func num(v float64) string { return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) }

// svg builds a chart's markup. Every text it writes is escaped.
type svg struct{ strings.Builder }

func (b *svg) printf(format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = template.HTMLEscapeString(s)
		}
	}
	fmt.Fprintf(b, format, args...)
}

// open starts the chart: its accessible name and description first.
func (b *svg) open(id, title, desc string) {
	b.printf(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="%s" viewBox="0 0 %d %d" width="100%%" role="img" aria-labelledby="%s-title %s-desc" font-size="12" fill="%s">`,
		id, chartWidth, chartHeight, id, id, axisColor)
	b.printf(`<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, title, id, desc)
}

// axis draws the y axis: 0, half and the top, with grid lines.
func (b *svg) axis(f frame, label func(float64) string) {
	for _, v := range []float64{0, f.max / 2, f.max} {
		y := plotBottom - f.height(v)
		b.printf(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s"/>`, plotLeft, num(y), plotRight, num(y), gridColor)
		b.printf(`<text class="tick" x="%d" y="%s" text-anchor="end">%s</text>`, plotLeft-4, num(y+4), label(v))
	}
}

// days labels the days along x, as many as fit.
func (b *svg) days(f frame, days []dayTotals) {
	every := int(math.Ceil(labelWidth / f.band()))
	for i, d := range days {
		if i%every != 0 {
			continue
		}
		bx, bw := f.bar(i)
		// 2006-01-02 is shown as 01-02: the range is in the title and the table.
		b.printf(`<text class="day" x="%s" y="%d" text-anchor="middle">%s</text>`, num(bx+bw/2), plotBottom+14, d.Day[min(5, len(d.Day)):])
	}
}

func (b *svg) close() template.HTML {
	b.WriteString(`</svg>`)
	// Safe: every text in it went through printf's escaping.
	return template.HTML(b.String())
}
