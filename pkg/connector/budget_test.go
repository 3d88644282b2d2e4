package connector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/syncline/syncline/pkg/connector"
)

func TestBudgetNeverExceedsItsConcurrency(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, limit := range []int{1, 2, 5} {
		b := connector.NewBudget(connector.BudgetConfig{MaxConcurrency: limit})
		var inFlight, most atomic.Int64
		var wg sync.WaitGroup
		for range 40 {
			spins := rng.IntN(1000)
			wg.Go(func() {
				release, err := b.Acquire(context.Background())
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				for range spins {
					runtime.Gosched()
				}
				inFlight.Add(-1)
				release()
				release() // a second call gives back nothing more
			})
		}
		wg.Wait()
		if got := most.Load(); got > int64(limit) {
			t.Errorf("concurrency %d: %d requests ran at once", limit, got)
		}
		// Every slot is free again: limit requests start together.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var releases []func()
		for range limit {
			release, err := b.Acquire(ctx)
			if err != nil {
				t.Fatalf("concurrency %d: a slot is still taken after every request ended: %v", limit, err)
			}
			releases = append(releases, release)
		}
		for _, r := range releases {
			r()
		}
	}
}

// TestBudgetLetsEveryRequestThrough runs flows that share a budget, some of whose requests
// are throttled, and checks that each request gets its turn: the budget slows requests down,
// it never loses one.
func TestBudgetLetsEveryRequestThrough(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for run := range 5 {
		cfg := connector.BudgetConfig{RequestsPerSecond: 200 + rng.IntN(2000), MaxConcurrency: rng.IntN(4)}
		b := connector.NewBudget(cfg)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var wg sync.WaitGroup
		var done atomic.Int64
		for flow := range 4 {
			throttleEvery := 10 + rng.IntN(40)
			wg.Go(func() {
				ctx := connector.WithFlow(ctx, fmt.Sprint("flow-", flow))
				for i := range 50 {
					release, err := b.Acquire(ctx)
					if err != nil {
						t.Errorf("run %d (%+v): flow %d, request %d: %v", run, cfg, flow, i, err)
						return
					}
					if i%throttleEvery == throttleEvery-1 {
						b.Throttled(ctx, 5*time.Millisecond)
					}
					release()
					done.Add(1)
				}
			})
		}
		wg.Wait()
		cancel()
		if n := done.Load(); n != 200 {
			t.Fatalf("run %d (%+v): %d of 200 requests went through", run, cfg, n)
		}
		if r := b.Rate(); r <= 0 || r > float64(cfg.RequestsPerSecond) {
			t.Errorf("run %d: effective rate %v outside (0, %d]", run, r, cfg.RequestsPerSecond)
		}
	}
}

func TestAcquireEndsWithItsContext(t *testing.T) {
	t.Run("behind a back-off", func(t *testing.T) {
		b := connector.NewBudget(connector.BudgetConfig{})
		b.Throttled(context.Background(), time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := b.Acquire(ctx)
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Acquire = %v, want context.Canceled", err)
		}
	})
	t.Run("behind a back-off past the deadline", func(t *testing.T) {
		b := connector.NewBudget(connector.BudgetConfig{MaxConcurrency: 1})
		b.Throttled(context.Background(), time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := b.Acquire(ctx)
		var te *connector.ThrottledError
		if !errors.As(err, &te) || te.RetryAfter < 58*time.Minute || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire = %v, want at once a throttle of about an hour that is a deadline error too", err)
		}
		// The slot it did not use is free: the next call meets the back-off again, not a
		// taken slot (which would hold it until its deadline).
		if _, err := b.Acquire(ctx); !errors.As(err, &te) {
			t.Fatalf("Acquire after = %v, want the throttle again", err)
		}
	})
	t.Run("behind a busy slot", func(t *testing.T) {
		b := connector.NewBudget(connector.BudgetConfig{MaxConcurrency: 1})
		release, err := b.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := b.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire = %v, want context.DeadlineExceeded", err)
		}
		release()
		// The slot the ended wait did not get is free.
		release, err = b.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		release()
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour},
	} {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Retry-After", tt.header)
		}
		if got := connector.RetryAfter(h, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}

