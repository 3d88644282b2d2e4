package console

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
)

// reportsData is the reports page: its range and filters, the Report API's rows, the days
// they sum to and their charts, and the providers report of the same range.
type reportsData struct {
	Filter url.Values
	// From and To are the days covered, both included, as the API filled them in.
	From, To  string
	Rows      []*eventlogv1.ReportRow
	Days      []dayTotals
	Records   template.HTML
	Rate      template.HTML
	Providers []*eventlogv1.ProviderTraffic
}

// reportFilters are the reports page's filters, as query parameters.
var reportFilters = []string{"from", "to", "integrator", "flow", "entity"}

func (c *Console) reports(w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := c.tenantPage(w, r, rq, "Reports")
	if !ok {
		return
	}
	q := r.URL.Query()
	d := &reportsData{Filter: url.Values{}}
	for _, f := range reportFilters {
		if v := strings.TrimSpace(q.Get(f)); v != "" {
			d.Filter.Set(f, v)
		}
	}
	p.Data = d
	from, to, field, err := reportDays(d.Filter.Get("from"), d.Filter.Get("to"))
	if err != nil {
		p.FieldErrors = map[string]string{field: err.Error()}
		c.render(w, http.StatusBadRequest, "reports", p)
		return
	}
	ctx := r.Context()
	report, err := rq.logs.Report(ctx, &eventlogv1.ReportRequest{Tenant: p.Tenant, From: from, To: to,
		Integrator: d.Filter.Get("integrator"), Flow: d.Filter.Get("flow"), Entity: d.Filter.Get("entity")})
	if err != nil {
		c.apiError(w, "reports", p, err)
		return
	}
	// The providers report is per tenant and connector types: the filters do not apply.
	providers, err := rq.logs.ReportProviders(ctx, &eventlogv1.ReportProvidersRequest{Tenant: p.Tenant, From: report.From, To: report.To})
	if err != nil {
		c.apiError(w, "reports", p, err)
		return
	}
	start, end := report.From.AsTime().UTC(), report.To.AsTime().UTC()
	d.From, d.To = start.Format(time.DateOnly), end.Add(-time.Nanosecond).Format(time.DateOnly)
	d.Rows = report.Rows
	d.Days = dailyTotals(start, end, report.Rows)
	d.Records, d.Rate = recordsChart(d.Days), failureRateChart(d.Days)
	d.Providers = providers.Rows
	c.render(w, http.StatusOK, "reports", p)
}

// reportDays reads the page's range: days (UTC), from its first to its last, both included,
// as people say a range; the API's to is the midnight after the last. Either may be left
// out for the API's default, the last 7 days. A bad one is refused naming its field.
func reportDays(from, to string) (f, t *timestamppb.Timestamp, field string, err error) {
	var first, last time.Time
	for _, d := range []struct {
		field, v string
		dst      *time.Time
	}{{"from", from, &first}, {"to", to, &last}} {
		if d.v == "" {
			continue
		}
		day, err := time.Parse(time.DateOnly, d.v)
		if err != nil {
			return nil, nil, d.field, fmt.Errorf("%q is not a day: write it as 2026-12-06 (UTC)", d.v)
		}
		*d.dst = day
	}
	if !first.IsZero() && !last.IsZero() && last.Before(first) {
		return nil, nil, "to", fmt.Errorf("the last day, %s, is before the first, %s: give a last day on or after the first", to, from)
	}
	if !first.IsZero() {
		f = timestamppb.New(first)
	}
	if !last.IsZero() {
		t = timestamppb.New(last.AddDate(0, 0, 1))
	}
	return f, t, "", nil
}

// dailyTotals sums the report's rows per UTC day, every day of [from, to) listed, those
// without records too, so that a chart shows the quiet days as such.
func dailyTotals(from, to time.Time, rows []*eventlogv1.ReportRow) []dayTotals {
	var days []dayTotals
	index := map[string]int{}
	for day := from.Truncate(24 * time.Hour); day.Before(to); day = day.AddDate(0, 0, 1) {
		index[day.Format(time.DateOnly)] = len(days)
		days = append(days, dayTotals{Day: day.Format(time.DateOnly)})
	}
	for _, r := range rows {
		i, ok := index[r.Day]
		if !ok {
			continue
		}
		d := &days[i]
		d.Created += r.Created
		d.Updated += r.Updated
		d.Deleted += r.Deleted
		d.Skipped += r.Skipped
		d.Failed += r.Failed
		d.Total += r.Total
		d.Failures += r.Failures
	}
	return days
}
