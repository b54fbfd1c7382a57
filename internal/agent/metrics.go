package agent

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the agent's Prometheus metrics; a nil *Metrics records nothing.
type Metrics struct {
	up          prometheus.Gauge
	disconnects prometheus.Counter
	resources   *prometheus.CounterVec
	rejects     prometheus.Counter
	saveErrors  prometheus.Counter
}

// NewMetrics registers the agent's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshdns_agent_controller_connected",
			Help: "1 while a stream from the controller is up."}),
		disconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshdns_agent_stream_failures_total",
			Help: "Streams from the controller that failed or could not start."}),
		resources: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshdns_agent_resources_received_total",
			Help: "Resources received from the controller, by change: update or removal."}, []string{"change"}),
		rejects: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshdns_agent_rejected_updates_total",
			Help: "Updates from the controller the agent could not decode and refused (NACK)."}),
		saveErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshdns_agent_state_save_errors_total",
			Help: "Failed writes of the received resources to --state-dir."}),
	}
	reg.MustRegister(m.up, m.disconnects, m.resources, m.rejects, m.saveErrors)
	return m
}

func (m *Metrics) connected() {
	if m != nil {
		m.up.Set(1)
	}
}

func (m *Metrics) disconnected() {
	if m != nil {
		m.up.Set(0)
		m.disconnects.Inc()
	}
}

func (m *Metrics) received(updates, removals int) {
	if m != nil {
		m.resources.WithLabelValues("update").Add(float64(updates))
		m.resources.WithLabelValues("removal").Add(float64(removals))
	}
}

func (m *Metrics) rejected() {
	if m != nil {
		m.rejects.Inc()
	}
}

func (m *Metrics) saveFailed() {
	if m != nil {
		m.saveErrors.Inc()
	}
}