// throttlingServer answers 429 (or status) with retryAfter to the first throttled requests and
// 200 with the request's body after that, and records when each request came.
type throttlingServer struct {
	*httptest.Server
	mu        sync.Mutex
	arrivals  []time.Time
	bodies    []string
	throttled int
}

func newThrottlingServer(t *testing.T, status, throttled int, retryAfter string) *throttlingServer {
	s := &throttlingServer{throttled: throttled}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.arrivals = append(s.arrivals, time.Now())
		s.bodies = append(s.bodies, string(body))
		n := len(s.arrivals)
		s.mu.Unlock()
		if n <= s.throttled {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			http.Error(w, "slow down", status)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *throttlingServer) requests() ([]time.Time, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals...), append([]string(nil), s.bodies...)
}

func TestTransportWaitsOutRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := newThrottlingServer(t, status, 1, "1")
			reg := prometheus.NewRegistry()
			metrics, err := connector.NewBudgetMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			b := connector.NewBudget(connector.BudgetConfig{RequestsPerSecond: 50}, connector.WithBudgetMetrics(metrics, "acme", "shop"))
			client := &http.Client{Transport: b.Transport(nil)}
			ctx, cancel := context.WithTimeout(connector.WithFlow(context.Background(), "customers"), time.Minute)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(`{"name":"Ada"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != `{"name":"Ada"}` {
				t.Fatalf("answer %d %q, want 200 with the body sent again", resp.StatusCode, body)
			}
			arrivals, bodies := srv.requests()
			if len(arrivals) != 2 || bodies[1] != bodies[0] {
				t.Fatalf("server saw %d requests with bodies %q, want the throttled one and its retry", len(arrivals), bodies)
			}
			if gap := arrivals[1].Sub(arrivals[0]); gap < time.Second {
				t.Errorf("the retry came %s after the throttled request, before Retry-After's second", gap)
			}
			if got := counterValue(t, reg, "syncline_budget_throttles_total", "acme", "shop", "customers"); got != 1 {
				t.Errorf("throttles counted for flow customers = %v, want 1", got)
			}
			if got := histogramSum(t, reg, "syncline_budget_wait_seconds", "acme", "shop", "customers"); got < 0.9 {
				t.Errorf("time waited recorded for flow customers = %vs, want the second Retry-After asked for", got)
			}
			// Halved by the throttle, then a sixteenth of 50 back for the retry that worked.
			if r, want := b.Rate(), 25+50.0/16; r != want {
				t.Errorf("effective rate after a throttle and a success = %v, want %v", r, want)
			}
		})
	}
}

func TestTransportHandsBackAThrottleItCannotWaitOut(t *testing.T) {
	t.Run("the wait ends after the deadline", func(t *testing.T) {
		srv := newThrottlingServer(t, http.StatusTooManyRequests, 1, "30")
		b := connector.NewBudget(connector.BudgetConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp := get(t, ctx, b, srv.URL)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status %d, want the 429 handed back", resp.StatusCode)
		}
		if d := connector.RetryAfter(resp.Header, time.Now()); d != 30*time.Second {
			t.Errorf("Retry-After handed back = %s, want 30s", d)
		}
		if arrivals, _ := srv.requests(); len(arrivals) != 1 {
			t.Errorf("server saw %d requests, want 1", len(arrivals))
		}
	})
	t.Run("throttled every time", func(t *testing.T) {
		srv := newThrottlingServer(t, http.StatusTooManyRequests, 1000, "1")
		b := connector.NewBudget(connector.BudgetConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp := get(t, ctx, b, srv.URL)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status %d, want the 429 handed back", resp.StatusCode)
		}
		if arrivals, _ := srv.requests(); len(arrivals) != 4 {
			t.Errorf("server saw %d requests, want 4 (the request and three retries)", len(arrivals))
		}
	})
}

func get(t *testing.T, ctx context.Context, b *connector.Budget, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: b.Transport(nil)}).Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestBudgetMetricsNeedTheirOwnRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := connector.NewBudgetMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := connector.NewBudgetMetrics(reg); err == nil {
		t.Fatal("registering the budget metrics twice on one registry succeeded")
	}
}

func TestRegistryAddsTheBudgetToEveryTarget(t *testing.T) {
	r := connector.NewRegistry()
	spec := targetSpec("erp")
	spec.Budget = connector.BudgetConfig{MaxConcurrency: 1}
	if err := r.RegisterTarget(spec, nopFactory); err != nil {
		t.Fatal(err)
	}
	valid, err := r.ValidateSettings("erp", map[string]any{"url": "http://erp:8000"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := connector.BudgetFromSettings(valid), (connector.BudgetConfig{MaxConcurrency: 1}); got != want {
		t.Errorf("budget from defaults = %+v, want the spec's %+v", got, want)
	}
	valid, err = r.ValidateSettings("erp", map[string]any{"url": "http://erp:8000", "max_requests_per_second": 20, "max_concurrency": 4.0})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := connector.BudgetFromSettings(valid), (connector.BudgetConfig{RequestsPerSecond: 20, MaxConcurrency: 4}); got != want {
		t.Errorf("budget from settings = %+v, want %+v", got, want)
	}
	_, err = r.ValidateSettings("erp", map[string]any{"url": "http://erp:8000", "max_requests_per_second": -1, "max_concurrency": "two"})
	for _, want := range []string{"settings.max_requests_per_second: must be 0 (no limit) or more", "settings.max_concurrency: must be a whole number"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}

	// A target opened without a budget gets one from its settings.
	var got *connector.Budget
	spy := targetSpec("spy")
	spy.Reaches = func(map[string]any) ([]connector.Destination, error) { return nil, nil }
	if err := r.RegisterTarget(spy, func(ctx context.Context, s map[string]any, env connector.Env) (connector.Target, error) {
		got = env.Budget
		return nopFactory(ctx, s, env)
	}); err != nil {
		t.Fatal(err)
	}
	egress, err := connector.NewEgress(connector.EgressConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.OpenTarget(context.Background(), "spy", map[string]any{"url": "http://erp:8000", "max_concurrency": 3}, connector.Env{Tenant: "acme", Egress: egress}); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Config() != (connector.BudgetConfig{MaxConcurrency: 3}) {
		t.Errorf("budget handed to the factory = %+v, want one with max_concurrency 3", got)
	}

	own := targetSpec("own")
	own.Fields = append(own.Fields, connector.Field{Name: "max_concurrency", Type: connector.TypeInt, Summary: "mine"})
	if err := r.RegisterTarget(own, nopFactory); err == nil || !strings.Contains(err.Error(), "set its default with Spec.Budget") {
		t.Errorf("registering a target that declares max_concurrency itself: %v, want a refusal", err)
	}
	bad := targetSpec("bad")
	bad.Budget.RequestsPerSecond = -3
	if err := r.RegisterTarget(bad, nopFactory); err == nil {
		t.Error("registering a target with a negative default budget succeeded")
	}
}

func findMetric(t *testing.T, reg *prometheus.Registry, name, tenant, endpoint, flow string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tenant": tenant, "endpoint": endpoint, "flow": flow}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m
		}
	}
	t.Fatalf("no %s{tenant=%q,endpoint=%q,flow=%q}", name, tenant, endpoint, flow)
	return nil
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, tenant, endpoint, flow string) float64 {
	return findMetric(t, reg, name, tenant, endpoint, flow).GetCounter().GetValue()
}

func histogramSum(t *testing.T, reg *prometheus.Registry, name, tenant, endpoint, flow string) float64 {
	return findMetric(t, reg, name, tenant, endpoint, flow).GetHistogram().GetSampleSum()
}
