package eventlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
	"github.com/syncline/syncline/pkg/envelope"
	"github.com/syncline/syncline/pkg/flowconfig"
	"github.com/syncline/syncline/pkg/secret"
	"github.com/syncline/syncline/pkg/stage"
	"github.com/syncline/syncline/services/eventlog/apilog"
)

// Headers of an alert request. The signature is HMAC-SHA256 of the body
// under the tenant's alert secret, in hex; the body carries the id and the
// time it was sent, so a receiver that checks the signature can also refuse
// a replayed or stale alert.
const (
	HeaderAlertSignature = "X-Syncline-Signature" // "sha256=<hex>"
	HeaderAlertTimestamp = "X-Syncline-Timestamp" // Unix seconds, as sentAt in the body
	HeaderAlertID        = "X-Syncline-Alert"     // the alert's id, the same on every retry
)

// AlertConfigs says where a tenant's alerts go: nil sends none.
// *flowconfig.Index is one, following the control plane's changes.
type AlertConfigs interface {
	Alerts(tenant string) *flowconfig.Alerts
}

var _ AlertConfigs = (*flowconfig.Index)(nil)

// Alert is the JSON body POSTed to a tenant's webhook: the tenant's failed
// and dead-lettered events since its previous alert, grouped by flow, and
// its flows paused by their circuit breaker or resumed.
type Alert struct {
	// ID is unique per alert and the same on every retry of it.
	ID     string    `json:"id"`
	Tenant string    `json:"tenant"`
	SentAt time.Time `json:"sentAt"`
	// Summary says it in one line, for a chat channel.
	Summary string `json:"summary"`
	// Failures counts every failure the alert covers, listed or not.
	Failures int `json:"failures"`
	// From and To are when the first and last of them were logged (or
	// of the flow changes, for an alert of those only).
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	Groups []AlertGroup `json:"groups"`
	// OtherFlowFailures counts failures of flows beyond the listed groups.
	OtherFlowFailures int `json:"otherFlowFailures,omitempty"`
	// Flows are the flows paused or resumed since the previous alert, in
	// the order it happened; OtherFlowChanges counts those beyond the
	// listed ones.
	Flows            []FlowChange `json:"flows,omitempty"`
	OtherFlowChanges int          `json:"otherFlowChanges,omitempty"`
}

// Flow states in an alert.
const (
	// FlowPaused: the flow's target failed several attempts in a row; its
	// events are held, in order, and go on when the target works again.
	FlowPaused = "paused"
	// FlowResumed: the target works again; the held events are being
	// pushed, oldest first.
	FlowResumed = "resumed"
)

// FlowChange is a flow paused by its circuit breaker, or resumed.
type FlowChange struct {
	Flow       string `json:"flow"`
	Integrator string `json:"integrator,omitempty"`
	// Endpoint is the flow's target.
	Endpoint string `json:"endpoint"`
	State    string `json:"state"`
	// Reason is the target's last error.
	Reason string `json:"reason,omitempty"`
	// Failures counts the failed attempts in a row, since Since.
	Failures int       `json:"failures"`
	Since    time.Time `json:"since"`
	At       time.Time `json:"at"`
}

// AlertGroup is one flow's failures in an alert.
type AlertGroup struct {
	Integrator string `json:"integrator,omitempty"`
	// Flow is empty for dead letters that no flow could be told for (an
	// event of an unknown endpoint or entity, say).
	Flow     string `json:"flow,omitempty"`
	Failures int    `json:"failures"`
	// Codes counts the failures by error code (mapping_failed,
	// target_rejected...).
	Codes map[string]int `json:"codes"`
	From  time.Time      `json:"from"`
	To    time.Time      `json:"to"`
	// Samples are the latest failures, oldest first; SamplesOmitted counts
	// the earlier ones left out, which LogQuery shows.
	Samples        []AlertSample `json:"samples"`
	SamplesOmitted int           `json:"samplesOmitted"`
	LogQuery       LogQuery      `json:"logQuery"`
}

