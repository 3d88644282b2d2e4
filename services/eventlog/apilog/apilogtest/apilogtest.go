// Package apilogtest is the conformance suite every apilog.Store backend must pass.
package apilogtest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/services/eventlog/apilog"
)

// Run runs the suite. newStore must return a store over a new, empty database for each call;
// the subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) apilog.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s apilog.Store)
	}{
		{"insert then query returns every field", testRoundTrip},
		{"insert stamps a missing logged-at", testStampsLoggedAt},
		{"a redelivered event replaces its record, but never a success", testIdempotentInsert},
		{"an invalid record fails the whole batch", testInsertRejectsInvalid},
		{"a query never crosses tenants", testTenantIsolation},
		{"filters select matching records only", testFilters},
		{"filters with few, old or no matches", testSparseFilters},
		{"from is inclusive and to exclusive", testDateRange},
		{"newest first with ties in a fixed order", testOrder},
		{"pages have no gaps or repeats under concurrent inserts", testPagination},
		{"page size defaults and limits", testLimits},
		{"invalid queries name the field", testQueryValidation},
		{"delete tenant removes that tenant only", testDeleteTenant},
		{"delete before removes older records of one tenant", testDeleteBefore},
		{"tenants lists every tenant with records", testTenants},
		{"concurrent batch writers all succeed", testConcurrentWriters},
		{"report counts, failure rate, percentiles and top errors per row", testReportAggregates},
		{"report percentiles are nearest-rank", testReportPercentiles},
		{"report days are UTC days within the range", testReportDays},
		{"report filters select matching rows only", testReportFilters},
		{"a report never crosses tenants", testReportTenantIsolation},
		{"invalid reports name the field", testReportValidation},
		{"traffic counts records per flow and source endpoint", testTraffic},
		{"reports and filters follow redelivered records", testReportFollowsReplacements},
		{"reports and filters follow retention and tenant erase", testReportFollowsDeletes},
		{"reports agree with the records after concurrent redeliveries", testConcurrentRedeliveries},
		{"error codes and reasons of any length", testLongErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

// base is a fixed instant with microseconds, the precision both backends keep.
var base = time.Date(2026, 5, 1, 8, 30, 0, 123456000, time.UTC)

func record(tenant, eventID, flow string, loggedAt time.Time) apilog.Record {
	return apilog.Record{
		Tenant:         tenant,
		EventID:        eventID,
		Integrator:     "shop-to-erp",
		Flow:           flow,
		Entity:         "order",
		SourceEndpoint: "shop",
		SourceKey:      "SO-" + eventID,
		TargetID:       "T-" + eventID,
		Action:         apilog.ActionCreated,
		Status:         apilog.StatusSuccess,
		Attempts:       1,
		Duration:       1500 * time.Microsecond,
		TraceID:        "4bf92f3577b34da6a3ce929d0e0e4736",
		OccurredAt:     loggedAt.Add(-time.Second),
		LoggedAt:       loggedAt,
	}
}

func insert(t *testing.T, s apilog.Store, rs ...apilog.Record) {
	t.Helper()
	if err := s.Insert(t.Context(), rs); err != nil {
		t.Fatalf("Insert: %v", err)
	}
}

func query(t *testing.T, s apilog.Store, q apilog.Query) apilog.Page {
	t.Helper()
	p, err := s.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("Query(%+v): %v", q, err)
	}
	return p
}

// all pages through q and returns every record.
func all(t *testing.T, s apilog.Store, q apilog.Query) []apilog.Record {
	t.Helper()
	var out []apilog.Record
	for range 1000 {
		p := query(t, s, q)
		out = append(out, p.Records...)
		if p.NextCursor == "" {
			return out
		}
		q.Cursor = p.NextCursor
	}
	t.Fatal("paging did not end after 1000 pages")
	return nil
}

// ids lists the identities of records in order, for readable comparisons.
func ids(rs []apilog.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Tenant + "/" + r.EventID + "/" + r.Flow
	}
	return out
}

func assertIDs(t *testing.T, got []apilog.Record, want ...string) {
	t.Helper()
	if g := ids(got); !slices.Equal(g, want) {
		t.Fatalf("records\n got %v\nwant %v", g, want)
	}
}

