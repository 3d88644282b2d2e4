package bus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the per-stage pipeline metrics. A nil *Metrics records nothing,
// so tests and tools need not build one.
type Metrics struct {
	finished    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	batchSize   *prometheus.HistogramVec
	batchTime   *prometheus.HistogramVec
	held        *prometheus.CounterVec
	released    *prometheus.CounterVec
	paused      *prometheus.GaugeVec
	unrouted    *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
	consumers   *prometheus.GaugeVec
}

// NewMetrics registers the pipeline metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_stage_messages_finished_total",
			Help: "Messages a stage finished (output durable, or dead-lettered).",
		}, []string{"stage"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_stage_retries_total",
			Help: "Batches a stage had to retry after a failure.",
		}, []string{"stage"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_stage_dead_letters_total",
			Help: "Messages a stage dead-lettered: after exhausting its retries, at once for a permanent failure, or after runs that died on them.",
		}, []string{"stage"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncline_stage_batch_size",
			Help:    "Messages finished per handled batch.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
		}, []string{"stage"}),
		batchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncline_stage_batch_seconds",
			Help:    "Time a stage spent on one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"stage"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_stage_held_total",
			Help: "Events a stage put in the hold stream (a paused flow's).",
		}, []string{"stage"}),
		released: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_stage_released_total",
			Help: "Held events a stage took back out of the hold stream.",
		}, []string{"stage"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncline_stage_flows_paused",
			Help: "Flows whose circuit breaker is open in this process: their events are held until the target works again.",
		}, []string{"stage"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_stage_duplicates_total",
			Help: "Events a stage got again within the duplicate window, in another frame, and finished without handling them again.",
		}, []string{"stage"}),
		unrouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncline_stage_unrouted_total",
			Help: "Events that reached no flow, by reason: an unknown tenant, no flow for the endpoint and entity, or an envelope that disagrees with its subject.",
		}, []string{"stage", "code"}),
		consumers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncline_stage_consumer_running",
			Help: "1 while this process runs the consumer (a partition of a stage), 0 once it stopped: replicas share consumers, one process each at a time.",
		}, []string{"stage", "consumer"}),
	}
	reg.MustRegister(m.finished, m.retries, m.deadLetters, m.batchSize, m.batchTime, m.held, m.released, m.paused, m.unrouted, m.duplicates, m.consumers)
	return m
}

func (m *Metrics) observeBatch(stage string, finished int, d time.Duration) {
	if m == nil {
		return
	}
	m.finished.WithLabelValues(stage).Add(float64(finished))
	m.batchSize.WithLabelValues(stage).Observe(float64(finished))
	m.batchTime.WithLabelValues(stage).Observe(d.Seconds())
}

func (m *Metrics) observeRetry(stage string) {
	if m != nil {
		m.retries.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) observeDuplicate(stage string) {
	if m != nil {
		m.duplicates.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) observeDeadLetter(stage string) {
	if m != nil {
		m.deadLetters.WithLabelValues(stage).Inc()
	}
}

// Held counts n events a stage put in the hold stream.
func (m *Metrics) Held(stage string, n int) {
	if m != nil {
		m.held.WithLabelValues(stage).Add(float64(n))
	}
}

// Released counts n held events a stage took back out of the hold stream.
func (m *Metrics) Released(stage string, n int) {
	if m != nil {
		m.released.WithLabelValues(stage).Add(float64(n))
	}
}

// Paused adds delta to the flows a stage has paused.
func (m *Metrics) Paused(stage string, delta int) {
	if m != nil {
		m.paused.WithLabelValues(stage).Add(float64(delta))
	}
}

// Unrouted counts an event a stage could route to no flow, by the dead
// letter's code.
func (m *Metrics) Unrouted(stage, code string) {
	if m != nil {
		m.unrouted.WithLabelValues(stage, code).Inc()
	}
}

func (m *Metrics) running(spec ConsumerSpec, on bool) {
	if m == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.consumers.WithLabelValues(spec.Stage, spec.Durable).Set(v)
}
