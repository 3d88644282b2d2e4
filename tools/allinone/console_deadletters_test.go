package allinone_test

import (
	"context"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/browsertest"
	"github.com/syncline/syncline/pkg/ingest"
)

// secretNote is in the failed records and nowhere else: a page that holds it shows a record.
const secretNote = "porcelain-7731"

// unmappable is an order the orders flow cannot map: its total is not a number.
func unmappable(n int) []byte {
	return fmt.Appendf(nil, `{"number":"SO-%d","status":"paid","total":"ten","customer":{"email":"b@example.com"},"note":%q}`, n, secretNote)
}

// corrected is the record unmappable(n) should have been.
func corrected(n int) string {
	return fmt.Sprintf(`{"number":"SO-%d","status":"paid","total":10,"customer":{"email":"b@example.com"}}`, n)
}

// deadLettersEnv starts an instance with acme's and globex's orders flows, and two orders
// of acme the mapper could not map (remote ids M1 and M2) dead; it returns the letters by
// remote id, and the instance's log.
func deadLettersEnv(t *testing.T) (*env, map[string]*eventlogv1.DeadLetter, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	e := start(t, options{dir: t.TempDir(), driver: "sqlite", logger: slog.New(slog.NewJSONHandler(logs, nil))})
	e.dsn = tenantFile(t, e.dir, "acme", "erp.db")
	e.applyOrders("acme", "orders")
	e.dsn = tenantFile(t, e.dir, "globex", "erp.db")
	e.applyOrders("globex", "orders")
	e.publish(
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "M1", Version: 1, Payload: unmappable(1)},
		ingest.Change{Tenant: "acme", Endpoint: "shop", Entity: "order", Key: "M2", Version: 1, Payload: unmappable(2)},
	)
	letters := eventlogv1connect.NewDeadLetterServiceClient(http.DefaultClient, e.in.APIURL(), connect.WithInterceptors(auth.Bearer(e.in.AdminToken())))
	byKey := map[string]*eventlogv1.DeadLetter{}
	eventually(t, 30*time.Second, func() string {
		resp, err := letters.ListDeadLetters(context.Background(), &eventlogv1.ListDeadLettersRequest{Filter: &eventlogv1.DeadLetterFilter{Tenant: "acme"}})
		if err != nil {
			return err.Error()
		}
		for _, l := range resp.Letters {
			byKey[l.RemoteId] = l
		}
		if len(byKey) != 2 {
			return fmt.Sprintf("%d dead letters, want 2", len(byKey))
		}
		return ""
	})
	if byKey["M1"].GetCode() != "mapping_failed" || byKey["M2"].GetCode() != "mapping_failed" {
		t.Fatalf("dead letters: %v, want M1 and M2 refused by the mapper", byKey)
	}
	return e, byKey, logs
}

var newEvent = regexp.MustCompile(`Its new event is <code>([^<]+)</code>`)

