package apilogtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/services/eventlog/apilog"
)

// day is the UTC day the report cases log on; base is on it.
var day = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// week is a report range around day.
func week(tenant string) apilog.ReportQuery {
	return apilog.ReportQuery{Tenant: tenant, From: day.AddDate(0, 0, -3), To: day.AddDate(0, 0, 4)}
}

func report(t *testing.T, s apilog.Store, q apilog.ReportQuery) []apilog.ReportRow {
	t.Helper()
	rows, err := s.Report(t.Context(), q)
	if err != nil {
		t.Fatalf("Report(%+v): %v", q, err)
	}
	return rows
}

func assertRows(t *testing.T, got []apilog.ReportRow, want ...apilog.ReportRow) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report rows\n got %s\nwant %s", showRows(got), showRows(want))
	}
}

func showRows(rows []apilog.ReportRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "\n  %+v", r)
	}
	return b.String()
}

// outcome makes a record of the orders flow on day with the given action and duration;
// failed records get the status failure and an error code.
func outcome(tenant, eventID string, at time.Time, action apilog.Action, d time.Duration, code, reason string) apilog.Record {
	r := record(tenant, eventID, "orders", at)
	r.Action, r.Duration, r.ErrorCode, r.Reason = action, d, code, reason
	if action == apilog.ActionFailed {
		r.Status = apilog.StatusFailure
	}
	return r
}

// ordersDay is 20 records of the orders flow on day, durations 1 to 20 ms in a shuffled
// order: 7 created, 4 updated, 1 deleted, 4 skipped and 4 failed (two sku_missing, one
// target_rejected, one timeout).
func ordersDay(tenant string) []apilog.Record {
	type spec struct {
		action       apilog.Action
		code, reason string
	}
	specs := []spec{
		{apilog.ActionCreated, "", ""}, {apilog.ActionCreated, "", ""}, {apilog.ActionCreated, "", ""},
		{apilog.ActionCreated, "", ""}, {apilog.ActionCreated, "", ""}, {apilog.ActionCreated, "", ""},
		{apilog.ActionCreated, "", ""},
		{apilog.ActionUpdated, "", ""}, {apilog.ActionUpdated, "", ""}, {apilog.ActionUpdated, "", ""},
		{apilog.ActionUpdated, "", ""},
		{apilog.ActionDeleted, "", ""},
		{apilog.ActionSkipped, "", "unchanged"}, {apilog.ActionSkipped, "", "unchanged"},
		{apilog.ActionSkipped, "", "filtered out"}, {apilog.ActionSkipped, "", "stale version 3 < 5"},
		{apilog.ActionFailed, "timeout", "target did not answer in 30s"},
		{apilog.ActionFailed, "sku_missing", "SKU 'B-2' does not exist"},
		{apilog.ActionFailed, "target_rejected", "target said: 422"},
		{apilog.ActionFailed, "sku_missing", "SKU 'A-1' does not exist"},
	}
	durations := rand.New(rand.NewPCG(1, 2)).Perm(len(specs))
	out := make([]apilog.Record, len(specs))
	for i, sp := range specs {
		at := day.Add(time.Duration(i) * time.Hour)
		out[i] = outcome(tenant, fmt.Sprintf("o-%02d", i), at, sp.action, time.Duration(durations[i]+1)*time.Millisecond, sp.code, sp.reason)
	}
	return out
}

// ordersRow is what the report says of ordersDay.
func ordersRow() apilog.ReportRow {
	return apilog.ReportRow{
		Integrator: "shop-to-erp", Flow: "orders", Entity: "order", Day: day,
		Total: 20, Created: 7, Updated: 4, Deleted: 1, Skipped: 4, Failed: 4,
		Failures: 4, FailureRate: 0.2,
		// Nearest rank: the 10th and the 19th of 20 durations of 1 to 20 ms.
		P50: 10 * time.Millisecond, P95: 19 * time.Millisecond,
		TopErrors: []apilog.ErrorCount{
			{Code: "sku_missing", Reason: "SKU 'A-1' does not exist", Count: 2},
			{Code: "target_rejected", Reason: "target said: 422", Count: 1},
			{Code: "timeout", Reason: "target did not answer in 30s", Count: 1},
		},
	}
}

// invoice is a record of the invoices flow of another integrator.
func invoice(tenant, eventID string, at time.Time, d time.Duration) apilog.Record {
	r := record(tenant, eventID, "invoices", at)
	r.Integrator, r.Entity, r.Duration = "pos-to-erp", "invoice", d
	return r
}

