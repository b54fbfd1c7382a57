package resolver

import "github.com/prometheus/client_golang/prometheus"

// Metrics count the resolver's own decisions; per-query counts are the server's.
type Metrics struct {
	autopaths *prometheus.CounterVec
}

// NewMetrics registers the resolver's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		autopaths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_autopath_answers_total",
			Help: "Search-list queries answered with the walk's result, by where the name was found (table or upstream).",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.autopaths)
	return m
}

func (m *Metrics) autopath(kind string) {
	if m != nil {
		m.autopaths.WithLabelValues(kind).Inc()
	}
}
