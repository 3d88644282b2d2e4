package apilogtest

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/services/eventlog/apilog"
)

// A backend may answer reports from aggregates it keeps as records come and go (PostgreSQL
// does, per UTC day). These cases change the records in every way the store allows — new
// records, redelivered ones that replace a record with other values (another day, another
// integrator, another outcome), retention in the middle of a day, a tenant's erase — and check
// after each change that every report and filtered page equals what the records themselves
// say, computed here from the records the test knows are stored.

// logged is what the test knows is stored: per identity, the first success written, else the
// last record (Store.Insert's rule).
type logged map[[3]string]apilog.Record

func (l logged) insert(t *testing.T, s apilog.Store, rs ...apilog.Record) {
	t.Helper()
	insert(t, s, rs...)
	for _, r := range rs {
		k := [3]string{r.Tenant, r.EventID, r.Flow}
		if old, ok := l[k]; ok && old.Status == apilog.StatusSuccess {
			continue
		}
		l[k] = r
	}
}

func (l logged) deleteBefore(t *testing.T, s apilog.Store, tenant string, before time.Time) {
	t.Helper()
	want := 0
	for k, r := range l {
		if r.Tenant == tenant && r.LoggedAt.Before(before) {
			delete(l, k)
			want++
		}
	}
	if n, err := s.DeleteBefore(t.Context(), tenant, before); err != nil || n != int64(want) {
		t.Fatalf("DeleteBefore(%s, %s) = %d, %v; want %d", tenant, before, n, err, want)
	}
}

func (l logged) deleteTenant(t *testing.T, s apilog.Store, tenant string) {
	t.Helper()
	want := 0
	for k, r := range l {
		if r.Tenant == tenant {
			delete(l, k)
			want++
		}
	}
	if n, err := s.DeleteTenant(t.Context(), tenant); err != nil || n != int64(want) {
		t.Fatalf("DeleteTenant(%s) = %d, %v; want %d", tenant, n, err, want)
	}
}

func (l logged) records() []apilog.Record {
	out := make([]apilog.Record, 0, len(l))
	for _, r := range l {
		out = append(out, r)
	}
	return out
}

// expectReport is the report of records by the rules of apilog.ReportRow, computed the
// simplest way: group, sort each group's durations, count.
func expectReport(records []apilog.Record, q apilog.ReportQuery) []apilog.ReportRow {
	type key struct {
		integrator, flow, entity string
		day                      time.Time
	}
	groups := map[key][]apilog.Record{}
	for _, r := range records {
		switch {
		case r.Tenant != q.Tenant, r.LoggedAt.Before(q.From), !r.LoggedAt.Before(q.To),
			q.Integrator != "" && r.Integrator != q.Integrator,
			q.Flow != "" && r.Flow != q.Flow,
			q.Entity != "" && r.Entity != q.Entity:
			continue
		}
		y, m, d := r.LoggedAt.UTC().Date()
		k := key{r.Integrator, r.Flow, r.Entity, time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
		groups[k] = append(groups[k], r)
	}
	top := cmp.Or(q.TopErrors, apilog.DefaultTopErrors)
	var rows []apilog.ReportRow
	for k, rs := range groups {
		row := apilog.ReportRow{Integrator: k.integrator, Flow: k.flow, Entity: k.entity, Day: k.day, Total: int64(len(rs))}
		durations := make([]time.Duration, 0, len(rs))
		codes := map[string]*apilog.ErrorCount{}
		for _, r := range rs {
			durations = append(durations, r.Duration)
			switch r.Action {
			case apilog.ActionCreated:
				row.Created++
			case apilog.ActionUpdated:
				row.Updated++
			case apilog.ActionDeleted:
				row.Deleted++
			case apilog.ActionSkipped:
				row.Skipped++
			case apilog.ActionFailed:
				row.Failed++
			}
			if r.Status != apilog.StatusFailure {
				continue
			}
			row.Failures++
			c := codes[r.ErrorCode]
			if c == nil {
				c = &apilog.ErrorCount{Code: r.ErrorCode, Reason: r.Reason}
				codes[r.ErrorCode] = c
			}
			c.Count++
			c.Reason = min(c.Reason, r.Reason)
		}
		row.FailureRate = float64(row.Failures) / float64(row.Total)
		slices.Sort(durations)
		rank := func(p float64) time.Duration { return durations[max(int(math.Ceil(p*float64(len(durations)))), 1)-1] }
		row.P50, row.P95 = rank(0.5), rank(0.95)
		for _, c := range codes {
			row.TopErrors = append(row.TopErrors, *c)
		}
		slices.SortFunc(row.TopErrors, func(a, b apilog.ErrorCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Code, b.Code))
		})
		if len(row.TopErrors) > top {
			row.TopErrors = row.TopErrors[:top]
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b apilog.ReportRow) int {
		return cmp.Or(a.Day.Compare(b.Day), strings.Compare(a.Integrator, b.Integrator),
			strings.Compare(a.Flow, b.Flow), strings.Compare(a.Entity, b.Entity))
	})
	return rows
}