// AlertSample is one failed event.
type AlertSample struct {
	EventID  string `json:"eventId"`
	RemoteID string `json:"remoteId"`
	Entity   string `json:"entity,omitempty"`
	// Stage is where it failed: mapper, dedup, connector...
	Stage string `json:"stage,omitempty"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error"`
	// DeadLetter: the event is kept in the dead-letter stream, to be
	// replayed once the cause is fixed.
	DeadLetter bool      `json:"deadLetter"`
	Attempts   int       `json:"attempts,omitempty"`
	TraceID    string    `json:"traceId,omitempty"`
	LoggedAt   time.Time `json:"loggedAt"`
}

// LogQuery is the API log query that shows a group's failures: as a
// command line, and as the JSON request of the log API's method.
type LogQuery struct {
	Command string          `json:"command"`
	Method  string          `json:"method"`
	Request json.RawMessage `json:"request"`
}

// Alerting's bounds.
const (
	// alertGather lets the failures of one moment go out in one alert
	// after a quiet spell, at the cost of that much latency.
	alertGather = 500 * time.Millisecond
	// alertSamples is the failures an alert lists per flow.
	alertSamples = 10
	// alertGroups is the flows an alert lists; failures of others are
	// counted only.
	alertGroups = 50
	// alertCodes is the error codes a group counts apart; others count as
	// "other".
	alertCodes = 20
	// alertSeen is how many recent failures are remembered to count each
	// once: a target's refusal arrives both as an audit record and as a
	// dead letter, and a redelivered batch arrives twice.
	alertSeen = 1 << 16
	// alertTimeout bounds one delivery attempt.
	alertTimeout = 10 * time.Second
	// alertIdle is how long a tenant's state outlives its last alert.
	alertIdle = 25 * time.Hour
	// alertFlowChanges is the flow changes an alert lists; more are
	// counted only.
	alertFlowChanges = 50
)

// alertBackoff are the waits between delivery attempts; after the last
// one the alert is dropped, logged and counted.
var alertBackoff = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}

// failure is one failed event as the log batch hands it to the alerter.
type failure struct {
	rec        apilog.Record
	stage      string
	deadLetter bool
}

// alerter groups failures per tenant and flow and sends each tenant at most
// one alert per its interval. notify never waits for a webhook: the batch
// that logged the failures is acknowledged while alerts are grouped and
// sent in the background, with bounded memory (samples, groups and the
// dedup memory are capped; counts keep counting).
type alerter struct {
	configs AlertConfigs
	secrets *secret.Box
	client  *http.Client
	metrics *AlertMetrics
	log     *slog.Logger
	gather  time.Duration
	backoff []time.Duration

	mu      sync.Mutex
	tenants map[string]*tenantAlerts
	seen    seenSet
	// flowStates is each flow's last state told (paused or resumed), by
	// tenant and flow: each replica of the connector tells of a pause it
	// sees, and the tenant hears of it once.
	flowStates map[string]string

	wake     chan struct{}
	stopOnce sync.Once
	stopping chan struct{}
	loopDone chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	inFlight sync.WaitGroup
}

// tenantAlerts is one tenant's pending failures and when it was last sent
// an alert.
type tenantAlerts struct {
	groups       map[string]*alertGroup
	order        []*alertGroup
	failures     int
	otherFlows   int
	changes      []FlowChange
	otherChanges int
	first        time.Time
	last         time.Time
	due          time.Time
	lastSent     time.Time
	sending      bool
}

type alertGroup struct {
	integrator, flow string
	failures         int
	codes            map[string]int
	first, last      time.Time
	samples          []AlertSample // a ring of the latest alertSamples
	next             int
}

func newAlerter(configs AlertConfigs, secrets *secret.Box, metrics *AlertMetrics, log *slog.Logger) *alerter {
	return &alerter{
		configs: configs, secrets: secrets, metrics: metrics, log: log,
		client: &http.Client{
			Timeout: alertTimeout,
			// A redirect would send the signed alert somewhere the tenant
			// did not configure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		gather:  alertGather,
		backoff: alertBackoff,
		tenants: map[string]*tenantAlerts{},
		seen:    newSeenSet(alertSeen),

		flowStates: map[string]string{},
		wake:       make(chan struct{}, 1),
	}
}

// Start runs the sender in the background.
func (a *alerter) Start(context.Context) error {
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.stopping = make(chan struct{})
	a.loopDone = make(chan struct{})
	go a.loop()
	return nil
}

// Stop sends what is pending, without waiting for the tenants' intervals
// and with one attempt each, and gives up on what ctx leaves no time for
// (logged and counted as dropped). Call it after the consumers stopped, so
// nothing more is notified.
func (a *alerter) Stop(ctx context.Context) error {
	if a.stopping == nil {
		return nil
	}
	stopped := true
	a.stopOnce.Do(func() { stopped = false })
	if stopped {
		return nil
	}
	close(a.stopping)
	<-a.loopDone
	defer a.cancel()
	for {
		a.dispatch(time.Now(), true)
		done := make(chan struct{})
		go func() { a.inFlight.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			a.cancel()
			<-done
		}
		left := a.pending()
		if left == 0 {
			return nil
		}
		if ctx.Err() != nil {
			a.log.Error("alerts dropped: the eventlog stopped before they were sent", "failures", left)
			return nil
		}
	}
}

// pending counts the failures not yet in an alert.
func (a *alerter) pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ta := range a.tenants {
		n += ta.failures + len(ta.changes) + ta.otherChanges
	}
	return n
}