func testRoundTrip(t *testing.T, s apilog.Store) {
	full := record("acme", "ev-1", "orders", base)
	full.Action, full.Status = apilog.ActionFailed, apilog.StatusFailure
	full.Reason, full.ErrorCode, full.Attempts = "target said: SKU 'A-1' ünknown", "target_rejected", 5
	full.Duration = 90 * time.Second
	sparse := apilog.Record{Tenant: "acme", EventID: "ev-0", Action: apilog.ActionSkipped, Status: apilog.StatusSuccess, LoggedAt: base.Add(-time.Hour)}
	insert(t, s, full, sparse)
	got := query(t, s, apilog.Query{Tenant: "acme"})
	want := []apilog.Record{full, sparse}
	if !slices.Equal(got.Records, want) || got.NextCursor != "" {
		t.Fatalf("Query returned\n%+v\nwant\n%+v\nand no next cursor (got %q)", got.Records, want, got.NextCursor)
	}
}

func testStampsLoggedAt(t *testing.T, s apilog.Store) {
	r := record("acme", "ev-1", "orders", time.Time{})
	before := time.Now().Add(-time.Second)
	insert(t, s, r)
	got := query(t, s, apilog.Query{Tenant: "acme"}).Records
	if len(got) != 1 || got[0].LoggedAt.Before(before) || got[0].LoggedAt.After(time.Now().Add(time.Second)) || got[0].LoggedAt.Location() != time.UTC {
		t.Fatalf("records %+v, want one logged at the time of the Insert, in UTC", got)
	}
}

func testIdempotentInsert(t *testing.T, s apilog.Store) {
	first := record("acme", "ev-1", "orders", base)
	first.Action, first.Status, first.Attempts = apilog.ActionFailed, apilog.StatusFailure, 1
	insert(t, s, first, record("acme", "ev-1", "invoices", base)) // one event in two flows: two records
	// A failure is replaced: within one batch, failures by the last of them.
	failedAgain := first
	failedAgain.Attempts, failedAgain.Reason = 2, "timeout"
	failedThird := failedAgain
	failedThird.Attempts = 3
	insert(t, s, failedAgain, failedThird)
	got := all(t, s, apilog.Query{Tenant: "acme", Flow: "orders"})
	if len(got) != 1 || got[0].Attempts != 3 || got[0].Status != apilog.StatusFailure {
		t.Fatalf("the failure after two more is %+v, want the last one (attempts 3)", got)
	}
	// A success replaces it; within one batch, the first success stands.
	retried := first
	retried.Action, retried.Status, retried.Attempts, retried.LoggedAt = apilog.ActionCreated, apilog.StatusSuccess, 4, base.Add(time.Minute)
	stale := retried
	stale.Action, stale.ErrorCode, stale.Attempts, stale.LoggedAt = apilog.ActionSkipped, "stale_version", 5, base.Add(2*time.Minute)
	insert(t, s, retried, stale)
	// A later delivery of the applied event leaves its success as it is.
	insert(t, s, stale)
	failedLater := first
	failedLater.Attempts = 6
	insert(t, s, failedLater)
	got = all(t, s, apilog.Query{Tenant: "acme"})
	assertIDs(t, got, "acme/ev-1/orders", "acme/ev-1/invoices")
	if got[0].Attempts != 4 || got[0].Action != apilog.ActionCreated || !got[0].LoggedAt.Equal(retried.LoggedAt) {
		t.Fatalf("the record is %+v, want the first success (attempts 4, created) whatever came after", got[0])
	}
}

func testInsertRejectsInvalid(t *testing.T, s apilog.Store) {
	tests := []struct {
		name   string
		change func(*apilog.Record)
		want   string
	}{
		{"no tenant", func(r *apilog.Record) { r.Tenant = "" }, "tenant and event id are required"},
		{"no event id", func(r *apilog.Record) { r.EventID = "" }, "tenant and event id are required"},
		{"unknown action", func(r *apilog.Record) { r.Action = "upserted" }, `unknown action "upserted"`},
		{"no status", func(r *apilog.Record) { r.Status = "" }, `unknown status ""`},
		{"negative attempts", func(r *apilog.Record) { r.Attempts = -1 }, "cannot be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := record("acme", "ev-bad", "orders", base)
			tc.change(&bad)
			err := s.Insert(t.Context(), []apilog.Record{record("acme", "ev-good", "orders", base), bad})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "record 1") {
				t.Fatalf("Insert = %v, want an error naming record 1 and containing %q", err, tc.want)
			}
			if got := query(t, s, apilog.Query{Tenant: "acme"}).Records; len(got) != 0 {
				t.Fatalf("a refused batch wrote %v", ids(got))
			}
		})
	}
}