// checkAgainstRecords compares reports and filtered pages of tenant with what l's records say:
// whole days, ranges that start and end inside a day, and each filter, one that matches
// nothing among them.
func checkAgainstRecords(t *testing.T, s apilog.Store, l logged, tenant string) {
	t.Helper()
	records := l.records()
	ranges := []struct{ from, to time.Time }{
		{day.AddDate(0, 0, -3), day.AddDate(0, 0, 4)},                                          // whole days
		{day.AddDate(0, 0, -1).Add(5*time.Hour + 7*time.Microsecond), day.Add(19 * time.Hour)}, // starts and ends inside a day
		{day.Add(3 * time.Hour), day.Add(20 * time.Hour)},                                      // inside one day
		{day.Add(-2 * time.Hour), day.AddDate(0, 0, 1).Add(time.Hour)},                         // one whole day and a part on each side
	}
	filters := []apilog.ReportQuery{
		{}, {Integrator: "pos-to-erp"}, {Flow: "orders"}, {Entity: "invoice"},
		{Integrator: "shop-to-erp", Entity: "invoice"}, {Integrator: "no-such-integrator"},
	}
	for _, rg := range ranges {
		for _, f := range filters {
			q := f
			q.Tenant, q.From, q.To, q.TopErrors = tenant, rg.from, rg.to, 2
			got := report(t, s, q)
			if want := expectReport(records, q); !reportsEqual(got, want) {
				t.Fatalf("Report(%s, %s to %s, integrator %q, flow %q, entity %q) disagrees with the records:\n got %s\nwant %s",
					tenant, q.From, q.To, q.Integrator, q.Flow, q.Entity, showRows(got), showRows(want))
			}
		}
	}
	queries := []apilog.Query{
		{Integrator: "pos-to-erp"}, {Flow: "invoices"}, {Entity: "order"}, {Action: apilog.ActionDeleted},
		{Status: apilog.StatusFailure}, {Status: apilog.StatusSuccess, Flow: "orders"},
		{Integrator: "pos-to-erp", Action: apilog.ActionFailed},
		{Integrator: "no-such-integrator"}, {Flow: "orders", Entity: "invoice"},
		{Entity: "invoice", From: day.Add(-time.Hour), To: day.Add(7 * time.Hour)},
	}
	for _, q := range queries {
		q.Tenant, q.Limit = tenant, 7
		got := ids(all(t, s, q))
		var want []apilog.Record
		for _, r := range records {
			if r.Tenant == q.Tenant && (q.Integrator == "" || r.Integrator == q.Integrator) && (q.Flow == "" || r.Flow == q.Flow) &&
				(q.Entity == "" || r.Entity == q.Entity) && (q.Action == "" || r.Action == q.Action) && (q.Status == "" || r.Status == q.Status) &&
				(q.From.IsZero() || !r.LoggedAt.Before(q.From)) && (q.To.IsZero() || r.LoggedAt.Before(q.To)) {
				want = append(want, r)
			}
		}
		slices.SortFunc(want, func(a, b apilog.Record) int {
			return cmp.Or(b.LoggedAt.Compare(a.LoggedAt), strings.Compare(b.EventID, a.EventID), strings.Compare(b.Flow, a.Flow))
		})
		if !slices.Equal(got, ids(want)) {
			t.Fatalf("Query(%+v) disagrees with the records:\n got %v\nwant %v", q, got, ids(want))
		}
	}
}

