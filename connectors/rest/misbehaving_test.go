package rest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/connector"
)

// api is a test server of our own, for the answers json-server never gives: throttles,
// errors, HTML, huge and slow answers. It records the requests it got.
type api struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string // "METHOD /path?query body"
}

func newAPI(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, n int)) *api {
	t.Helper()
	a := &api{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.requests = append(a.requests, r.Method+" "+r.URL.RequestURI()+" "+string(body))
		n := len(a.requests)
		a.mu.Unlock()
		handler(w, r, n)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *api) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

func customerSettings(baseURL string, extra map[string]any) map[string]any {
	s := map[string]any{
		"base_url": baseURL,
		"timeout":  "5s",
		"entities": map[string]any{"customer": map[string]any{"path": "/customers", "lookup": map[string]any{"email": "email"}}},
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

func jsonAnswer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func create(t *testing.T, target connector.Target) ([]connector.Result, error) {
	t.Helper()
	return target.Write(context.Background(), "customer", []connector.Write{
		{Op: connector.WriteCreate, Key: "crm-1", Payload: object(t, map[string]any{"name": "Ada", "email": "ada@example.com"})},
	})
}

func TestThrottleWithRetryAfterIsWaitedOut(t *testing.T) {
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			jsonAnswer(w, http.StatusTooManyRequests, `{"message":"rate limit exceeded"}`)
			return
		}
		jsonAnswer(w, http.StatusCreated, `{"id":"c-9","name":"Ada"}`)
	})
	target := open(t, customerSettings(srv.URL, nil), localEnv(t, nil))
	results, err := create(t, target)
	if err != nil || results[0].Err != nil || results[0].TargetID != "c-9" {
		t.Fatalf("create = %+v, %v; want c-9 after the wait", results, err)
	}
	got := srv.got()
	if len(got) != 2 || got[0] != got[1] || !strings.Contains(got[0], `"external_ref":"crm-1"`) {
		t.Fatalf("server got %q, want the POST with the reference twice", got)
	}
}

