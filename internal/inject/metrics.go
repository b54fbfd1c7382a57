package inject

import "github.com/prometheus/client_golang/prometheus"

// Metrics count the injector's admissions.
type Metrics struct {
	admissions *prometheus.CounterVec
	certExpiry prometheus.Gauge
}

// NewMetrics registers the injector's metrics with reg (nil: registered nowhere). Every result
// has a series from the start, so a rate of injections reads 0, not nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshdns_injector_admissions_total",
		Help: "Pod admissions the injector answered, by result: injected, already-injected, not-selected, host-network (left alone), invalid (a request or pod it could not read).",
	}, []string{"result"}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshdns_injector_certificate_expiry_timestamp_seconds",
			Help: "When the serving certificate in use expires (Unix time).",
		})}
	for _, r := range Results {
		m.admissions.WithLabelValues(string(r))
	}
	if reg != nil {
		reg.MustRegister(m.admissions, m.certExpiry)
	}
	return m
}

func (m *Metrics) count(r Result) { m.admissions.WithLabelValues(string(r)).Inc() }