// notify takes a batch's failures, after the batch is written to the API
// log. It holds a lock for the length of the batch and never does I/O.
func (a *alerter) notify(fs []failure) {
	if a == nil || len(fs) == 0 {
		return
	}
	now := time.Now()
	added := 0
	a.mu.Lock()
	var cfg *flowconfig.Alerts
	cfgTenant := ""
	for i := range fs {
		f := &fs[i]
		if f.rec.Tenant != cfgTenant || i == 0 {
			cfgTenant, cfg = f.rec.Tenant, a.configs.Alerts(f.rec.Tenant)
		}
		if cfg == nil {
			continue
		}
		ta := a.tenants[f.rec.Tenant]
		if ta == nil {
			ta = &tenantAlerts{}
			a.tenants[f.rec.Tenant] = ta
		}
		if f.rec.EventID != "" && !a.seen.add(f.rec.Tenant+"\x00"+f.rec.Flow+"\x00"+f.rec.EventID) {
			if f.deadLetter {
				ta.markDeadLetter(f)
			}
			continue
		}
		ta.schedule(now, a.gather, cfg)
		ta.add(f)
		added++
	}
	a.mu.Unlock()
	if added > 0 {
		a.metrics.taken(added)
		a.poke()
	}
}

// flowNotices takes the notices of flows paused or resumed. Like notify, it
// never does I/O.
func (a *alerter) flowNotices(ns []*stage.FlowNotice) {
	if a == nil || len(ns) == 0 {
		return
	}
	now := time.Now()
	added := 0
	a.mu.Lock()
	for _, n := range ns {
		cfg := a.configs.Alerts(n.Tenant)
		if cfg == nil {
			continue
		}
		state := FlowPaused
		if n.Kind == stage.NoticeFlowResumed {
			state = FlowResumed
		}
		key := n.Tenant + "\x00" + n.Flow
		if a.flowStates[key] == state {
			continue
		}
		a.flowStates[key] = state
		ta := a.tenants[n.Tenant]
		if ta == nil {
			ta = &tenantAlerts{}
			a.tenants[n.Tenant] = ta
		}
		ta.schedule(now, a.gather, cfg)
		if ta.first.IsZero() || n.At.Before(ta.first) {
			ta.first = n.At
		}
		ta.last = later(ta.last, n.At)
		if len(ta.changes) >= alertFlowChanges {
			ta.otherChanges++
		} else {
			ta.changes = append(ta.changes, FlowChange{Flow: n.Flow, Integrator: n.Integrator, Endpoint: n.Endpoint, State: state,
				Reason: n.Reason, Failures: n.Failures, Since: n.Since.UTC(), At: n.At.UTC()})
		}
		added++
	}
	a.mu.Unlock()
	if added > 0 {
		a.poke()
	}
}

func (a *alerter) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *alerter) loop() {
	defer close(a.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := a.dispatch(time.Now(), false)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-a.wake:
		case <-timer.C:
		case <-a.stopping:
			return
		}
	}
}

// dispatch starts the deliveries that are due (all pending ones if flush)
// and returns when the next one is.
func (a *alerter) dispatch(now time.Time, flush bool) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var next time.Time
	for tenant, ta := range a.tenants {
		switch {
		case ta.sending:
			// Its delivery's end dispatches again.
		case ta.empty():
			if now.Sub(ta.lastSent) > alertIdle {
				delete(a.tenants, tenant)
			}
		case !flush && ta.due.After(now):
			if next.IsZero() || ta.due.Before(next) {
				next = ta.due
			}
		default:
			msg := ta.take(tenant, now)
			ta.sending, ta.lastSent = true, now
			a.inFlight.Add(1)
			go a.deliver(msg, flush)
		}
	}
	return next
}

