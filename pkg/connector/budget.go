package connector

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The two settings the registry adds to every target spec, read with BudgetFromSettings.
const (
	SettingMaxRequestsPerSecond = "max_requests_per_second"
	SettingMaxConcurrency       = "max_concurrency"
)

// How a budget backs off and recovers. A throttle halves the effective rate, down to a
// sixty-fourth of the configured one; each request that ends with no throttle since it began
// adds a sixteenth back, so a budget halved once is whole again after eight quiet requests.
// A throttle that names no Retry-After holds requests back for a second, doubling with each
// throttle in a row up to a minute. A Retry-After over an hour is taken as an hour: a date
// far off is more likely a wrong clock than a wish to be left alone for days.
const (
	budgetDecrease   = 0.5
	budgetFloor      = 64
	budgetSteps      = 16
	budgetBackoff    = time.Second
	budgetBackoffMax = time.Minute
	maxRetryAfter    = time.Hour
	// budgetAttempts bounds how often Transport sends one request that keeps being throttled
	// before it hands the throttling answer to the connector.
	budgetAttempts = 4
)

// BudgetConfig is what a target endpoint may be sent: every flow that writes to the endpoint
// shares it.
type BudgetConfig struct {
	// RequestsPerSecond is the most requests per second; 0 is no limit.
	RequestsPerSecond int
	// MaxConcurrency is the most requests at once; 0 is no limit.
	MaxConcurrency int
}

func isBudgetField(name string) bool {
	return name == SettingMaxRequestsPerSecond || name == SettingMaxConcurrency
}

// budgetFields are the settings every target gets, with the connector's defaults.
func budgetFields(def BudgetConfig) []Field {
	return []Field{
		{Name: SettingMaxRequestsPerSecond, Type: TypeInt, Default: int64(def.RequestsPerSecond),
			Summary: "the most requests per second that all flows writing to this endpoint send together, 0 for no limit; the rate halves when the target answers 429 or 503 and comes back step by step"},
		{Name: SettingMaxConcurrency, Type: TypeInt, Default: int64(def.MaxConcurrency),
			Summary: "the most requests at once that all flows writing to this endpoint send together, 0 for no limit"},
	}
}

// BudgetFromSettings reads the budget of a target endpoint from settings the registry
// validated (ValidateSettings fills in the connector's defaults).
func BudgetFromSettings(settings map[string]any) BudgetConfig {
	rate, _ := settings[SettingMaxRequestsPerSecond].(int64)
	conc, _ := settings[SettingMaxConcurrency].(int64)
	return BudgetConfig{RequestsPerSecond: int(rate), MaxConcurrency: int(conc)}
}

type flowKey struct{}

// WithFlow returns ctx naming the flow on whose behalf calls under it are made, so that a
// budget's metrics say which flow waited.
func WithFlow(ctx context.Context, flow string) context.Context {
	return context.WithValue(ctx, flowKey{}, flow)
}

// FlowFrom returns the flow WithFlow put in ctx, or "".
func FlowFrom(ctx context.Context) string {
	flow, _ := ctx.Value(flowKey{}).(string)
	return flow
}

// Budget is one target endpoint's rate and concurrency budget, shared by every flow writing to
// it. Each request to the target runs between Acquire and the release it returns: an HTTP
// connector gets that by sending through Transport, any other connector calls Acquire around
// each request itself. The platform never acquires around a whole Find or Write, which makes
// requests of its own: with a concurrency of one, the request inside would wait for ever.
//
// When the target says slow down (Throttled, or a 429 or 503 through Transport), the budget
// sends nothing before the time the target named, and halves its effective rate; requests that
// end with no throttle since they began bring it back step by step to the configured rate.
// A Budget is safe for concurrent use.
type Budget struct {
	cfg      BudgetConfig
	slots    chan struct{} // nil: no concurrency limit
	metrics  *BudgetMetrics
	tenant   string
	endpoint string

	mu sync.Mutex
	p  pacer
}

// BudgetOption configures a Budget.
type BudgetOption func(*Budget)

// WithBudgetMetrics records the budget's waits, throttles and rate in m, labelled tenant and
// endpoint (and the flow, from the context of each call).
func WithBudgetMetrics(m *BudgetMetrics, tenant, endpoint string) BudgetOption {
	return func(b *Budget) {
		b.metrics, b.tenant, b.endpoint = m, tenant, endpoint
	}
}

// NewBudget returns a budget that allows cfg. A negative limit is taken as no limit; the
// registry refuses one in settings.
func NewBudget(cfg BudgetConfig, opts ...BudgetOption) *Budget {
	cfg.RequestsPerSecond = max(cfg.RequestsPerSecond, 0)
	cfg.MaxConcurrency = max(cfg.MaxConcurrency, 0)
	b := &Budget{cfg: cfg, p: newPacer(cfg.RequestsPerSecond, time.Now())}
	if cfg.MaxConcurrency > 0 {
		b.slots = make(chan struct{}, cfg.MaxConcurrency)
	}
	for _, o := range opts {
		o(b)
	}
	b.metrics.setRate(b.tenant, b.endpoint, b.p.rate)
	return b
}