func TestAnswersTheTargetCannotUse(t *testing.T) {
	huge := strings.Repeat("x", 10<<20)
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request, n int)
		timeout string
		// op is find or create; refusal says the create's result holds the error, not the call.
		op        string
		refusal   bool
		throttled bool
		want      []string
	}{
		{name: "HTML page for a lookup", op: "find", want: []string{"GET /customers?email=ada%40example.com answered 200 with text/html; charset=utf-8, not JSON", `an HTML page titled "Sign in – Shop"`},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Sign in &ndash; Shop</title></head><body>...</body></html>")
			}},
		{name: "HTML page for a create", op: "create", want: []string{"POST /customers answered 200 with text/html, not JSON (an HTML page titled \"Sign in\")"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = io.WriteString(w, "<html><head><title>Sign in</title></head></html>")
			}},
		{name: "HTML error page for a create", op: "create", refusal: true, want: []string{`record "crm-1"`, "POST /customers answered 404 Not Found", "an HTML page"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, "<html><body><h1>Not here</h1></body></html>")
			}},
		{name: "10 MiB with a length", op: "find", want: []string{"answered 200 with 10485760 bytes, over the 1 MiB the rest target reads"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", strconv.Itoa(len(huge)))
				_, _ = io.WriteString(w, huge)
			}},
		{name: "10 MiB streamed", op: "find", want: []string{"answered 200 with more, over the 1 MiB the rest target reads"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Content-Type", "application/json")
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, `["`+huge+`"]`)
			}},
		{name: "server error", op: "create", want: []string{"POST /customers answered 500 Internal Server Error (database is locked)"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				jsonAnswer(w, http.StatusInternalServerError, `{"error":{"message":"database is locked"}}`)
			}},
		{name: "bad gateway in plain text", op: "find", want: []string{"answered 502 Bad Gateway (upstream shop-1 is down)"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				http.Error(w, "upstream shop-1 is down", http.StatusBadGateway)
			}},
		{name: "slow answer", op: "create", timeout: "300ms", want: []string{"POST /customers: no answer within 300ms (settings.timeout)"},
			handler: func(_ http.ResponseWriter, r *http.Request, _ int) {
				select {
				case <-r.Context().Done():
				case <-time.After(time.Minute):
				}
			}},
		{name: "unavailable without Retry-After", op: "find", timeout: "300ms", throttled: true, want: []string{"answered 503 Service Unavailable (down for maintenance)"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				jsonAnswer(w, http.StatusServiceUnavailable, `{"message":"down for maintenance"}`)
			}},
		{name: "validation errors", op: "create", refusal: true, want: []string{"answered 422 Unprocessable Entity (email is taken; phone is too short)"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				jsonAnswer(w, http.StatusUnprocessableEntity, `{"errors":[{"message":"email is taken"},{"message":"phone is too short"}]}`)
			}},
		{name: "an answer that echoes the record", op: "create", refusal: true, want: []string{"answered 400 Bad Request (no message; the answer's fields are email, name)"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				jsonAnswer(w, http.StatusBadRequest, `{"name":"Ada","email":"ada@example.com"}`)
			}},
		{name: "created without an id", op: "create", want: []string{`POST /customers answered 201 without the new record's id: no "id" field`, "settings.entities.customer.id_field"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				jsonAnswer(w, http.StatusCreated, `{"name":"Ada"}`)
			}},
		{name: "a list inside an object", op: "find", want: []string{"answered with JSON that is not a list; if the list is a field of an object, name it in settings.entities.customer.items_field"},
			handler: func(w http.ResponseWriter, _ *http.Request, _ int) {
				jsonAnswer(w, http.StatusOK, `{"data":[]}`)
			}},
		{name: "a redirect", op: "find", want: []string{"answered 301 Moved Permanently", "redirected to https://shop.example.com/customers; set settings.base_url"},
			handler: func(w http.ResponseWriter, r *http.Request, _ int) {
				http.Redirect(w, r, "https://shop.example.com/customers", http.StatusMovedPermanently)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newAPI(t, tt.handler)
			extra := map[string]any{}
			if tt.timeout != "" {
				extra["timeout"] = tt.timeout
			}
			target := open(t, customerSettings(srv.URL, extra), localEnv(t, nil))
			var err error
			switch tt.op {
			case "find":
				var found []connector.Found
				found, err = target.Find(context.Background(), "customer", "email", []string{"ada@example.com"})
				if err == nil {
					t.Fatalf("Find = %+v, want an error", found)
				}
			case "create":
				var results []connector.Result
				results, err = create(t, target)
				if tt.refusal {
					if err != nil {
						t.Fatalf("Write: %v, want the record refused in its result", err)
					}
					err = results[0].Err
				} else if err == nil {
					t.Fatalf("Write = %+v, want the call to fail", results)
				}
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			var te *connector.ThrottledError
			if errors.As(err, &te) != tt.throttled {
				t.Errorf("error %v: throttled %v, want %v", err, !tt.throttled, tt.throttled)
			}
			if strings.Contains(err.Error(), "xxxxxxxx") {
				t.Errorf("error holds the answer's body")
			}
		})
	}
}

func TestConnectionRefusedIsAnOutage(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	target := open(t, customerSettings(url, nil), localEnv(t, nil))
	_, err := create(t, target)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Write to a closed port = %v, want the connection refused", err)
	}
	var te *connector.ThrottledError
	if errors.As(err, &te) {
		t.Errorf("a refused connection is a throttle: %v", err)
	}
	if err := target.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "entity customer") {
		t.Errorf("Check on a closed port = %v, want an error naming the entity", err)
	}
}