func testReportAggregates(t *testing.T, s apilog.Store) {
	insert(t, s, ordersDay("acme")...)
	insert(t, s,
		invoice("acme", "i-1", day.Add(time.Hour), 5*time.Millisecond),
		invoice("acme", "i-2", day.Add(2*time.Hour), time.Millisecond),
		invoice("acme", "i-3", day.Add(3*time.Hour), 3*time.Millisecond),
	)
	invoices := apilog.ReportRow{
		Integrator: "pos-to-erp", Flow: "invoices", Entity: "invoice", Day: day,
		Total: 3, Created: 3,
		// The 2nd (ceil(1.5)) and 3rd (ceil(2.85)) of 1, 3 and 5 ms.
		P50: 3 * time.Millisecond, P95: 5 * time.Millisecond,
	}
	assertRows(t, report(t, s, week("acme")), invoices, ordersRow())

	t.Run("top errors limited", func(t *testing.T) {
		q := week("acme")
		q.TopErrors = 1
		want := ordersRow()
		want.TopErrors = want.TopErrors[:1]
		assertRows(t, report(t, s, q), invoices, want)
	})
	t.Run("an empty range", func(t *testing.T) {
		q := week("acme")
		q.From, q.To = day.AddDate(0, 0, 10), day.AddDate(0, 0, 11)
		assertRows(t, report(t, s, q))
	})
}

func testReportPercentiles(t *testing.T, s apilog.Store) {
	sizes := []int{1, 2, 3, 10, 19, 20, 21, 99, 100, 101, 1000}
	var batch []apilog.Record
	for _, n := range sizes {
		rng := rand.New(rand.NewPCG(uint64(n), 7))
		for i := range n {
			// Durations with repeats, to the nanosecond, inserted in random order.
			r := record("acme", fmt.Sprintf("ev-%d-%d", n, i), fmt.Sprintf("flow-%04d", n), base.Add(time.Duration(i)*time.Millisecond))
			r.Duration = time.Duration(rng.IntN(5000)) * 997
			batch = append(batch, r)
		}
	}
	insert(t, s, batch...)
	rows := report(t, s, week("acme"))
	if len(rows) != len(sizes) {
		t.Fatalf("%d rows, want one per flow: %d", len(rows), len(sizes))
	}
	for i, n := range sizes {
		var durations []time.Duration
		for _, r := range batch {
			if r.Flow == rows[i].Flow {
				durations = append(durations, r.Duration)
			}
		}
		slices.Sort(durations)
		rank := func(p float64) time.Duration { return durations[max(int(math.Ceil(p*float64(n))), 1)-1] }
		if rows[i].Total != int64(n) || rows[i].P50 != rank(0.5) || rows[i].P95 != rank(0.95) {
			t.Errorf("%d records: total %d, p50 %v, p95 %v; want %d, %v, %v (nearest rank)",
				n, rows[i].Total, rows[i].P50, rows[i].P95, n, rank(0.5), rank(0.95))
		}
	}
}

func testReportDays(t *testing.T, s apilog.Store) {
	last := day.Add(24*time.Hour - time.Microsecond)
	insert(t, s,
		outcome("acme", "before", day.AddDate(0, 0, -3).Add(-time.Microsecond), apilog.ActionCreated, time.Millisecond, "", ""),
		outcome("acme", "first", day.AddDate(0, 0, -3), apilog.ActionCreated, 2*time.Millisecond, "", ""),
		outcome("acme", "late", last, apilog.ActionFailed, 3*time.Millisecond, "timeout", "slow"),
		outcome("acme", "midnight", day.AddDate(0, 0, 1), apilog.ActionUpdated, 4*time.Millisecond, "", ""),
		outcome("acme", "end", day.AddDate(0, 0, 4), apilog.ActionCreated, 5*time.Millisecond, "", ""),
	)
	row := func(d time.Time, dur time.Duration) apilog.ReportRow {
		return apilog.ReportRow{Integrator: "shop-to-erp", Flow: "orders", Entity: "order", Day: d, Total: 1, P50: dur, P95: dur}
	}
	first := row(day.AddDate(0, 0, -3), 2*time.Millisecond)
	first.Created = 1
	late := row(day, 3*time.Millisecond)
	late.Failed, late.Failures, late.FailureRate = 1, 1, 1
	late.TopErrors = []apilog.ErrorCount{{Code: "timeout", Reason: "slow", Count: 1}}
	midnight := row(day.AddDate(0, 0, 1), 4*time.Millisecond)
	midnight.Updated = 1
	// From is inclusive, To exclusive; days are UTC whatever zone the range is given in.
	q := week("acme")
	zone := time.FixedZone("UTC+14", 14*3600)
	q.From, q.To = q.From.In(zone), q.To.In(zone)
	assertRows(t, report(t, s, q), first, late, midnight)
}