// Config returns the budget's configured limits.
func (b *Budget) Config() BudgetConfig { return b.cfg }

// Rate returns the effective requests per second: the configured rate, less while the budget
// recovers from a throttle; 0 when there is no limit.
func (b *Budget) Rate() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.p.rate
}

// Acquire waits for a slot, a token of the rate and the end of any back-off, and returns the
// function that gives the slot back when the request has ended (call it once; more calls do
// nothing). When the rate or a back-off holds the request past ctx's deadline, it returns at
// once a *ThrottledError with the wait, which wraps context.DeadlineExceeded: the flow then
// waits as the budget says instead of counting a failure of the target. If ctx ends first
// otherwise, it returns ctx's error. The flow named in ctx (WithFlow) is what the wait is
// recorded against.
func (b *Budget) Acquire(ctx context.Context) (release func(), err error) {
	start := time.Now()
	defer func() { b.metrics.observeWait(b.tenant, b.endpoint, FlowFrom(ctx), time.Since(start)) }()
	if b.slots != nil {
		select {
		case b.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for {
		b.mu.Lock()
		wait := b.p.take(time.Now())
		seen := b.p.throttles
		b.mu.Unlock()
		if wait == 0 {
			return sync.OnceFunc(func() { b.release(seen) }), nil
		}
		if !fits(ctx, wait) {
			if b.slots != nil {
				<-b.slots
			}
			return nil, &ThrottledError{RetryAfter: wait, Err: fmt.Errorf("the endpoint's request budget sends the next request in %s, after the call's deadline: %w",
				wait.Round(time.Millisecond), context.DeadlineExceeded)}
		}
		// The wait is looked at again when it ends: a throttle meanwhile may have moved it.
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if b.slots != nil {
				<-b.slots
			}
			return nil, ctx.Err()
		}
	}
}

// release ends a request that began when the budget had seen throttles throttles.
func (b *Budget) release(throttles uint64) {
	b.mu.Lock()
	if b.p.throttles == throttles {
		b.p.succeeded(time.Now())
	}
	rate := b.p.rate
	b.mu.Unlock()
	b.metrics.setRate(b.tenant, b.endpoint, rate)
	if b.slots != nil {
		<-b.slots
	}
}

// Throttled records that the target said slow down: no request starts before retryAfter has
// passed (or the budget's own back-off, when retryAfter is 0), and the effective rate halves.
// ctx names the flow whose request was throttled (WithFlow), for the metrics.
func (b *Budget) Throttled(ctx context.Context, retryAfter time.Duration) {
	b.mu.Lock()
	b.p.throttled(time.Now(), retryAfter)
	rate := b.p.rate
	b.mu.Unlock()
	b.metrics.throttled(b.tenant, b.endpoint, FlowFrom(ctx))
	b.metrics.setRate(b.tenant, b.endpoint, rate)
}

// delay is how long from now no request may start.
func (b *Budget) delay() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(time.Until(b.p.notBefore), 0)
}

// Transport returns rt (http.DefaultTransport when nil) running each request within the
// budget. A 429 or 503 answer is recorded as a throttle, with its Retry-After (seconds or an
// HTTP date); the request is then sent again after the wait when the wait ends before the
// request's context does and its body can be sent again (http.NewRequest's can), up to four
// times in all. Otherwise the throttling answer is returned as it is, for the connector to
// return a *ThrottledError (RetryAfter reads its header).
func (b *Budget) Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &budgetTransport{budget: b, next: rt}
}

type budgetTransport struct {
	budget *Budget
	next   http.RoundTripper
}

func (t *budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	sent := req
	for attempt := 1; ; attempt++ {
		release, err := t.budget.Acquire(ctx)
		if err != nil {
			closeBody(sent)
			return nil, fmt.Errorf("waiting for the request budget of %s: %w", req.URL.Host, err)
		}
		resp, err := t.next.RoundTrip(sent)
		if err != nil {
			release()
			return nil, err
		}
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
			release()
			return resp, nil
		}
		t.budget.Throttled(ctx, RetryAfter(resp.Header, time.Now()))
		release()
		if attempt == budgetAttempts || !fits(ctx, t.budget.delay()) {
			return resp, nil
		}
		again, err := rewind(req)
		if err != nil || again == nil {
			return resp, nil
		}
		// Read a little of the answer so the connection can serve the next request.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
		sent = again
	}
}

// fits reports whether a wait of d ends before ctx's deadline, if it has one.
func fits(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Now().Add(d).Before(deadline)
}