func testTenantIsolation(t *testing.T, s apilog.Store) {
	insert(t, s,
		record("acme", "ev-1", "orders", base),
		record("globex", "ev-1", "orders", base), // the same event id in another tenant
		record("globex", "ev-2", "orders", base.Add(time.Second)),
	)
	assertIDs(t, all(t, s, apilog.Query{Tenant: "acme"}), "acme/ev-1/orders")
	assertIDs(t, all(t, s, apilog.Query{Tenant: "acme", SourceKey: "SO-ev-2"}))
	assertIDs(t, all(t, s, apilog.Query{Tenant: "initech"}))
	// A cursor from one tenant's pages does not open another tenant's records.
	p := query(t, s, apilog.Query{Tenant: "globex", Limit: 1})
	assertIDs(t, all(t, s, apilog.Query{Tenant: "acme", Cursor: p.NextCursor}), "acme/ev-1/orders")
}

func testFilters(t *testing.T, s apilog.Store) {
	a := record("acme", "ev-a", "orders", base)
	b := record("acme", "ev-b", "orders", base.Add(1*time.Second))
	b.SourceKey = a.SourceKey // a second change of the same remote record
	b.Action = apilog.ActionUpdated
	c := record("acme", "ev-c", "invoices", base.Add(2*time.Second))
	c.Integrator, c.Entity = "pos-to-erp", "invoice"
	c.Action, c.Status, c.Reason = apilog.ActionFailed, apilog.StatusFailure, "boom"
	d := record("acme", "ev-d", "orders", base.Add(3*time.Second))
	d.Action, d.Reason = apilog.ActionSkipped, "filtered out"
	insert(t, s, a, b, c, d)
	tests := []struct {
		name string
		q    apilog.Query
		want []string
	}{
		{"none", apilog.Query{}, []string{"acme/ev-d/orders", "acme/ev-c/invoices", "acme/ev-b/orders", "acme/ev-a/orders"}},
		{"source key", apilog.Query{SourceKey: a.SourceKey}, []string{"acme/ev-b/orders", "acme/ev-a/orders"}},
		{"integrator", apilog.Query{Integrator: "pos-to-erp"}, []string{"acme/ev-c/invoices"}},
		{"flow", apilog.Query{Flow: "orders"}, []string{"acme/ev-d/orders", "acme/ev-b/orders", "acme/ev-a/orders"}},
		{"entity", apilog.Query{Entity: "invoice"}, []string{"acme/ev-c/invoices"}},
		{"status", apilog.Query{Status: apilog.StatusFailure}, []string{"acme/ev-c/invoices"}},
		{"action", apilog.Query{Action: apilog.ActionSkipped}, []string{"acme/ev-d/orders"}},
		{"combined", apilog.Query{Flow: "orders", Status: apilog.StatusSuccess, Action: apilog.ActionCreated}, []string{"acme/ev-a/orders"}},
		{"no match", apilog.Query{SourceKey: "SO-nothing"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Tenant = "acme"
			assertIDs(t, all(t, s, tc.q), tc.want...)
		})
	}
}