// reportsEqual compares rows field by field; an empty and a missing list of errors are equal.
func reportsEqual(got, want []apilog.ReportRow) bool {
	return slices.EqualFunc(got, want, func(a, b apilog.ReportRow) bool {
		return slices.Equal(a.TopErrors, b.TopErrors) && reflect.DeepEqual(withoutErrors(a), withoutErrors(b))
	})
}

func withoutErrors(r apilog.ReportRow) apilog.ReportRow {
	r.TopErrors = nil
	return r
}

// varied makes n records of tenant over the three days around day: three integrators, flows
// and entities (one flow shared by two of them, and records of no flow), every action, failures
// with a few codes and reasons, and durations that repeat, lie on and next to the edges of
// duration ranges a backend might bucket by (powers of two, with eighths), are zero or huge.
func varied(rng *rand.Rand, tenant, prefix string, n int) []apilog.Record {
	type flow struct{ integrator, flow, entity string }
	flows := []flow{
		{"shop-to-erp", "orders", "order"},
		{"shop-to-erp", "orders", "invoice"}, // the same flow name with another entity
		{"pos-to-erp", "invoices", "invoice"},
		{"pos-to-erp", "", "order"}, // failed before any flow took it
	}
	actions := []apilog.Action{apilog.ActionCreated, apilog.ActionUpdated, apilog.ActionDeleted, apilog.ActionSkipped, apilog.ActionFailed}
	codes := []string{"sku_missing", "timeout", "target_rejected", ""}
	reasons := []string{"SKU 'B-2' does not exist", "SKU 'A-1' does not exist", "target said: 422", "", "ünknown"}
	edges := []time.Duration{0, 1, 1023, 1024, 1025, 1151, 1152, 2047, 2048, 3 << 20, 3<<20 - 1, 15<<43 - 1, 15 << 43, 16 << 43, math.MaxInt64}
	out := make([]apilog.Record, n)
	for i := range out {
		f := flows[rng.IntN(len(flows))]
		at := day.AddDate(0, 0, rng.IntN(3)-1).Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
		r := record(tenant, fmt.Sprintf("%s-%04d", prefix, i), f.flow, at.Truncate(time.Microsecond))
		r.Integrator, r.Entity = f.integrator, f.entity
		r.Action = actions[rng.IntN(len(actions))]
		switch p := rng.IntN(10); {
		case p < 3:
			r.Duration = edges[rng.IntN(len(edges))]
		case p < 5:
			r.Duration = time.Duration(rng.IntN(4)) * time.Millisecond // repeats
		default:
			r.Duration = time.Duration(math.Exp(rng.NormFloat64()*2 + math.Log(20e6)))
		}
		if r.Action == apilog.ActionFailed || rng.IntN(20) == 0 {
			r.Status, r.ErrorCode, r.Reason = apilog.StatusFailure, codes[rng.IntN(len(codes))], reasons[rng.IntN(len(reasons))]
		}
		out[i] = r
	}
	return out
}

// replaced is r redelivered with other values: another outcome, duration, error, day,
// integrator or entity (its identity stays).
func replaced(rng *rand.Rand, r apilog.Record) apilog.Record {
	other := varied(rng, r.Tenant, "x", 1)[0]
	switch rng.IntN(4) {
	case 0:
		r.Action, r.Status, r.ErrorCode, r.Reason = other.Action, other.Status, other.ErrorCode, other.Reason
	case 1:
		r.Duration = other.Duration
	case 2:
		r.LoggedAt = other.LoggedAt
	default:
		r.Integrator, r.Entity = other.Integrator, other.Entity
	}
	r.Attempts++
	return r
}

