package kube

import "github.com/prometheus/client_golang/prometheus"

// WriterMetrics count the status writer's work. A nil *WriterMetrics counts nothing.
type WriterMetrics struct {
	leader prometheus.Gauge
	writes *prometheus.CounterVec
}

// NewWriterMetrics registers the status writer's metrics with reg.
func NewWriterMetrics(reg prometheus.Registerer) *WriterMetrics {
	m := &WriterMetrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshdns_vip_status_writer_leader",
			Help: "1 while this process is the one writing VIPs to ServiceEntry status.",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_vip_status_writes_total",
			Help: "ServiceEntry status updates with VIPs, by result (ok, error).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.leader, m.writes)
	return m
}

func (m *WriterMetrics) leading(on bool) {
	if m == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.leader.Set(v)
}

func (m *WriterMetrics) wrote(result string) {
	if m != nil {
		m.writes.WithLabelValues(result).Inc()
	}
}