func testSparseFilters(t *testing.T, s apilog.Store) {
	old := record("acme", "old", "payments", base.AddDate(0, 0, -20))
	old.Integrator, old.Entity, old.Action = "pos-to-erp", "payment", apilog.ActionDeleted
	batch := []apilog.Record{old}
	for i := range 50 {
		batch = append(batch, record("acme", fmt.Sprintf("ev-%02d", i), "orders", base.Add(time.Duration(i)*time.Minute)))
	}
	insert(t, s, batch...)
	tests := []struct {
		name string
		q    apilog.Query
		want []string
	}{
		{"integrator with a typo", apilog.Query{Integrator: "pos-to-erq"}, []string{}},
		{"flow with a typo", apilog.Query{Flow: "order"}, []string{}},
		{"entity and flow that never meet", apilog.Query{Flow: "orders", Entity: "payment"}, []string{}},
		{"status no record has", apilog.Query{Status: apilog.StatusFailure}, []string{}},
		{"matches only weeks ago", apilog.Query{Integrator: "pos-to-erp"}, []string{"acme/old/payments"}},
		{"action only weeks ago", apilog.Query{Action: apilog.ActionDeleted}, []string{"acme/old/payments"}},
		{"matches outside the range", apilog.Query{Flow: "payments", From: base.AddDate(0, 0, -19)}, []string{}},
		{"matches inside the range", apilog.Query{Entity: "payment", From: base.AddDate(0, 0, -21), To: base.AddDate(0, 0, -20).Add(time.Microsecond)}, []string{"acme/old/payments"}},
		{"another tenant's values", apilog.Query{Tenant: "globex", Flow: "orders"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Tenant = cmp.Or(tc.q.Tenant, "acme")
			assertIDs(t, all(t, s, tc.q), tc.want...)
		})
	}
	t.Run("paging through the old match and the new ones", func(t *testing.T) {
		got := all(t, s, apilog.Query{Tenant: "acme", Status: apilog.StatusSuccess, Limit: 7})
		if len(got) != 51 || got[50].EventID != "old" {
			t.Fatalf("%d records, the last %v; want 51, the old one last", len(got), ids(got[len(got)-1:]))
		}
	})
	t.Run("after retention removed the only match", func(t *testing.T) {
		if _, err := s.DeleteBefore(t.Context(), "acme", base.AddDate(0, 0, -1)); err != nil {
			t.Fatal(err)
		}
		assertIDs(t, all(t, s, apilog.Query{Tenant: "acme", Integrator: "pos-to-erp"}))
	})
}

func testDateRange(t *testing.T, s apilog.Store) {
	for i := range 5 {
		insert(t, s, record("acme", fmt.Sprintf("ev-%d", i), "orders", base.Add(time.Duration(i)*time.Minute)))
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"open", time.Time{}, time.Time{}, []string{"acme/ev-4/orders", "acme/ev-3/orders", "acme/ev-2/orders", "acme/ev-1/orders", "acme/ev-0/orders"}},
		{"from is inclusive", at(3), time.Time{}, []string{"acme/ev-4/orders", "acme/ev-3/orders"}},
		{"to is exclusive", time.Time{}, at(2), []string{"acme/ev-1/orders", "acme/ev-0/orders"}},
		{"both", at(1), at(3), []string{"acme/ev-2/orders", "acme/ev-1/orders"}},
		{"one microsecond wide", at(2), at(2).Add(time.Microsecond), []string{"acme/ev-2/orders"}},
		{"other time zone", at(1).In(time.FixedZone("CEST", 2*3600)), at(2).In(time.FixedZone("EST", -5*3600)), []string{"acme/ev-1/orders"}},
		{"after everything", at(5), time.Time{}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertIDs(t, all(t, s, apilog.Query{Tenant: "acme", From: tc.from, To: tc.to}), tc.want...)
		})
	}
}

func testOrder(t *testing.T, s apilog.Store) {
	insert(t, s,
		record("acme", "ev-1", "a", base),
		record("acme", "ev-2", "a", base),
		record("acme", "ev-2", "b", base),
		record("acme", "ev-0", "a", base.Add(time.Microsecond)),
		record("acme", "ev-9", "a", base.Add(-time.Microsecond)),
	)
	assertIDs(t, all(t, s, apilog.Query{Tenant: "acme"}),
		"acme/ev-0/a", "acme/ev-2/b", "acme/ev-2/a", "acme/ev-1/a", "acme/ev-9/a")
	// The same order holds when every page has one record.
	assertIDs(t, all(t, s, apilog.Query{Tenant: "acme", Limit: 1}),
		"acme/ev-0/a", "acme/ev-2/b", "acme/ev-2/a", "acme/ev-1/a", "acme/ev-9/a")
}