func testReportFollowsReplacements(t *testing.T, s apilog.Store) {
	rng := rand.New(rand.NewPCG(4, 2))
	l := logged{}
	first := varied(rng, "acme", "ev", 400)
	for len(first) > 0 {
		n := min(len(first), 1+rng.IntN(150))
		l.insert(t, s, first[:n]...)
		first = first[n:]
	}
	l.insert(t, s, varied(rng, "globex", "ev", 100)...) // the same event ids in another tenant
	checkAgainstRecords(t, s, l, "acme")

	for round := range 3 {
		// A batch of redeliveries with other values, some twice (the last wins), and new records.
		var batch []apilog.Record
		for _, r := range l.records() {
			if r.Tenant == "acme" && rng.IntN(3) == 0 {
				again := replaced(rng, r)
				batch = append(batch, again)
				if rng.IntN(4) == 0 {
					batch = append(batch, replaced(rng, again))
				}
			}
		}
		batch = append(batch, varied(rng, "acme", fmt.Sprintf("new%d", round), 30)...)
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		l.insert(t, s, batch...)
		checkAgainstRecords(t, s, l, "acme")
	}
	// A redelivery that changes nothing changes no figure.
	l.insert(t, s, l.records()...)
	checkAgainstRecords(t, s, l, "acme")
	checkAgainstRecords(t, s, l, "globex")
}

func testReportFollowsDeletes(t *testing.T, s apilog.Store) {
	rng := rand.New(rand.NewPCG(8, 1))
	l := logged{}
	l.insert(t, s, varied(rng, "acme", "ev", 300)...)
	l.insert(t, s, varied(rng, "globex", "ev", 300)...)

	// Retention in the middle of a day, then up to the end of a day.
	l.deleteBefore(t, s, "acme", day.Add(7*time.Hour+time.Microsecond))
	checkAgainstRecords(t, s, l, "acme")
	checkAgainstRecords(t, s, l, "globex")
	l.deleteBefore(t, s, "acme", day.AddDate(0, 0, 1))
	checkAgainstRecords(t, s, l, "acme")

	// An erased tenant that logs again reports only what it logged since.
	l.deleteTenant(t, s, "globex")
	checkAgainstRecords(t, s, l, "globex")
	l.insert(t, s, varied(rng, "globex", "again", 50)...)
	checkAgainstRecords(t, s, l, "globex")
	checkAgainstRecords(t, s, l, "acme")
}

// testConcurrentRedeliveries has writers insert batches of several tenants that redeliver
// each other's records, and retention run meanwhile: every write must succeed, and the
// reports must then agree with whatever records were stored.
func testConcurrentRedeliveries(t *testing.T, s apilog.Store) {
	const writers, batches = 4, 8
	tenants := []string{"acme", "globex", "initech"}
	pool := map[string][]apilog.Record{}
	for i, tenant := range tenants {
		pool[tenant] = varied(rand.New(rand.NewPCG(uint64(i), 9)), tenant, "ev", 120)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches+1)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for range batches {
				var batch []apilog.Record
				for _, tenant := range tenants {
					for _, r := range pool[tenant] {
						if rng.IntN(4) == 0 {
							batch = append(batch, replaced(rng, r))
						}
					}
				}
				rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				errs <- s.Insert(t.Context(), batch)
			}
		})
	}
	wg.Go(func() {
		_, err := s.DeleteBefore(t.Context(), "globex", day.Add(-6*time.Hour))
		errs <- err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent write failed: %v", err)
		}
	}
	l := logged{}
	for _, tenant := range tenants {
		for _, r := range all(t, s, apilog.Query{Tenant: tenant, Limit: apilog.MaxLimit}) {
			l[[3]string{r.Tenant, r.EventID, r.Flow}] = r
		}
	}
	for _, tenant := range tenants {
		checkAgainstRecords(t, s, l, tenant)
	}
}

// testLongErrors logs error codes and reasons longer than an index key may be.
func testLongErrors(t *testing.T, s apilog.Store) {
	r := outcome("acme", "long", day.Add(time.Hour), apilog.ActionFailed, time.Millisecond,
		strings.Repeat("code-", 200), strings.Repeat("the target answered with a very long page ", 300))
	insert(t, s, r)
	want := apilog.ReportRow{Integrator: r.Integrator, Flow: r.Flow, Entity: r.Entity, Day: day, Total: 1, Failed: 1,
		Failures: 1, FailureRate: 1, P50: time.Millisecond, P95: time.Millisecond,
		TopErrors: []apilog.ErrorCount{{Code: r.ErrorCode, Reason: r.Reason, Count: 1}}}
	assertRows(t, report(t, s, week("acme")), want)
}