func testReportFilters(t *testing.T, s apilog.Store) {
	insert(t, s, ordersDay("acme")...)
	insert(t, s, invoice("acme", "i-1", day.Add(time.Hour), 5*time.Millisecond))
	customer := outcome("acme", "c-1", day.Add(time.Hour), apilog.ActionCreated, time.Millisecond, "", "")
	customer.Flow, customer.Entity = "customers", "customer"
	insert(t, s, customer)
	invoices := apilog.ReportRow{Integrator: "pos-to-erp", Flow: "invoices", Entity: "invoice", Day: day,
		Total: 1, Created: 1, P50: 5 * time.Millisecond, P95: 5 * time.Millisecond}
	customers := apilog.ReportRow{Integrator: "shop-to-erp", Flow: "customers", Entity: "customer", Day: day,
		Total: 1, Created: 1, P50: time.Millisecond, P95: time.Millisecond}
	tests := []struct {
		name   string
		change func(*apilog.ReportQuery)
		want   []apilog.ReportRow
	}{
		{"none", func(*apilog.ReportQuery) {}, []apilog.ReportRow{invoices, customers, ordersRow()}},
		{"integrator", func(q *apilog.ReportQuery) { q.Integrator = "shop-to-erp" }, []apilog.ReportRow{customers, ordersRow()}},
		{"flow", func(q *apilog.ReportQuery) { q.Flow = "orders" }, []apilog.ReportRow{ordersRow()}},
		{"entity", func(q *apilog.ReportQuery) { q.Entity = "invoice" }, []apilog.ReportRow{invoices}},
		{"combined", func(q *apilog.ReportQuery) { q.Integrator, q.Entity = "pos-to-erp", "order" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := week("acme")
			tc.change(&q)
			assertRows(t, report(t, s, q), tc.want...)
		})
	}
}

func testReportTenantIsolation(t *testing.T, s apilog.Store) {
	insert(t, s, ordersDay("acme")...)
	// globex logs the same event ids, in the same flow, on the same day.
	other := ordersDay("globex")
	for i := range other {
		other[i].Action, other[i].Status, other[i].ErrorCode = apilog.ActionFailed, apilog.StatusFailure, "globex_only"
	}
	insert(t, s, other...)
	assertRows(t, report(t, s, week("acme")), ordersRow())
	assertRows(t, report(t, s, week("initech")))
	traffic, err := s.Traffic(t.Context(), apilog.TrafficQuery{Tenant: "initech", From: day, To: day.AddDate(0, 0, 1)})
	if err != nil || len(traffic) != 0 {
		t.Fatalf("Traffic(initech) = %v, %v; want nothing", traffic, err)
	}
}

func testReportValidation(t *testing.T, s apilog.Store) {
	tests := []struct {
		name   string
		change func(*apilog.ReportQuery)
		field  string
	}{
		{"no tenant", func(q *apilog.ReportQuery) { q.Tenant = "" }, "tenant"},
		{"no from", func(q *apilog.ReportQuery) { q.From = time.Time{} }, "from"},
		{"no to", func(q *apilog.ReportQuery) { q.To = time.Time{} }, "to"},
		{"to before from", func(q *apilog.ReportQuery) { q.To = q.From.Add(-time.Second) }, "to"},
		{"empty range", func(q *apilog.ReportQuery) { q.To = q.From }, "to"},
		{"range too long", func(q *apilog.ReportQuery) { q.To = q.From.Add(apilog.MaxReportRange + time.Second) }, "to"},
		{"negative top errors", func(q *apilog.ReportQuery) { q.TopErrors = -1 }, "top_errors"},
		{"too many top errors", func(q *apilog.ReportQuery) { q.TopErrors = apilog.MaxTopErrors + 1 }, "top_errors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := week("acme")
			tc.change(&q)
			_, err := s.Report(t.Context(), q)
			var qe *apilog.QueryError
			if !errors.As(err, &qe) || qe.Field != tc.field {
				t.Fatalf("Report = %v, want a *QueryError on field %q", err, tc.field)
			}
		})
	}
	t.Run("traffic", func(t *testing.T) {
		_, err := s.Traffic(t.Context(), apilog.TrafficQuery{Tenant: "acme", From: day, To: day})
		var qe *apilog.QueryError
		if !errors.As(err, &qe) || qe.Field != "to" {
			t.Fatalf("Traffic with an empty range = %v, want a *QueryError on field \"to\"", err)
		}
	})
}

func testTraffic(t *testing.T, s apilog.Store) {
	insert(t, s, ordersDay("acme")...)
	insert(t, s,
		invoice("acme", "i-1", day.Add(time.Hour), time.Millisecond),
		invoice("acme", "i-2", day.AddDate(0, 0, 5), time.Millisecond), // outside the range
		invoice("globex", "i-1", day.Add(time.Hour), time.Millisecond),
	)
	// An event that failed before any flow took it.
	dead := apilog.Record{Tenant: "acme", EventID: "dead", SourceEndpoint: "shop", Action: apilog.ActionFailed,
		Status: apilog.StatusFailure, ErrorCode: "malformed", LoggedAt: day.Add(time.Minute)}
	insert(t, s, dead)
	got, err := s.Traffic(t.Context(), apilog.TrafficQuery{Tenant: "acme", From: day, To: day.AddDate(0, 0, 1)})
	if err != nil {
		t.Fatalf("Traffic: %v", err)
	}
	slices.SortFunc(got, func(a, b apilog.FlowTraffic) int { return strings.Compare(a.Flow, b.Flow) })
	want := []apilog.FlowTraffic{
		{Flow: "", SourceEndpoint: "shop", Records: 1, Failures: 1},
		{Flow: "invoices", SourceEndpoint: "shop", Records: 1},
		{Flow: "orders", SourceEndpoint: "shop", Records: 20, Failures: 4},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Traffic = %+v, want %+v", got, want)
	}
}