// TestConsoleDeadLetters: the dead letters page lists a tenant's letters newest first, with
// filters; a letter's page does not hold its record until "Show the record" is posted, which
// the eventlog logs; a corrected record is saved (a bad one refused next to its box, the
// input kept), replayed after a confirmation and then created in the target; another letter
// is discarded; an integrator of another tenant sees nothing of them.
func TestConsoleDeadLetters(t *testing.T) {
	e, letters, logs := deadLettersEnv(t)
	m1, m2 := letters["M1"], letters["M2"]
	b := newBrowser(t, e.in.APIURL())
	status, body, _ := b.post("/login", url.Values{"token": {e.in.AdminToken()}, "next": {"/t/acme/deadletters"}})
	if status != http.StatusOK || !strings.Contains(body, "/t/acme/deadletters/"+m1.Id) || !strings.Contains(body, "/t/acme/deadletters/"+m2.Id) ||
		!strings.Contains(body, "mapping_failed") {
		t.Fatalf("the dead letters page: %d, want M1 and M2 linked with their code\n%s", status, body)
	}
	if strings.Contains(body, secretNote) {
		t.Errorf("the list holds a record\n%s", body)
	}
	if !strings.Contains(body, `href="/t/acme/deadletters" aria-current="page"`) {
		t.Errorf("the header's navigation does not mark the dead letters page\n%s", body)
	}
	// Newest first.
	newer, older := m2, m1
	if m1.DeadAt.AsTime().After(m2.DeadAt.AsTime()) {
		newer, older = m1, m2
	}
	if newer.DeadAt.AsTime().After(older.DeadAt.AsTime()) && strings.Index(body, newer.Id) > strings.Index(body, older.Id) {
		t.Errorf("%s died after %s but is listed below it", newer.RemoteId, older.RemoteId)
	}
	csrf := csrfField.FindStringSubmatch(body)[1]

	// Filters.
	for _, tc := range []struct {
		query     string
		want, not []string
	}{
		{"remote_id=M1", []string{m1.Id}, []string{m2.Id}},
		{"stage=mapper&code=mapping_failed&flow=orders&state=open", []string{m1.Id, m2.Id}, nil},
		{"stage=connector", []string{"No dead letters match"}, []string{m1.Id, m2.Id}},
		{"flow=invoices", []string{"No dead letters match"}, []string{m1.Id}},
	} {
		status, body := b.get("/t/acme/deadletters?" + tc.query)
		if status != http.StatusOK {
			t.Errorf("?%s: %d\n%s", tc.query, status, body)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("?%s does not show %q\n%s", tc.query, w, body)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(body, n) {
				t.Errorf("?%s shows %q", tc.query, n)
			}
		}
	}
	if status, body := b.get("/t/acme/deadletters?state=lost"); status != http.StatusBadRequest || !strings.Contains(body, "open, replayed or discarded") {
		t.Errorf("a state that does not exist: %d, want it refused saying which exist\n%s", status, body)
	}

	// A letter's page: what failed, not the record; the showing is a POST, and logged.
	m1Path := "/t/acme/deadletters/" + m1.Id
	status, body = b.get(m1Path)
	if status != http.StatusOK || !strings.Contains(body, "mapping_failed") || !strings.Contains(body, html.EscapeString(m1.Reason)) || !strings.Contains(body, "Show the record") {
		t.Fatalf("the letter's page: %d\n%s", status, body)
	}
	if strings.Contains(body, secretNote) || strings.Contains(logs.String(), "dead letter record shown") {
		t.Fatalf("the letter's page holds its record before it is asked for, or the log says it was shown\n%s", body)
	}
	if status, _ := b.get(m1Path + "/record"); status != http.StatusMethodNotAllowed {
		t.Errorf("GET of the record: %d, want it refused (a POST only, so nothing prefetches it)", status)
	}
	if status, body, _ := b.post(m1Path+"/record", url.Values{}); status != http.StatusForbidden || strings.Contains(body, secretNote) {
		t.Errorf("showing the record without the page's CSRF token: %d, want 403", status)
	}
	status, body, _ = b.post(m1Path+"/record", url.Values{"csrf": {csrf}})
	if status != http.StatusOK || !strings.Contains(body, secretNote) || !strings.Contains(body, `id="record-json"`) {
		t.Fatalf("Show the record: %d, want the record in the edit box\n%s", status, body)
	}
	if shown := logs.String(); !strings.Contains(shown, "dead letter record shown") || !strings.Contains(shown, m1.Id) || !strings.Contains(shown, `"by":"the admin token"`) {
		t.Errorf("showing the record was not logged with the letter and who asked")
	}

	// A record that is not a JSON object is refused next to the box, with the input kept.
	bad := `{"number":"SO-1",}`
	status, body, _ = b.post(m1Path+"/edit", url.Values{"csrf": {csrf}, "record": {bad}})
	if status != http.StatusBadRequest || !strings.Contains(body, `id="record-error"`) || !strings.Contains(body, "not JSON at byte 18") ||
		!strings.Contains(body, html.EscapeString(bad)) || !strings.Contains(body, `aria-invalid="true"`) {
		t.Fatalf("a bad record: %d, want it refused next to the box, with the input kept\n%s", status, body)
	}
	status, body, _ = b.post(m1Path+"/edit", url.Values{"csrf": {csrf}, "record": {corrected(1)}})
	if status != http.StatusOK || !strings.Contains(body, "The corrected record is saved") || strings.Contains(body, secretNote) {
		t.Fatalf("saving the corrected record: %d\n%s", status, body)
	}

	// Replay asks first, then sends the letter; the API log then has the record created.
	status, body, _ = b.post(m1Path+"/replay", url.Values{"csrf": {csrf}})
	if status != http.StatusOK || !strings.Contains(body, "Replay this dead letter?") || !strings.Contains(body, `name="confirm" value="yes"`) {
		t.Fatalf("Replay: %d, want a confirmation first\n%s", status, body)
	}
	if recs := e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "M1", Action: "created"}); len(recs) != 0 {
		t.Fatalf("the letter was replayed before the replay was confirmed: %v", recs)
	}
	status, body, _ = b.post(m1Path+"/replay", url.Values{"csrf": {csrf}, "confirm": {"yes"}})
	m := newEvent.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || !strings.Contains(body, "Replayed") {
		t.Fatalf("a confirmed replay: %d, want the new event shown\n%s", status, body)
	}
	eventually(t, 30*time.Second, func() string {
		for _, r := range e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "M1"}) {
			if r.EventId == m[1] && r.Action == "created" {
				return ""
			}
		}
		return "the replayed event " + m[1] + " is not in the API log as created"
	})
	if _, body := b.get("/t/acme/logs?remote_id=M1&action=created"); !strings.Contains(body, ">M1<") {
		t.Errorf("the API log page does not show M1 created\n%s", body)
	}

	// Discard asks first, then drops the letter: its record is gone.
	m2Path := "/t/acme/deadletters/" + m2.Id
	if status, body, _ := b.post(m2Path+"/discard", url.Values{"csrf": {csrf}}); status != http.StatusOK || !strings.Contains(body, "Discard this dead letter?") {
		t.Fatalf("Discard: %d, want a confirmation first\n%s", status, body)
	}
	if _, body := b.get("/t/acme/deadletters?state=discarded"); strings.Contains(body, m2.Id) {
		t.Fatal("the letter was discarded before the discard was confirmed")
	}
	status, body, _ = b.post(m2Path+"/discard", url.Values{"csrf": {csrf}, "confirm": {"yes"}})
	if status != http.StatusOK || !strings.Contains(body, "Discarded") || !strings.Contains(body, "discarded") || strings.Contains(body, "Show the record") {
		t.Fatalf("a confirmed discard: %d\n%s", status, body)
	}
	if status, body, _ := b.post(m2Path+"/record", url.Values{"csrf": {csrf}}); status != http.StatusBadRequest || !strings.Contains(body, "discarded") || strings.Contains(body, secretNote) {
		t.Errorf("the record of a discarded letter: %d, want it refused\n%s", status, body)
	}
	if _, body := b.get("/t/acme/deadletters?state=discarded"); !strings.Contains(body, m2.Id) || strings.Contains(body, m1.Id) {
		t.Errorf("the discarded letters are not M2 alone\n%s", body)
	}
	if status, body := b.get("/t/acme/deadletters/dlq:none"); status != http.StatusNotFound || !strings.Contains(body, "not found") {
		t.Errorf("a letter that does not exist: %d\n%s", status, body)
	}

	// An integrator of globex sees nothing of acme's letters: not the list, not a letter by
	// id, not through its own tenant's pages.
	rot, err := e.resource.RotateToken(context.Background(), &controlplanev1.RotateTokenRequest{Tenant: "globex", Integrator: "shop-to-erp"})
	if err != nil {
		t.Fatal(err)
	}
	g := newBrowser(t, e.in.APIURL())
	status, body, _ = g.post("/login", url.Values{"token": {rot.Token}, "next": {"/t/globex/deadletters"}})
	if status != http.StatusOK || !strings.Contains(body, "No dead letters match") {
		t.Fatalf("globex's integrator on its dead letters: %d\n%s", status, body)
	}
	gcsrf := csrfField.FindStringSubmatch(body)[1]
	for _, path := range []string{"/t/acme/deadletters", "/t/acme/deadletters?remote_id=M1", m1Path, "/t/globex/deadletters/" + m1.Id} {
		status, body := g.get(path)
		if (status != http.StatusForbidden && status != http.StatusNotFound) || strings.Contains(body, "M1") || strings.Contains(body, "mapping_failed") {
			t.Errorf("globex's integrator on %s: %d, want refused with nothing of acme's letter\n%s", path, status, body)
		}
	}
	for _, path := range []string{m1Path + "/record", "/t/globex/deadletters/" + m1.Id + "/record", "/t/globex/deadletters/" + m2.Id + "/replay",
		"/t/globex/deadletters/" + m1.Id + "/discard"} {
		status, body, _ := g.post(path, url.Values{"csrf": {gcsrf}, "confirm": {"yes"}})
		if (status != http.StatusForbidden && status != http.StatusNotFound) || strings.Contains(body, secretNote) || strings.Contains(body, "M1") {
			t.Errorf("globex's integrator posting %s: %d, want refused with nothing of acme's letter\n%s", path, status, body)
		}
	}
	if _, body := b.get(m1Path); !strings.Contains(body, "replayed") {
		t.Errorf("after globex's attempts M1 is no longer replayed\n%s", body)
	}
}

