package rest_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncline/syncline/connectors/rest"
	"github.com/syncline/syncline/pkg/connector"
	"github.com/syncline/syncline/pkg/connector/connectortest"
)

// cursorAPI is a small API of the cursor style, which json-server does not have: GET
// /events?changed_since=<ms>&limit=<n>[&after=<cursor>] answers {"data": [...], "paging":
// {"next": cursor or null}}, sorted by (changed, id), its cursor the last record's
// (changed, id), so that it stays good while records change.
type cursorAPI struct {
	mu   sync.Mutex
	rows map[string]map[string]any
}

func (c *cursorAPI) serve(w http.ResponseWriter, r *http.Request, _ int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := r.URL.Query()
	if r.URL.Path != "/events" {
		jsonAnswer(w, http.StatusNotFound, `{"message":"no such path"}`)
		return
	}
	since, _ := strconv.ParseInt(q.Get("changed_since"), 10, 64)
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 {
		jsonAnswer(w, http.StatusBadRequest, `{"message":"limit is required"}`)
		return
	}
	afterAt, afterID := int64(-1), ""
	if a := q.Get("after"); a != "" {
		at, id, _ := strings.Cut(a, "~")
		afterAt, _ = strconv.ParseInt(at, 10, 64)
		afterID = id
	}
	changed := func(row map[string]any) int64 { return row["meta"].(map[string]any)["changed_ms"].(int64) }
	var rows []map[string]any
	for _, row := range c.rows {
		at, id := changed(row), row["id"].(string)
		if at >= since && (at > afterAt || at == afterAt && id > afterID) {
			rows = append(rows, row)
		}
	}
	slices.SortFunc(rows, func(a, b map[string]any) int {
		return cmp.Or(cmp.Compare(changed(a), changed(b)), strings.Compare(a["id"].(string), b["id"].(string)))
	})
	var next any
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		next = strconv.FormatInt(changed(last), 10) + "~" + last["id"].(string)
	}
	if rows == nil {
		rows = []map[string]any{}
	}
	body, _ := json.Marshal(map[string]any{"data": rows, "paging": map[string]any{"next": next}})
	jsonAnswer(w, http.StatusOK, string(body))
}

func cursorSettings(baseURL string) map[string]any {
	return map[string]any{
		"base_url": baseURL,
		"entities": map[string]any{"customer": map[string]any{"path": "/customers", "source": map[string]any{
			"path":           "/events",
			"changed_field":  "meta.changed_ms",
			"changed_format": "unix_ms",
			"since_param":    "changed_since",
			"records_field":  "data",
			"deleted_field":  "deleted_at",
			"page_size":      4,
			"pagination":     "cursor",
			"cursor_field":   "paging.next",
			"cursor_param":   "after",
			"limit_param":    "limit",
		}}},
	}
}

func TestSourceConformanceCursorStyle(t *testing.T) {
	api := &cursorAPI{rows: map[string]map[string]any{}}
	srv := newAPI(t, api.serve)
	connectortest.RunSource(t, connectortest.SourceHarness{
		Open: func(t *testing.T) connector.Source {
			return openSource(t, cursorSettings(srv.URL), localEnv(t, nil))
		},
		Entity: "customer",
		Put: func(_ *testing.T, key string, fields map[string]string, at time.Time) {
			row := map[string]any{"id": key, "meta": map[string]any{"changed_ms": at.UnixMilli()}}
			for k, v := range fields {
				row[k] = v
			}
			api.mu.Lock()
			defer api.mu.Unlock()
			api.rows[key] = row
		},
		Delete: func(_ *testing.T, key string, at time.Time) {
			api.mu.Lock()
			defer api.mu.Unlock()
			api.rows[key] = map[string]any{"id": key, "deleted_at": at.Format(time.RFC3339), "meta": map[string]any{"changed_ms": at.UnixMilli()}}
		},
		Reset: func(*testing.T) {
			api.mu.Lock()
			defer api.mu.Unlock()
			api.rows = map[string]map[string]any{}
		},
	})
}

