package allinone_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/browsertest"
	"github.com/syncline/syncline/pkg/ingest"
)

// reportedOrders starts an instance with tenants acme and globex and gives acme today's
// records of each outcome but deleted: two orders created, one of them updated, a draft
// skipped by the flow's filter and an order its mapping fails on. Globex has one order.
func reportedOrders(t *testing.T) *env {
	t.Helper()
	e := start(t, options{dir: t.TempDir(), driver: "sqlite"})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyOrders("acme", "orders")
	e.dsn = tenantFile(t, e.dir, "globex", "erp.db")
	e.applyOrders("globex", "orders")
	e.publish(
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1001", Version: 1, Payload: order(1001, "paid")},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1002", Version: 1, Payload: order(1002, "paid")},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1003", Version: 1, Payload: order(1003, "draft")},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "X3", Version: 1, Payload: []byte(`{"status":"paid"}`)},
		ingest.Change{Tenant: "globex", Endpoint: "shop", Entity: "order", Key: "G-7", Version: 1, Payload: order(7, "paid")},
	)
	waitActions(t, e, "acme", map[string]int{"created": 2, "skipped": 1, "failed": 1})
	// The update after its create, so that it is an update.
	e.publish(ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "1001", Version: 2, Payload: order(1001, "shipped")})
	waitActions(t, e, "acme", map[string]int{"created": 2, "updated": 1, "skipped": 1, "failed": 1})
	waitActions(t, e, "globex", map[string]int{"created": 1})
	return e
}

// waitActions waits until tenant's API log holds want records of each action, and no other.
func waitActions(t *testing.T, e *env, tenant string, want map[string]int) {
	t.Helper()
	eventually(t, 60*time.Second, func() string {
		got := map[string]int{}
		for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: tenant}) {
			got[r.Action]++
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Sprintf("%s's API log has %v, want %v", tenant, got, want)
		}
		return ""
	})
}

// cell finds a table row's cell by its label, as the page's tables label them.
func cell(label, value string) *regexp.Regexp {
	return regexp.MustCompile(`<td data-label="` + regexp.QuoteMeta(label) + `">` + regexp.QuoteMeta(value) + `</td>`)
}

// svgOf returns the chart of the given id in a page.
func svgOf(t *testing.T, body, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<svg [^>]*id="` + id + `".*?</svg>`).FindString(body)
	if m == "" {
		t.Fatalf("the page has no chart %s\n%s", id, body)
	}
	return m
}

// TestConsoleReports: the reports page shows the report's counts of today's records, the
// charts with a bar segment per action of the day and a failure rate bar, the providers;
// it takes a range and filters, refuses a bad day next to its field, and an integrator's
// token sees its own tenant's reports only.
func TestConsoleReports(t *testing.T) {
	e := reportedOrders(t)
	today := time.Now().UTC().Format(time.DateOnly)

	b := newBrowser(t, e.in.APIURL())
	status, body, _ := b.post("/login", url.Values{"token": {e.in.AdminToken()}, "next": {"/t/acme/reports"}})
	if status != http.StatusOK {
		t.Fatalf("signed in to the reports: %d\n%s", status, body)
	}
	if !strings.Contains(body, `<a href="/t/acme/reports" aria-current="page">Reports</a>`) {
		t.Errorf("the navigation does not show Reports as the current page\n%s", body)
	}
	// The default range is the API's: the last 7 days, today included, in the fields.
	weekAgo := time.Now().UTC().AddDate(0, 0, -6).Format(time.DateOnly)
	if !strings.Contains(body, `id="from" name="from" type="date" value="`+weekAgo+`"`) || !strings.Contains(body, `id="to" name="to" type="date" value="`+today+`"`) {
		t.Errorf("the range's fields do not show %s to %s\n%s", weekAgo, today, body)
	}
	// The report's row of today: 5 records, 1 failure.
	for _, c := range [][2]string{
		{"Total", "5"}, {"Created", "2"}, {"Updated", "1"}, {"Deleted", "0"}, {"Skipped", "1"}, {"Failed", "1"},
		{"Failures", "1"}, {"Failure rate", "20.0 %"}, {"Flow", "orders"}, {"Integrator", "shop-to-erp"}, {"Records", "5"},
	} {
		if !cell(c[0], c[1]).MatchString(body) {
			t.Errorf("no %s of %s on the page", c[0], c[1])
		}
	}
	if !strings.Contains(body, "<code>mapping_failed</code>") {
		t.Errorf("the top errors do not name mapping_failed\n%s", body)
	}
	// The charts: 7 days, today's bar in 4 segments (created, updated, skipped, failed),
	// one failure rate bar; their descriptions give the figures.
	records := svgOf(t, body, "records-chart")
	if n := strings.Count(records, `class="seg `); n != 4 {
		t.Errorf("the records chart has %d segments, want 4\n%s", n, records)
	}
	for _, a := range []string{"created", "updated", "skipped", "failed"} {
		if n := strings.Count(records, `class="seg seg-`+a+`"`); n != 1 {
			t.Errorf("the records chart has %d %s segments, want 1", n, a)
		}
	}
	if n := strings.Count(records, `class="day"`); n != 7 {
		t.Errorf("the records chart labels %d days, want 7", n)
	}
	if !strings.Contains(records, "5 records: 2 created, 1 updated, 0 deleted, 1 skipped, 1 failed") {
		t.Errorf("the records chart's description does not give the counts\n%s", records)
	}
	rate := svgOf(t, body, "rate-chart")
	if n := strings.Count(rate, `class="rate"`); n != 1 || !strings.Contains(rate, "20 % of the records failed (1 of 5)") {
		t.Errorf("the failure rate chart has %d bars, want 1, and says the rate\n%s", n, rate)
	}
	// The providers: acme's flow from nats to sql; nothing of globex.
	if !cell("Source type", "nats").MatchString(body) || !cell("Target type", "sql").MatchString(body) || strings.Contains(body, "globex") {
		t.Errorf("the providers report does not show acme's nats to sql only\n%s", body)
	}

	// A range of 31 days and a filter.
	monthAgo := time.Now().UTC().AddDate(0, 0, -30).Format(time.DateOnly)
	_, body = b.get("/t/acme/reports?" + url.Values{"from": {monthAgo}, "to": {today}, "flow": {"orders"}}.Encode())
	if records := svgOf(t, body, "records-chart"); strings.Count(records, `class="seg `) != 4 || !strings.Contains(records, "31 days from "+monthAgo) {
		t.Errorf("31 days: want the same 4 segments\n%s", records)
	}
	if _, body := b.get("/t/acme/reports?flow=nope"); !strings.Contains(body, "No records in these days that match the filters") || strings.Contains(body, `class="seg `) {
		t.Errorf("another flow's report shows records\n%s", body)
	}
	// Bad days: refused next to their field.
	for _, tc := range []struct{ query, field string }{
		{"from=yesterday", "from"},
		{"to=2026-02-30", "to"},
		{"from=" + today + "&to=" + weekAgo, "to"},
	} {
		status, body := b.get("/t/acme/reports?" + tc.query)
		if status != http.StatusBadRequest || !strings.Contains(body, `id="`+tc.field+`-error"`) || !strings.Contains(body, `aria-describedby="`+tc.field+`-error"`) {
			t.Errorf("%s: %d, want it refused next to %s\n%s", tc.query, status, tc.field, body)
		}
	}
	// A range the API refuses (over a year): its reason at the top.
	if status, body := b.get("/t/acme/reports?from=2020-01-01&to=" + today); status != http.StatusBadRequest || !strings.Contains(body, `class="error"`) {
		t.Errorf("a range over a year: %d, want the API's refusal\n%s", status, body)
	}

	// An integrator of acme sees acme's reports, and nothing of globex.
	rot, err := e.resource.RotateToken(context.Background(), &controlplanev1.RotateTokenRequest{Tenant: "acme", Integrator: "shop-to-erp"})
	if err != nil {
		t.Fatal(err)
	}
	i := newBrowser(t, e.in.APIURL())
	status, body, _ = i.post("/login", url.Values{"token": {rot.Token}, "next": {"/t/acme/reports"}})
	if status != http.StatusOK || !cell("Total", "5").MatchString(body) || strings.Contains(body, "globex") {
		t.Fatalf("acme's integrator on acme's reports: %d, want its 5 records and no word of globex\n%s", status, body)
	}
	for _, path := range []string{"/t/globex/reports", "/t/globex/reports?flow=orders&from=" + weekAgo} {
		status, body := i.get(path)
		if status != http.StatusForbidden || strings.Contains(body, "<svg") || strings.Contains(body, `data-label="Total"`) || strings.Contains(body, "nats") {
			t.Errorf("acme's integrator on %s: %d, want refused with nothing of globex\n%s", path, status, body)
		}
	}
}