// TestConsoleDeadLettersInABrowser: in Chromium, open a dead letter from the list, show its
// record, fix it, replay it and follow the link to the API log; every page passes axe-core,
// fits 1280 and 390 px without scrolling sideways, and is kept as a screenshot.
func TestConsoleDeadLettersInABrowser(t *testing.T) {
	e, letters, _ := deadLettersEnv(t)
	m1 := letters["M1"]
	b := browsertest.New(t)
	b.Navigate(e.in.APIURL() + "/login?next=/t/acme/deadletters")
	b.Fill("Token", e.in.AdminToken())
	b.Press("\r")
	b.WaitText("Newest first")
	if got := b.Text("table"); !strings.Contains(got, "M1") || !strings.Contains(got, "mapping_failed") {
		t.Fatalf("the dead letters page does not show M1: %s", got)
	}
	b.Accessibility(t)
	b.Screenshots("console-dead-letters")

	b.ClickText("M1")
	b.WaitText("Show the record")
	if b.Bool(`document.documentElement.outerHTML.includes("` + secretNote + `")`) {
		t.Fatal("the letter's page holds its record before it is asked for")
	}
	b.Accessibility(t)
	b.Screenshots("console-dead-letter")

	b.ClickText("Show the record")
	b.WaitText("Save the corrected record")
	if got := b.Value("Record (JSON)"); !strings.Contains(got, secretNote) {
		t.Fatalf("the record box holds %q, want the record", got)
	}
	b.Accessibility(t)
	b.Screenshots("console-dead-letter-record")
	b.Fill("Record (JSON)", `{"number":"SO-1",}`)
	b.ClickText("Save the corrected record")
	b.WaitText("not JSON at byte 18")
	b.Accessibility(t)
	b.Fill("Record (JSON)", corrected(1))
	b.ClickText("Save the corrected record")
	b.WaitText("The corrected record is saved")

	b.ClickText("Replay")
	b.WaitText("Replay this dead letter?")
	b.Accessibility(t)
	b.ClickText("Yes, replay it")
	b.WaitText("Its new event is")
	eventually(t, 30*time.Second, func() string {
		if len(e.logRecords(&eventlogv1.QueryLogsRequest{Tenant: "acme", RemoteId: "M1", Action: "created"})) == 0 {
			return "M1 is not created"
		}
		return ""
	})
	b.ClickText("API log of M1")
	b.WaitText("Newest first")
	if got := b.Text("table"); !strings.Contains(got, "created") {
		t.Errorf("the API log of M1 does not show it created: %s", got)
	}

	for _, path := range []string{"/t/acme/deadletters", "/t/acme/deadletters/" + m1.Id} {
		b.Navigate(e.in.APIURL() + path)
		for _, width := range []int{390, 1280} {
			b.Viewport(width, 800)
			if b.Bool(`document.documentElement.scrollWidth > document.documentElement.clientWidth`) {
				t.Errorf("%s scrolls sideways at %d px", path, width)
			}
		}
	}
}