func testPagination(t *testing.T, s apilog.Store) {
	const n = 250
	batch := make([]apilog.Record, 0, n)
	latest := make(map[[2]string]time.Time) // event id and flow -> logged-at of the last insert
	for i := range n {
		// Groups of three share a logged-at, and some events run in two flows, so the tie
		// breakers decide page boundaries; repeats within the batch collapse to one record.
		flow := "orders"
		if i%7 == 0 {
			flow = "invoices"
		}
		r := record("acme", fmt.Sprintf("ev-%04d", i/2), flow, base.Add(time.Duration(i/3)*time.Millisecond))
		batch = append(batch, r)
		latest[[2]string{r.EventID, r.Flow}] = r.LoggedAt
	}
	insert(t, s, batch...)
	type position struct {
		at          time.Time
		event, flow string
	}
	order := make([]position, 0, len(latest))
	for id, at := range latest {
		order = append(order, position{at, id[0], id[1]})
	}
	slices.SortFunc(order, func(a, b position) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		if c := strings.Compare(b.event, a.event); c != 0 {
			return c
		}
		return strings.Compare(b.flow, a.flow)
	})
	want := make([]string, len(order))
	for i, p := range order {
		want[i] = "acme/" + p.event + "/" + p.flow
	}

	q := apilog.Query{Tenant: "acme", Limit: 40}
	var got []apilog.Record
	pages := 0
	for {
		p := query(t, s, q)
		pages++
		if len(p.Records) > q.Limit {
			t.Fatalf("page %d holds %d records, limit %d", pages, len(p.Records), q.Limit)
		}
		got = append(got, p.Records...)
		if p.NextCursor == "" {
			break
		}
		// New records arrive between pages: newer ones, one tied with the page's last record
		// but sorting before it, and other tenants'. None may shift the pages still to come.
		last := p.Records[len(p.Records)-1]
		insert(t, s,
			record("acme", fmt.Sprintf("new-%d", pages), "orders", base.Add(time.Hour)),
			record("acme", last.EventID+"~", last.Flow, last.LoggedAt),
			record("globex", fmt.Sprintf("ev-%d", pages), "orders", last.LoggedAt.Add(-time.Microsecond)),
		)
		q.Cursor = p.NextCursor
	}
	if pages != (len(want)+39)/40 {
		t.Errorf("%d pages for %d records of 40 each", pages, len(want))
	}
	if g := ids(got); !slices.Equal(g, want) {
		t.Fatalf("paging returned %d records, want the %d present at the start in order:\n got %v\nwant %v", len(g), len(want), g, want)
	}
}

func testLimits(t *testing.T, s apilog.Store) {
	batch := make([]apilog.Record, 1001)
	for i := range batch {
		batch[i] = record("acme", fmt.Sprintf("ev-%04d", i), "orders", base)
	}
	insert(t, s, batch...)
	tests := []struct {
		limit, want int
		more        bool
	}{
		{limit: 0, want: apilog.DefaultLimit, more: true},
		{limit: 1, want: 1, more: true},
		{limit: apilog.MaxLimit, want: apilog.MaxLimit, more: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			p := query(t, s, apilog.Query{Tenant: "acme", Limit: tc.limit})
			if len(p.Records) != tc.want || (p.NextCursor != "") != tc.more {
				t.Fatalf("limit %d: %d records, next cursor %q; want %d records and more=%t", tc.limit, len(p.Records), p.NextCursor, tc.want, tc.more)
			}
		})
	}
	t.Run("last page", func(t *testing.T) {
		p := query(t, s, apilog.Query{Tenant: "acme", Limit: apilog.MaxLimit})
		p = query(t, s, apilog.Query{Tenant: "acme", Limit: apilog.MaxLimit, Cursor: p.NextCursor})
		if len(p.Records) != 1 || p.NextCursor != "" {
			t.Fatalf("last page: %d records, next cursor %q; want 1 record and no cursor", len(p.Records), p.NextCursor)
		}
	})
}