// rewind returns a copy of req with its body from the start, or nil when it cannot have one.
func rewind(req *http.Request) (*http.Request, error) {
	again := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return again, nil
	}
	if req.GetBody == nil {
		return nil, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	again.Body = body
	return again, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// RetryAfter reads a Retry-After header: seconds or an HTTP date, relative to now. It
// returns 0 when there is none or it cannot be read, and at most an hour.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// pacer is a budget's rate rules, with the time given to each call so that they can be
// checked against a model with made-up times.
type pacer struct {
	limit     float64 // configured requests per second; 0: none
	rate      float64 // effective requests per second; 0 when limit is
	tokens    float64
	last      time.Time // when tokens were last topped up
	notBefore time.Time // no request starts before
	throttles uint64    // throttles ever, so a request knows whether one happened meanwhile
	streak    int       // throttles since the last success, for the back-off
}

func newPacer(limit int, now time.Time) pacer {
	p := pacer{limit: float64(limit), rate: float64(limit), last: now}
	p.tokens = p.burst()
	return p
}

// burst is how many tokens the bucket holds: a tenth of a second's worth, at least one, so
// that requests are spread over the second rather than sent all at its start.
func (p *pacer) burst() float64 { return max(1, p.rate/10) }

func (p *pacer) refill(now time.Time) {
	if now.After(p.last) {
		p.tokens = min(p.burst(), p.tokens+now.Sub(p.last).Seconds()*p.rate)
		p.last = now
	}
}

// take takes a token and returns 0 if a request may start at now, or how long to wait
// before asking again: until the back-off ends and the bucket holds a token by then.
func (p *pacer) take(now time.Time) time.Duration {
	from := now
	if now.Before(p.notBefore) {
		from = p.notBefore
	}
	if p.limit == 0 {
		return from.Sub(now)
	}
	p.refill(now)
	tokens := p.tokens
	if from.After(p.last) {
		tokens = min(p.burst(), tokens+from.Sub(p.last).Seconds()*p.rate)
	}
	// A token short by a rounding error is a token: the wait was computed to make it whole.
	if tokens >= 1-1e-9 {
		if from.Equal(now) {
			p.tokens--
			return 0
		}
		return from.Sub(now)
	}
	return from.Sub(now) + max(time.Duration(math.Ceil((1-tokens)/p.rate*float64(time.Second))), 1)
}

func (p *pacer) throttled(now time.Time, retryAfter time.Duration) {
	p.throttles++
	p.streak++
	wait := retryAfter
	if wait <= 0 {
		wait = budgetBackoff << min(p.streak-1, 6)
		wait = min(wait, budgetBackoffMax)
	}
	wait = min(wait, maxRetryAfter)
	if at := now.Add(wait); at.After(p.notBefore) {
		p.notBefore = at
	}
	if p.limit > 0 {
		p.refill(now)
		p.rate = max(p.rate*budgetDecrease, p.limit/budgetFloor)
		p.tokens = 0
	}
}

func (p *pacer) succeeded(now time.Time) {
	p.streak = 0
	if p.limit > 0 {
		p.refill(now)
		p.rate = min(p.limit, p.rate+p.limit/budgetSteps)
	}
}

// BudgetMetrics show how budgets hold flows back. A nil *BudgetMetrics records nothing.
type BudgetMetrics struct {
	wait      *prometheus.HistogramVec
	throttles *prometheus.CounterVec
	rate      *prometheus.GaugeVec
}

// NewBudgetMetrics registers the budget metrics on reg.
func NewBudgetMetrics(reg prometheus.Registerer) (*BudgetMetrics, error) {
	m := &BudgetMetrics{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncline_budget_wait_seconds",
			Help:    "Time a request to a target waited on the endpoint's budget (a free slot, the rate, a back-off) before it was sent.",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"tenant", "endpoint", "flow"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_budget_throttles_total",
			Help: "Times a target asked to slow down (429, 503, or its own limit).",
		}, []string{"tenant", "endpoint", "flow"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncline_budget_requests_per_second",
			Help: "An endpoint's effective rate: its configured max_requests_per_second, less while it recovers from a throttle; 0 is no limit.",
		}, []string{"tenant", "endpoint"}),
	}
	for _, c := range []prometheus.Collector{m.wait, m.throttles, m.rate} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the budget metrics: %w", err)
		}
	}
	return m, nil
}

func (m *BudgetMetrics) observeWait(tenant, endpoint, flow string, d time.Duration) {
	if m != nil {
		m.wait.WithLabelValues(tenant, endpoint, flow).Observe(d.Seconds())
	}
}

func (m *BudgetMetrics) throttled(tenant, endpoint, flow string) {
	if m != nil {
		m.throttles.WithLabelValues(tenant, endpoint, flow).Inc()
	}
}

func (m *BudgetMetrics) setRate(tenant, endpoint string, rate float64) {
	if m != nil {
		m.rate.WithLabelValues(tenant, endpoint).Set(rate)
	}
}
