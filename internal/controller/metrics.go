package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/internal/xds"
)

// Metrics are the controller's Prometheus metrics; a nil *Metrics records nothing.
type Metrics struct {
	agentsConnected prometheus.Gauge
	refusedStreams  *prometheus.CounterVec
	nacks           *prometheus.CounterVec
	resourcesSent   *prometheus.CounterVec
	removalsSent    *prometheus.CounterVec
	bytesSent       *prometheus.CounterVec
	changes         prometheus.Counter
	applySeconds    prometheus.Histogram
}

// NewMetrics registers the controller's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		agentsConnected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshdns_controller_agents",
			Help: "Agent streams open now."}),
		refusedStreams: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdns_controller_refused_streams_total",
			Help: "Agent streams refused, by reason: unauthenticated, permission_denied, unavailable (the token could not be checked)."}, []string{"reason"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdns_controller_nacks_total",
			Help: "Updates an agent rejected, by resource type."}, []string{"type"}),
		resourcesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdns_controller_resources_sent_total",
			Help: "Resources sent to agents (added or changed), by resource type."}, []string{"type"}),
		removalsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdns_controller_removals_sent_total",
			Help: "Resource removals sent to agents, by resource type."}, []string{"type"}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdns_controller_sent_bytes_total",
			Help: "Bytes of xDS responses sent to agents, by resource type."}, []string{"type"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshdns_controller_resource_changes_total",
			Help: "Resources added, changed or removed in the controller's caches."}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meshdns_controller_apply_seconds",
			Help:    "Time to turn a snapshot into resources and update the caches.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	reg.MustRegister(m.agentsConnected, m.refusedStreams, m.nacks, m.resourcesSent, m.removalsSent, m.bytesSent,
		m.changes, m.applySeconds)
	return m
}

func (m *Metrics) agents(delta float64) {
	if m != nil {
		m.agentsConnected.Add(delta)
	}
}

func (m *Metrics) refused(reason string) {
	if m != nil {
		m.refusedStreams.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) nacked(typeURL string) {
	if m != nil {
		m.nacks.WithLabelValues(xds.ShortType(typeURL)).Inc()
	}
}

func (m *Metrics) sent(typeURL string, resources, removals, bytes int) {
	if m != nil {
		t := xds.ShortType(typeURL)
		m.resourcesSent.WithLabelValues(t).Add(float64(resources))
		m.removalsSent.WithLabelValues(t).Add(float64(removals))
		m.bytesSent.WithLabelValues(t).Add(float64(bytes))
	}
}

func (m *Metrics) applied(changes int, d time.Duration) {
	if m != nil {
		m.changes.Add(float64(changes))
		m.applySeconds.Observe(d.Seconds())
	}
}