func TestFindKeepsOnlyExactMatches(t *testing.T) {
	// An API whose "filter" is a search: it answers partial and case-blind matches too.
	srv := newAPI(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		jsonAnswer(w, http.StatusOK, `{"data":[
			{"id":1,"email":"ada@example.com","externalRef":"crm-1"},
			{"id":2,"email":"ADA@example.com"},
			{"id":3,"email":"ada@example.com.au"},
			{"id":4,"name":"no e-mail at all"}]}`)
	})
	settings := customerSettings(srv.URL, nil)
	settings["entities"] = map[string]any{"customer": map[string]any{"path": "/v2/customers", "items_field": "data", "ref_field": "externalRef",
		"lookup": map[string]any{"email": "filter[email]"}}}
	target := open(t, settings, localEnv(t, nil))
	found, err := target.Find(context.Background(), "customer", "email", []string{"ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != "1" || found[0].Value != "ada@example.com" {
		t.Fatalf("Find = %+v, want the one exact match, id 1", found)
	}
	found, err = target.Find(context.Background(), "customer", connector.FieldExternalRef, []string{"crm-1", "crm-1"})
	if err != nil || len(found) != 1 || found[0].ID != "1" {
		t.Fatalf("Find by reference = %+v, %v; want id 1 once", found, err)
	}
	if got := srv.got(); !strings.HasPrefix(got[0], "GET /v2/customers?filter%5Bemail%5D=ada%40example.com ") || !strings.HasPrefix(got[1], "GET /v2/customers?externalRef=crm-1 ") || len(got) != 2 {
		t.Errorf("server got %q, want one lookup per distinct value with the configured parameters", got)
	}
}

func TestCreatedIDFromLocation(t *testing.T) {
	srv := newAPI(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Location", "/api/customers/c%2F42")
		w.WriteHeader(http.StatusCreated)
	})
	target := open(t, customerSettings(srv.URL+"/api", nil), localEnv(t, nil))
	results, err := create(t, target)
	if err != nil || results[0].TargetID != "c/42" {
		t.Fatalf("create = %+v, %v; want the id c/42 from Location", results, err)
	}
	results, err = target.Write(context.Background(), "customer", []connector.Write{{Op: connector.WriteUpdate, Key: "crm-1", ID: "c/42", Payload: object(t, map[string]any{"name": "Ada L."})}})
	if err != nil || results[0].Err != nil {
		t.Fatalf("update = %+v, %v", results, err)
	}
	if got := srv.got(); !strings.HasPrefix(got[0], "POST /api/customers ") || got[1] != `PATCH /api/customers/c%2F42 {"name":"Ada L."}` {
		t.Errorf("server got %q, want the POST under the base path and the PATCH of the escaped id", got)
	}
}

func TestTargetsSharingABudgetKeepItsConcurrency(t *testing.T) {
	var inFlight, most atomic.Int64
	srv := newAPI(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		now := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		// Hold the request a moment so that others would overlap it if the budget let them.
		time.Sleep(2 * time.Millisecond)
		jsonAnswer(w, http.StatusCreated, fmt.Sprintf(`{"id":%d}`, n))
	})
	for _, limit := range []int{1, 2} {
		most.Store(0)
		budget := connector.NewBudget(connector.BudgetConfig{MaxConcurrency: limit})
		// Two flows writing to one endpoint: two targets, one budget.
		targets := []connector.Target{open(t, customerSettings(srv.URL, nil), localEnv(t, budget)), open(t, customerSettings(srv.URL, nil), localEnv(t, budget))}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				ctx := connector.WithFlow(context.Background(), fmt.Sprint("flow-", i%2))
				for j := range 5 {
					results, err := targets[i%2].Write(ctx, "customer", []connector.Write{{Op: connector.WriteCreate, Key: fmt.Sprintf("crm-%d-%d", i, j), Payload: object(t, map[string]any{"name": "x"})}})
					if err != nil || results[0].Err != nil {
						t.Errorf("create: %v %v", err, results)
					}
				}
			})
		}
		wg.Wait()
		if got := most.Load(); got > int64(limit) {
			t.Errorf("max_concurrency %d: the API saw %d requests at once", limit, got)
		}
	}
}

func TestABudgetBackingOffPastTheTimeoutIsAThrottle(t *testing.T) {
	srv := newAPI(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		jsonAnswer(w, http.StatusCreated, `{"id":1}`)
	})
	budget := connector.NewBudget(connector.BudgetConfig{})
	// Another flow writing to the endpoint was told to wait an hour.
	budget.Throttled(context.Background(), time.Hour)
	target := open(t, customerSettings(srv.URL, nil), localEnv(t, budget))
	_, err := create(t, target)
	var te *connector.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter < 58*time.Minute {
		t.Fatalf("Write while the budget backs off = %v, want a throttle of about an hour", err)
	}
	if got := srv.got(); len(got) != 0 {
		t.Errorf("the API got %q while the budget backs off", got)
	}
}
