package connector

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncline/syncline/pkg/poll"
)

// PollMetrics show how the polled sources are read: polls by outcome, the changes they
// published, how long they took, and how far each source's cursor lags behind now.
type PollMetrics struct {
	polls    *prometheus.CounterVec
	changes  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	last     *prometheus.GaugeVec
}

// NewPollMetrics registers the poll metrics on reg.
func NewPollMetrics(reg prometheus.Registerer) (*PollMetrics, error) {
	labels := []string{"tenant", "endpoint", "entity"}
	m := &PollMetrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_source_polls_total",
			Help: "Polls of a source that ended, by outcome: ok, failed, or cut off (a stop or a lost lease; the next poll reads on from the stored cursor).",
		}, append(labels, "outcome")),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_source_changes_total",
			Help: "Changes a source's polls read and published to the ingest stream.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncline_source_poll_seconds",
			Help:    "How long a poll took, from its start until the source had nothing more.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800},
		}, labels),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncline_source_last_success_timestamp_seconds",
			Help: "When a source's last poll that ended well began (Unix seconds): alert when now minus this exceeds a few periods of its schedule.",
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.polls, m.changes, m.duration, m.last} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the poll metrics: %w", err)
		}
	}
	return m, nil
}

// ended records a poll that ended with outcome, having published changes.
func (m *PollMetrics) ended(src poll.Source, outcome string, changes int64, started, ended time.Time) {
	if m == nil {
		return
	}
	m.polls.WithLabelValues(src.Tenant, src.Endpoint, src.Entity, outcome).Inc()
	if outcome == poll.OutcomeOK {
		m.last.WithLabelValues(src.Tenant, src.Endpoint, src.Entity).Set(float64(started.UnixNano()) / 1e9)
	}
	if outcome != "cut off" {
		m.duration.WithLabelValues(src.Tenant, src.Endpoint, src.Entity).Observe(ended.Sub(started).Seconds())
	}
}

// read records changes a poll published.
func (m *PollMetrics) read(src poll.Source, n int) {
	if m == nil || n == 0 {
		return
	}
	m.changes.WithLabelValues(src.Tenant, src.Endpoint, src.Entity).Add(float64(n))
}