func TestSourceThrottleWithRetryAfterIsWaitedOut(t *testing.T) {
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			jsonAnswer(w, http.StatusTooManyRequests, `{"message":"rate limit exceeded"}`)
			return
		}
		jsonAnswer(w, http.StatusOK, `[{"id": 1, "name": "Ada", "updatedAt": "2026-03-01T12:00:00.000Z"}]`)
	})
	src := openSource(t, pollSettings(srv.URL, rest.PagePages, 4, nil), localEnv(t, nil))
	start := time.Now()
	p, err := src.Read(context.Background(), "customer", "")
	if err != nil || len(p.Changes) != 1 || p.Changes[0].Key != "1" {
		t.Fatalf("Read = %+v, %v; want record 1 after the wait", p, err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("the read took %s; the API asked for a second's wait", waited)
	}
	if got := srv.got(); len(got) != 2 || got[0] != got[1] {
		t.Fatalf("server got %q, want the same GET twice", got)
	}
}

func TestSourceThrottleLongerThanTheTimeoutFailsTheRead(t *testing.T) {
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Header().Set("Retry-After", "3600")
		jsonAnswer(w, http.StatusTooManyRequests, `{"message":"come back in an hour"}`)
	})
	src := openSource(t, pollSettings(srv.URL, rest.PagePages, 4, nil), localEnv(t, nil))
	_, err := src.Read(context.Background(), "customer", "")
	var te *connector.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter < 59*time.Minute {
		t.Fatalf("Read error = %v, want a throttle of an hour", err)
	}
	if n := len(srv.got()); n != 1 {
		t.Fatalf("the API got %d requests, want 1: an hour's wait does not fit in the timeout", n)
	}
}

