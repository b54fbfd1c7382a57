package cache

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the cache does. A nil *Metrics counts nothing.
type Metrics struct {
	hits, misses, stale, evictions prometheus.Counter
	positive, negative             prometheus.Gauge
	posBytes, negBytes             prometheus.Gauge
}

// NewMetrics registers the cache's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	entries := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshdns_cache_entries", Help: "Entries in the upstream answer cache, by store.",
	}, []string{"kind"})
	bytes := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshdns_cache_bytes",
		Help: "Estimated heap bytes held by the upstream answer cache, by store (bounded by --cache-max-bytes).",
	}, []string{"kind"})
	m := &Metrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_cache_hits_total", Help: "Cache lookups that found a fresh answer."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_cache_misses_total", Help: "Cache lookups that found nothing usable."}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_cache_stale_total",
			Help: "Cache lookups that returned an expired answer within the serve-stale window."}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_cache_evictions_total",
			Help: "Entries evicted for room: their store had --cache-size entries, or the cache --cache-max-bytes."}),
		positive: entries.WithLabelValues("positive"),
		negative: entries.WithLabelValues("negative"),
		posBytes: bytes.WithLabelValues("positive"),
		negBytes: bytes.WithLabelValues("negative"),
	}
	reg.MustRegister(m.hits, m.misses, m.stale, m.evictions, entries, bytes)
	return m
}

func (m *Metrics) got(st Status) {
	if m == nil {
		return
	}
	switch st {
	case Hit:
		m.hits.Inc()
	case Stale:
		m.stale.Inc()
	default:
		m.misses.Inc()
	}
}

func (m *Metrics) evicted(n int) {
	if m != nil && n > 0 {
		m.evictions.Add(float64(n))
	}
}

// stores sets the gauges from the stores' sizes. Callers hold Cache.mu.
func (m *Metrics) stores(positive, negative *lru) {
	if m != nil {
		m.positive.Set(float64(positive.len()))
		m.negative.Set(float64(negative.len()))
		m.posBytes.Set(float64(positive.bytes))
		m.negBytes.Set(float64(negative.bytes))
	}
}
