package vip

import "github.com/prometheus/client_golang/prometheus"

// Metrics describe the pools. A nil *Metrics records nothing. Safe for concurrent use.
type Metrics struct {
	size, allocated, quarantined *prometheus.GaugeVec
	failures                     *prometheus.CounterVec
}

// NewMetrics registers the allocator's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	family := []string{"family"}
	m := &Metrics{
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshdns_vip_pool_size", Help: "Addresses of the VIP pool that can be handed out."}, family),
		allocated: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshdns_vip_allocated", Help: "VIPs held by live ServiceEntry hosts."}, family),
		quarantined: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshdns_vip_quarantined",
			Help: "Freed VIPs still reserved for their last host until their quarantine ends."}, family),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_vip_allocation_failures_total",
			Help: "Hosts left without a VIP because the pool was full, once per host and episode."}, family),
	}
	reg.MustRegister(m.size, m.allocated, m.quarantined, m.failures)
	return m
}

func (m *Metrics) set(f Family, size uint64, allocated, quarantined int) {
	if m == nil {
		return
	}
	m.size.WithLabelValues(f.String()).Set(float64(size))
	m.allocated.WithLabelValues(f.String()).Set(float64(allocated))
	m.quarantined.WithLabelValues(f.String()).Set(float64(quarantined))
	// Present from the start, so a rate() over it needs no first failure.
	m.failures.WithLabelValues(f.String())
}

func (m *Metrics) failed(f Family) {
	if m != nil {
		m.failures.WithLabelValues(f.String()).Inc()
	}
}

// StoreMetrics describe the saves of the state file; they exist only with a FileStore
// (--state-dir). A nil *StoreMetrics records nothing. Safe for concurrent use.
type StoreMetrics struct {
	saveFailures prometheus.Counter
	saveFailing  prometheus.Gauge
}

// NewStoreMetrics registers the state file's metrics with reg.
func NewStoreMetrics(reg prometheus.Registerer) *StoreMetrics {
	m := &StoreMetrics{
		saveFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_vip_state_save_failures_total",
			Help: "Saves of the VIP state file that failed."}),
		saveFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshdns_vip_state_save_failing",
			Help: "1 while the latest save of the VIP state file failed."}),
	}
	reg.MustRegister(m.saveFailures, m.saveFailing)
	return m
}

// saved records the outcome of a save of the state file.
func (m *StoreMetrics) saved(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.saveFailures.Inc()
		m.saveFailing.Set(1)
		return
	}
	m.saveFailing.Set(0)
}
