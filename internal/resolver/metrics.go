package resolver

import "github.com/prometheus/client_golang/prometheus"

// Metrics count the resolver's own decisions; per-query counts are the server's.
type Metrics struct {
	autopathTable, autopathUpstream prometheus.Counter
	countAutopathTable              func() // autopathTable.Inc, bound once
}

// NewMetrics registers the resolver's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	autopaths := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshdns_autopath_answers_total",
		Help: "Search-list queries answered with the walk's result, by where the name was found (table or upstream).",
	}, []string{"kind"})
	reg.MustRegister(autopaths)
	m := &Metrics{autopathTable: autopaths.WithLabelValues("table"),
		autopathUpstream: autopaths.WithLabelValues("upstream")}
	m.countAutopathTable = m.autopathTable.Inc
	return m
}

func noCount() {}

// autopathFromTable returns the function counting an autopath answer found in the table.
func (m *Metrics) autopathFromTable() func() {
	if m == nil {
		return noCount
	}
	return m.countAutopathTable
}

func (m *Metrics) autopathFromUpstream() {
	if m != nil {
		m.autopathUpstream.Inc()
	}
}