// deliver sends one alert, retrying with back-off (once only if last),
// then drops it with a log line.
func (a *alerter) deliver(msg *Alert, last bool) {
	defer a.inFlight.Done()
	defer func() {
		a.mu.Lock()
		if ta := a.tenants[msg.Tenant]; ta != nil {
			ta.sending = false
		}
		a.mu.Unlock()
		a.poke()
	}()
	log := a.log.With("tenant", msg.Tenant, "alert", msg.ID, "failures", msg.Failures)
	for attempt := 0; ; attempt++ {
		cfg := a.configs.Alerts(msg.Tenant)
		if cfg == nil {
			log.Info("alert dropped: the tenant's alerts were removed")
			a.metrics.drop()
			return
		}
		retry, err := a.post(msg, cfg)
		if err == nil {
			a.metrics.send()
			log.Debug("alert sent", "webhook", webhookHost(cfg.Webhook), "attempts", attempt+1)
			return
		}
		a.metrics.fail()
		if !retry || last || attempt >= len(a.backoff) {
			log.Error("alert dropped", "webhook", webhookHost(cfg.Webhook), "attempts", attempt+1, "error", err)
			a.metrics.drop()
			return
		}
		log.Warn("alert not delivered, retrying", "webhook", webhookHost(cfg.Webhook), "attempt", attempt+1, "in", a.backoff[attempt], "error", err)
		select {
		case <-time.After(a.backoff[attempt]):
		case <-a.stopping:
			last = true
		}
	}
}

