package admin

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the admin server's limits did.
type Metrics struct {
	open     prometheus.Gauge
	inFlight prometheus.Gauge
	rejected prometheus.Counter // requests answered 503: MaxRequests in flight
	evicted  prometheus.Counter // idle connections closed for a new one
	refused  prometheus.Counter // new connections closed: MaxConns busy
}

// NewMetrics registers the admin server's metrics with reg (nil: registered nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshdns_admin_connections_dropped_total",
		Help: "Admin connections closed by the connection cap: idle ones evicted for a new one (evicted), new ones while every connection was busy (refused).",
	}, []string{"reason"})
	m := &Metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshdns_admin_connections", Help: "Open admin HTTP connections."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshdns_admin_requests_in_flight", Help: "Admin /metrics and /debug/table requests being answered."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_admin_requests_rejected_total",
			Help: "Admin /metrics and /debug/table requests answered 503 because the most allowed were in flight."}),
		evicted: dropped.WithLabelValues("evicted"),
		refused: dropped.WithLabelValues("refused"),
	}
	if reg != nil {
		reg.MustRegister(m.open, m.inFlight, m.rejected, dropped)
	}
	return m
}