// TestSourceAnswersItCannotUse checks that an answer a poll cannot trust fails the read with
// a message naming what to fix, instead of moving the cursor over records it did not read.
func TestSourceAnswersItCannotUse(t *testing.T) {
	for _, tt := range []struct {
		name   string
		body   func(n int) string
		header map[string]string
		extra  map[string]any
		want   []string
	}{
		{name: "not sorted", body: func(int) string {
			return `[{"id": 2, "updatedAt": "2026-03-01T12:00:05.000Z"}, {"id": 1, "updatedAt": "2026-03-01T12:00:00.000Z"}]`
		}, want: []string{`the API did not sort the records by updatedAt: record "1" (2026-03-01T12:00:00.000Z) came after one changed at 2026-03-01T12:00:05Z`, "settings.entities.customer.source.sort"}},
		{name: "since ignored", body: func(n int) string {
			if n == 1 {
				return `[{"id": 1, "updatedAt": "2026-03-01T12:00:05.000Z"}]`
			}
			return `[{"id": 0, "updatedAt": "2026-03-01T11:00:00.000Z"}, {"id": 1, "updatedAt": "2026-03-01T12:00:05.000Z"}]`
		}, want: []string{`record "0" changed at 2026-03-01T11:00:00.000Z, before the updatedAt_gte=2026-03-01T12:00:05.000Z asked for`, "since_param"}},
		{name: "not a list", body: func(int) string { return `{"items": []}` },
			want: []string{"answered with JSON that is not a list", "settings.entities.customer.source.records_field"}},
		{name: "no records field", extra: map[string]any{"records_field": "data.items"}, body: func(int) string { return `{"data": {}}` },
			want: []string{`answered with no list in its field "data.items"`}},
		{name: "no changed field", body: func(int) string { return `[{"id": 7, "updated": "2026-03-01T12:00:05.000Z"}]` },
			want: []string{`entry 0 (record "7") has no "updatedAt" field (changed_field)`}},
		{name: "no key", body: func(int) string { return `[{"updatedAt": "2026-03-01T12:00:05.000Z"}]` },
			want: []string{`entry 0 has no "id" field with a string or number (key_field)`}},
		{name: "milliseconds for rfc3339", body: func(int) string { return `[{"id": 7, "updatedAt": 1772366405000}]` },
			want: []string{`(record "7") has a updatedAt that is 1772366405000, not an RFC 3339 time (changed_format rfc3339): set changed_format to unix_ms`}},
		{name: "rfc3339 for unix", extra: map[string]any{"changed_format": "unix"}, body: func(int) string { return `[{"id": 7, "updatedAt": "2026-03-01T12:00:05Z"}]` },
			want: []string{`not a number of seconds since 1970 (changed_format unix); set changed_format to rfc3339`}},
		{name: "odd deleted flag", extra: map[string]any{"deleted_field": "gone"}, body: func(int) string { return `[{"id": 7, "gone": [1], "updatedAt": "2026-03-01T12:00:05Z"}]` },
			want: []string{`has a gone that is [1], not true or false, or a deleted-at time (deleted_field)`}},
		{name: "link elsewhere", extra: map[string]any{"pagination": "link", "page_size": 2},
			header: map[string]string{"Link": `<https://elsewhere.example.com/customers?_page=2>; rel="next"`},
			body: func(int) string {
				return `[{"id": 1, "updatedAt": "2026-03-01T12:00:00.000Z"}, {"id": 2, "updatedAt": "2026-03-01T12:00:00.000Z"}]`
			}, want: []string{`the Link header's next "https://elsewhere.example.com/customers?_page=2" is not on http://127.0.0.1`, "pagination"}},
		{name: "html", header: map[string]string{"Content-Type": "text/html"}, body: func(int) string { return `<html><title>Sign in</title></html>` },
			want: []string{"answered 200 with text/html, not JSON", `"Sign in"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				if w.Header().Get("Content-Type") == "" {
					w.Header().Set("Content-Type", "application/json")
				}
				_, _ = w.Write([]byte(tt.body(n)))
			})
			src := openSource(t, pollSettings(srv.URL, rest.PagePages, 4, tt.extra), localEnv(t, nil))
			cursor := ""
			var err error
			for range 3 {
				var p connector.Page
				if p, err = src.Read(context.Background(), "customer", cursor); err != nil {
					break
				}
				cursor = p.Cursor
			}
			if err == nil {
				t.Fatal("the reads took the answer")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
		})
	}
}

// TestSourceRefusesCursorsItDidNotWrite refuses a cursor of another source, another entity,
// or another changed field, saying how to start again.
func TestSourceRefusesCursorsItDidNotWrite(t *testing.T) {
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		jsonAnswer(w, http.StatusOK, `[{"id": 1, "updatedAt": "2026-03-01T12:00:00.000Z", "changed": "2026-03-01T12:00:00.000Z"}]`)
	})
	settings := pollSettings(srv.URL, rest.PagePages, 4, nil)
	entities := settings["entities"].(map[string]any)
	entities["product"] = map[string]any{"path": "/products", "source": map[string]any{"changed_field": "updatedAt", "since_param": "updatedAt_gte"}}
	src := openSource(t, settings, localEnv(t, nil))
	p, err := src.Read(context.Background(), "customer", "")
	if err != nil || !strings.HasPrefix(p.Cursor, "rest1.") {
		t.Fatalf("Read = %+v, %v", p, err)
	}
	other := pollSettings(srv.URL, rest.PagePages, 4, map[string]any{"changed_field": "changed"})
	for _, tt := range []struct {
		name   string
		src    connector.Source
		entity string
		cursor string
		want   string
	}{
		{"foreign", src, "customer", "1772366400:7", `the cursor "1772366400:7" is not one the rest source (format rest1) wrote; reset the flow's cursor`},
		{"broken", src, "customer", p.Cursor[:len(p.Cursor)-3], "is not one the rest source (format rest1) wrote"},
		{"another entity", src, "product", p.Cursor, "the cursor was written reading customer records, not product"},
		{"another changed field", openSource(t, other, localEnv(t, nil)), "customer", p.Cursor, "the cursor was written reading the changed field updatedAt, and the settings now name changed"},
		{"an entity not polled", src, "order", p.Cursor, `the endpoint polls no "order" entity; settings.entities has source settings for customer, product`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.src.Read(context.Background(), tt.entity, tt.cursor)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read gave %v, want %q", err, tt.want)
			}
		})
	}
}