// post makes one delivery attempt and says whether another may succeed.
func (a *alerter) post(msg *Alert, cfg *flowconfig.Alerts) (retry bool, err error) {
	if a.secrets == nil {
		return false, errors.New("the eventlog has no master key to open the alert secret with: set SYNCLINE_MASTER_KEY to the control plane's")
	}
	key, err := a.secrets.Open(flowconfig.AlertsBinding(msg.Tenant), cfg.Secret)
	if err != nil {
		return false, fmt.Errorf("opening the alert secret (apply the tenant's alerts.secret again if the master key changed): %w", err)
	}
	msg.SentAt = time.Now().UTC().Truncate(time.Millisecond)
	body, err := json.Marshal(msg)
	if err != nil {
		return false, fmt.Errorf("encoding the alert: %w", err)
	}
	ctx, cancel := context.WithTimeout(a.ctx, alertTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Webhook, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("making the request: %w", bareURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "syncline-alerts")
	req.Header.Set(HeaderAlertSignature, Sign(key, body))
	req.Header.Set(HeaderAlertTimestamp, strconv.FormatInt(msg.SentAt.Unix(), 10))
	req.Header.Set(HeaderAlertID, msg.ID)
	resp, err := a.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("posting: %w", bareURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return true, fmt.Errorf("the webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("the webhook answered %s, which a retry would not change", resp.Status)
	}
}

// Sign returns the X-Syncline-Signature of an alert body: "sha256=" and the
// hex HMAC-SHA256 of body under key, the tenant's alert secret. A receiver
// computes the same over the raw body and compares with hmac.Equal.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// bareURLError drops the URL from a client error: a webhook's path or
// query may hold a token, and the error ends up in the logs.
func bareURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// webhookHost is what the logs show of a webhook: its scheme and host.
func webhookHost(webhook string) string {
	u, err := url.Parse(webhook)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// empty says whether nothing waits to be sent.
func (ta *tenantAlerts) empty() bool {
	return ta.failures == 0 && len(ta.changes) == 0 && ta.otherChanges == 0
}

// schedule sets when the next alert is due, as something is added to an
// empty tenant: after the gathering wait, and no sooner than the tenant's
// minimum interval after the last one.
func (ta *tenantAlerts) schedule(now time.Time, gather time.Duration, cfg *flowconfig.Alerts) {
	if !ta.empty() {
		return
	}
	ta.due = now.Add(gather)
	if !ta.lastSent.IsZero() {
		ta.due = later(ta.due, ta.lastSent.Add(cfg.MinInterval))
	}
}

func (ta *tenantAlerts) add(f *failure) {
	r := &f.rec
	ta.failures++
	if ta.first.IsZero() || r.LoggedAt.Before(ta.first) {
		ta.first = r.LoggedAt
	}
	ta.last = later(ta.last, r.LoggedAt)
	g := ta.groups[r.Flow]
	if g == nil {
		if len(ta.order) >= alertGroups {
			ta.otherFlows++
			return
		}
		if ta.groups == nil {
			ta.groups = map[string]*alertGroup{}
		}
		g = &alertGroup{integrator: r.Integrator, flow: r.Flow, codes: map[string]int{}, first: r.LoggedAt}
		ta.groups[r.Flow] = g
		ta.order = append(ta.order, g)
	}
	g.failures++
	code := r.ErrorCode
	if code == "" {
		code = "unknown"
	}
	if _, ok := g.codes[code]; !ok && len(g.codes) >= alertCodes {
		code = "other"
	}
	g.codes[code]++
	if r.LoggedAt.Before(g.first) {
		g.first = r.LoggedAt
	}
	g.last = later(g.last, r.LoggedAt)
	s := AlertSample{
		EventID: r.EventID, RemoteID: r.SourceKey, Entity: r.Entity, Stage: f.stage, Code: r.ErrorCode,
		Error: r.Reason, DeadLetter: f.deadLetter, Attempts: r.Attempts, TraceID: r.TraceID, LoggedAt: r.LoggedAt.UTC(),
	}
	if len(g.samples) < alertSamples {
		g.samples = append(g.samples, s)
		return
	}
	// Full: the oldest sample gives way; the counts above keep counting.
	g.samples[g.next] = s
	g.next = (g.next + 1) % alertSamples
}

// markDeadLetter notes that a failure already taken was dead-lettered too,
// if its sample is still waiting to be sent.
func (ta *tenantAlerts) markDeadLetter(f *failure) {
	g := ta.groups[f.rec.Flow]
	if g == nil {
		return
	}
	for i := range g.samples {
		if s := &g.samples[i]; s.EventID == f.rec.EventID {
			s.DeadLetter = true
			if s.Stage == "" {
				s.Stage = f.stage
			}
			return
		}
	}
}

// take turns the pending failures into an alert and starts over.
func (ta *tenantAlerts) take(tenant string, now time.Time) *Alert {
	msg := &Alert{
		ID: envelope.NewEventID(), Tenant: tenant, Failures: ta.failures,
		From: ta.first.UTC(), To: ta.last.UTC(), OtherFlowFailures: ta.otherFlows,
		Groups: make([]AlertGroup, 0, len(ta.order)),
		Flows:  ta.changes, OtherFlowChanges: ta.otherChanges,
	}
	for _, g := range ta.order {
		samples := append(slices.Clone(g.samples[g.next:]), g.samples[:g.next]...)
		msg.Groups = append(msg.Groups, AlertGroup{
			Integrator: g.integrator, Flow: g.flow, Failures: g.failures, Codes: g.codes,
			From: g.first.UTC(), To: g.last.UTC(), Samples: samples, SamplesOmitted: g.failures - len(samples),
			LogQuery: logQuery(tenant, g.flow, g.first, g.last),
		})
	}
	msg.Summary = summary(msg)
	*ta = tenantAlerts{lastSent: ta.lastSent, sending: ta.sending}
	return msg
}

// logQuery is the query of a tenant's failures of one flow logged from
// first to last: whole seconds around them, as --from and --to take them.
func logQuery(tenant, flow string, first, last time.Time) LogQuery {
	from := first.UTC().Truncate(time.Second)
	to := last.UTC().Truncate(time.Second).Add(time.Second)
	req := &eventlogv1.QueryLogsRequest{Tenant: tenant, Status: string(apilog.StatusFailure), Flow: flow,
		From: timestamppb.New(from), To: timestamppb.New(to)}
	b, err := protojson.Marshal(req)
	if err != nil {
		// A request of strings and valid timestamps always encodes.
		panic(fmt.Sprintf("encoding a log query: %v", err))
	}
	var cmd strings.Builder
	cmd.WriteString("syncline logs --tenant " + tenant + " --status failure")
	if flow != "" {
		cmd.WriteString(" --flow " + flow)
	}
	cmd.WriteString(" --from " + from.Format(time.RFC3339) + " --to " + to.Format(time.RFC3339))
	return LogQuery{Command: cmd.String(), Method: eventlogv1connect.LogServiceQueryLogsProcedure, Request: b}
}

func summary(msg *Alert) string {
	var b strings.Builder
	if msg.Failures > 0 {
		failuresSummary(&b, msg)
	} else {
		fmt.Fprintf(&b, "tenant %s", msg.Tenant)
	}
	for i, c := range msg.Flows {
		if i > 0 || msg.Failures > 0 {
			b.WriteString("; ")
		} else {
			b.WriteString(": ")
		}
		switch c.State {
		case FlowPaused:
			fmt.Fprintf(&b, "flow %s paused: its target %s failed %d times in a row since %s (%s); its events are held and go on, in order, when it works again",
				c.Flow, c.Endpoint, c.Failures, c.Since.Format(time.RFC3339), clip(c.Reason, 300))
		default:
			fmt.Fprintf(&b, "flow %s resumed: its target %s works again after %s; its held events are being pushed", c.Flow, c.Endpoint, c.At.Sub(c.Since).Round(time.Second))
		}
	}
	if msg.OtherFlowChanges > 0 {
		fmt.Fprintf(&b, "; %d more flows paused or resumed (not listed)", msg.OtherFlowChanges)
	}
	return b.String()
}

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func failuresSummary(b *strings.Builder, msg *Alert) {
	noun := "events"
	if msg.Failures == 1 {
		noun = "event"
	}
	fmt.Fprintf(b, "%d failed %s of tenant %s", msg.Failures, noun, msg.Tenant)
	omitted := false
	for i, g := range msg.Groups {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		flow := g.flow()
		fmt.Fprintf(b, "%d in %s", g.Failures, flow)
		omitted = omitted || g.SamplesOmitted > 0
	}
	if msg.OtherFlowFailures > 0 {
		fmt.Fprintf(b, ", %d in other flows (not listed)", msg.OtherFlowFailures)
	}
	if omitted {
		fmt.Fprintf(b, "; samples show the latest %d of each flow, the log query shows all", alertSamples)
	}
}

func (g *AlertGroup) flow() string {
	if g.Flow == "" {
		return "no flow"
	}
	return "flow " + g.Flow
}

// seenSet remembers the latest n keys.
type seenSet struct {
	keys map[string]struct{}
	ring []string
	next int
}

func newSeenSet(n int) seenSet {
	return seenSet{keys: map[string]struct{}{}, ring: make([]string, 0, n)}
}

// add records key and says whether it is new.
func (s *seenSet) add(key string) bool {
	if _, ok := s.keys[key]; ok {
		return false
	}
	s.keys[key] = struct{}{}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, key)
		return true
	}
	delete(s.keys, s.ring[s.next])
	s.ring[s.next] = key
	s.next = (s.next + 1) % len(s.ring)
	return true
}

// AlertMetrics count failure alerts. A nil *AlertMetrics counts nothing.
type AlertMetrics struct {
	failures, sent, failed, dropped prometheus.Counter
}

// NewAlertMetrics registers the alert metrics on reg.
func NewAlertMetrics(reg prometheus.Registerer) *AlertMetrics {
	m := &AlertMetrics{
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncline_alert_failures_total",
			Help: "Failed events taken for alerting (of tenants with alerts, each counted once).",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncline_alerts_sent_total",
			Help: "Alerts a tenant's webhook accepted.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncline_alert_attempts_failed_total",
			Help: "Alert deliveries that failed (each attempt; most are retried).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncline_alerts_dropped_total",
			Help: "Alerts given up on: retries exhausted, refused by the webhook, or the alerts removed.",
		}),
	}
	reg.MustRegister(m.failures, m.sent, m.failed, m.dropped)
	return m
}

func (m *AlertMetrics) taken(n int) {
	if m != nil {
		m.failures.Add(float64(n))
	}
}

func (m *AlertMetrics) send() {
	if m != nil {
		m.sent.Inc()
	}
}

func (m *AlertMetrics) fail() {
	if m != nil {
		m.failed.Inc()
	}
}

func (m *AlertMetrics) drop() {
	if m != nil {
		m.dropped.Inc()
	}
}