// TestConsoleReportsInABrowser: the reports page in Chromium: reached from the navigation,
// its charts drawn with the day's segments, accessible, fitting a phone, and kept as a
// screenshot; a bad day is refused next to its field.
func TestConsoleReportsInABrowser(t *testing.T) {
	e := reportedOrders(t)

	b := browsertest.New(t)
	b.Navigate(e.in.APIURL() + "/login?next=/t/acme/")
	b.Fill("Token", e.in.AdminToken())
	b.Press("\r")
	b.WaitText("Records")
	b.ClickText("Reports")
	b.WaitText("Per integrator, flow and entity")
	if !b.Bool(`document.querySelectorAll('#records-chart rect.seg').length === 4 && document.querySelectorAll('#rate-chart rect.rate').length === 1`) {
		t.Errorf("the charts do not have 4 segments and 1 rate bar: %s", b.Text("main"))
	}
	if got := b.Text("#report"); !strings.Contains(got, "mapping_failed") {
		t.Errorf("the report's table does not name the failure: %s", got)
	}
	b.Accessibility(t)
	b.Screenshots("console-reports")

	// The charts fit a phone, drawn as wide as the page allows.
	for _, width := range []int{390, 1280} {
		b.Viewport(width, 800)
		if b.Bool(`document.documentElement.scrollWidth > document.documentElement.clientWidth`) {
			t.Errorf("the reports page scrolls sideways at %d px", width)
		}
		if !b.Bool(`(() => { const r = document.querySelector('#records-chart').getBoundingClientRect(); return r.width > 250 && r.right <= document.documentElement.clientWidth })()`) {
			t.Errorf("at %d px the records chart is too narrow or past the screen's edge", width)
		}
	}

	b.Fill("Flow", "nope")
	b.ClickText("Show")
	b.WaitText("that match the filters")

	if status := b.NavigateStatus(e.in.APIURL() + "/t/acme/reports?from=yesterday"); status != http.StatusBadRequest {
		t.Errorf("a bad day: HTTP %d, want 400", status)
	}
	b.WaitText("is not a day")
	if !b.Bool(`document.querySelector('#from').getAttribute('aria-invalid') === 'true'`) {
		t.Errorf("the bad day's field is not marked invalid")
	}
	b.Accessibility(t)
}