func testQueryValidation(t *testing.T, s apilog.Store) {
	insert(t, s, record("acme", "ev-1", "orders", base), record("acme", "ev-2", "orders", base))
	valid := query(t, s, apilog.Query{Tenant: "acme", Limit: 1}).NextCursor
	tests := []struct {
		name  string
		q     apilog.Query
		field string
	}{
		{"no tenant", apilog.Query{}, "tenant"},
		{"negative limit", apilog.Query{Tenant: "acme", Limit: -1}, "limit"},
		{"limit above the maximum", apilog.Query{Tenant: "acme", Limit: apilog.MaxLimit + 1}, "limit"},
		{"unknown status", apilog.Query{Tenant: "acme", Status: "ok"}, "status"},
		{"unknown action", apilog.Query{Tenant: "acme", Action: "upserted"}, "action"},
		{"to before from", apilog.Query{Tenant: "acme", From: base, To: base.Add(-time.Second)}, "to"},
		{"empty range", apilog.Query{Tenant: "acme", From: base, To: base}, "to"},
		{"cursor not base64", apilog.Query{Tenant: "acme", Cursor: "not a cursor!"}, "cursor"},
		{"cursor of another version", apilog.Query{Tenant: "acme", Cursor: "AgAA"}, "cursor"},
		{"cursor truncated", apilog.Query{Tenant: "acme", Cursor: valid[:len(valid)/2]}, "cursor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Query(t.Context(), tc.q)
			var qe *apilog.QueryError
			if !errors.As(err, &qe) || qe.Field != tc.field {
				t.Fatalf("Query = %v, want a *QueryError on field %q", err, tc.field)
			}
		})
	}
}

func testDeleteTenant(t *testing.T, s apilog.Store) {
	insert(t, s,
		record("acme", "ev-1", "orders", base),
		record("acme", "ev-2", "orders", base),
		record("globex", "ev-1", "orders", base),
	)
	if n, err := s.DeleteTenant(t.Context(), "acme"); err != nil || n != 2 {
		t.Fatalf("DeleteTenant(acme) = %d, %v; want 2", n, err)
	}
	assertIDs(t, all(t, s, apilog.Query{Tenant: "acme"}))
	assertIDs(t, all(t, s, apilog.Query{Tenant: "globex"}), "globex/ev-1/orders")
	if _, err := s.DeleteTenant(t.Context(), ""); err == nil {
		t.Fatal("DeleteTenant(\"\") succeeded, want an error: it must not mean every tenant")
	}
}

func testDeleteBefore(t *testing.T, s apilog.Store) {
	insert(t, s,
		record("acme", "old", "orders", base.Add(-time.Hour)),
		record("acme", "edge", "orders", base),
		record("acme", "new", "orders", base.Add(time.Hour)),
		record("globex", "old", "orders", base.Add(-time.Hour)),
	)
	if n, err := s.DeleteBefore(t.Context(), "acme", base); err != nil || n != 1 {
		t.Fatalf("DeleteBefore(acme, base) = %d, %v; want 1", n, err)
	}
	assertIDs(t, all(t, s, apilog.Query{Tenant: "acme"}), "acme/new/orders", "acme/edge/orders")
	assertIDs(t, all(t, s, apilog.Query{Tenant: "globex"}), "globex/old/orders")
	if _, err := s.DeleteBefore(t.Context(), "", base); err == nil {
		t.Fatal("DeleteBefore with no tenant succeeded, want an error")
	}
}

func testConcurrentWriters(t *testing.T, s apilog.Store) {
	const writers, batches, size = 8, 10, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches*2)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				rs := make([]apilog.Record, size)
				for i := range rs {
					rs[i] = record("acme", fmt.Sprintf("ev-%d-%d-%d", w, b, i), "orders", base.Add(time.Duration(i)*time.Millisecond))
				}
				errs <- s.Insert(t.Context(), rs)
				_, err := s.Query(t.Context(), apilog.Query{Tenant: "acme", Flow: "orders"})
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent writer failed: %v", err)
		}
	}
	if got := all(t, s, apilog.Query{Tenant: "acme", Limit: apilog.MaxLimit}); len(got) != writers*batches*size {
		t.Fatalf("found %d of %d records written concurrently", len(got), writers*batches*size)
	}
}

func testTenants(t *testing.T, s apilog.Store) {
	now := time.Now().UTC()
	insert(t, s, record("globex", "e1", "orders", now), record("acme", "e2", "orders", now), record("acme", "e3", "orders", now), record("_", "e4", "", now))
	got, err := s.Tenants(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "_,acme,globex" {
		t.Errorf("Tenants = %v, want _, acme, globex", got)
	}
}
