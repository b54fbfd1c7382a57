package upstream

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// failReason is why a try failed, the reason label of meshdns_upstream_failures_total.
type failReason int

const (
	reasonTimeout  failReason = iota // no reply within the try timeout
	reasonNetwork                    // refused, reset, unreachable, closed before a reply
	reasonServfail                   // SERVFAIL: the server could not answer
	reasonRefused                    // REFUSED: the server will not answer us
	reasonInvalid                    // a reply dropped: malformed, or not answering our query
	numReasons
)

var reasonNames = [numReasons]string{"timeout", "network", "servfail", "refused", "invalid"}

func (r failReason) String() string { return reasonNames[r] }

// Metrics are the upstream metrics, labelled by upstream "ip:port": the label set is bounded
// by the configured servers, and series of removed servers are deleted. A nil *Metrics
// records nothing.
type Metrics struct {
	queries   *prometheus.CounterVec
	failures  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	healthy   *prometheus.GaugeVec
	overloads *prometheus.CounterVec
	coalesced prometheus.Counter
}

// NewMetrics registers the upstream metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_upstream_queries_total",
			Help: "Queries sent to an upstream, by transport (a truncated UDP reply retried over TCP counts twice).",
		}, []string{"upstream", "protocol"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_upstream_failures_total",
			Help: "Failed upstream tries by reason (timeout, network, servfail, refused), and replies dropped as invalid.",
		}, []string{"upstream", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshdns_upstream_latency_seconds",
			Help:    "Time from sending a query to an upstream to its reply.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5ms to about 4s
		}, []string{"upstream"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshdns_upstream_healthy",
			Help: "1 if the upstream is used, 0 while it is marked down and skipped.",
		}, []string{"upstream"}),
		overloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_upstream_overload_total",
			Help: "Forwarded queries refused by the cap on outstanding upstream queries, by reason: total (every slot taken) or source (the asking client held its share).",
		}, []string{"reason"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_upstream_coalesced_total",
			Help: "Forwarded queries answered by an identical question already in flight upstream.",
		}),
	}
	for r := overloadTotal; r < numOverloadReasons; r++ {
		m.overloads.WithLabelValues(r.String()) // both series from the start, at 0
	}
	reg.MustRegister(m.queries, m.failures, m.latency, m.healthy, m.overloads, m.coalesced)
	return m
}

func (m *Metrics) overload(r overloadReason) {
	if m != nil {
		m.overloads.WithLabelValues(r.String()).Inc()
	}
}

func (m *Metrics) coalesce() {
	if m != nil {
		m.coalesced.Inc()
	}
}

// forget deletes the series of a server that is no longer configured.
func (m *Metrics) forget(upstream string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"upstream": upstream}
	m.queries.DeletePartialMatch(l)
	m.failures.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
	m.healthy.DeletePartialMatch(l)
}

// serverMetrics are one server's series, resolved once so that a query does no label lookup.
type serverMetrics struct {
	udp, tcp prometheus.Counter
	failures [numReasons]prometheus.Counter
	latency  prometheus.Observer
	healthy  prometheus.Gauge
}

func (m *Metrics) forServer(upstream string) *serverMetrics {
	if m == nil {
		return nil
	}
	sm := &serverMetrics{
		udp:     m.queries.WithLabelValues(upstream, "udp"),
		tcp:     m.queries.WithLabelValues(upstream, "tcp"),
		latency: m.latency.WithLabelValues(upstream),
		healthy: m.healthy.WithLabelValues(upstream),
	}
	for r := range numReasons {
		sm.failures[r] = m.failures.WithLabelValues(upstream, r.String())
	}
	return sm
}

func (sm *serverMetrics) query(protocol string) {
	switch {
	case sm == nil:
	case protocol == "tcp":
		sm.tcp.Inc()
	default:
		sm.udp.Inc()
	}
}

func (sm *serverMetrics) fail(r failReason) {
	if sm != nil {
		sm.failures[r].Inc()
	}
}

func (sm *serverMetrics) observeLatency(d time.Duration) {
	if sm != nil {
		sm.latency.Observe(d.Seconds())
	}
}

func (sm *serverMetrics) setHealthy(up bool) {
	if sm == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	sm.healthy.Set(v)
}
