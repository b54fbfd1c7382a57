package vipfwd

import "github.com/prometheus/client_golang/prometheus"

// Results label meshdns_vip_forward_connections_total.
const (
	resultForwarded  = "forwarded"   // dialed and copied until one side ended
	resultNoVIP      = "no-vip"      // the original destination is no VIP of the table
	resultNoPort     = "no-port"     // a VIP, on a port its ServiceEntry lacks
	resultUnresolved = "unresolved"  // the host has no address of the connection's family
	resultDialFailed = "dial-failed" // no address accepted the connection in time
	resultLimit      = "limit"       // MaxConns connections were already open
	resultNoOrigDst  = "no-original-destination"
)

var results = []string{resultForwarded, resultNoVIP, resultNoPort, resultUnresolved, resultDialFailed, resultLimit, resultNoOrigDst}

// Metrics count the forwarder's connections. A nil *Metrics records nothing.
type Metrics struct {
	conns  *prometheus.CounterVec
	bytes  *prometheus.CounterVec
	active prometheus.Gauge
	dial   prometheus.Histogram
	// The labelled counters, looked up once here rather than per connection.
	byResult             map[string]prometheus.Counter
	toTarget, fromTarget prometheus.Counter
}

// NewMetrics registers the forwarder's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_vip_forward_connections_total",
			Help: "TCP connections to VIPs accepted by the forwarder, by result."}, []string{"result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_vip_forward_bytes_total",
			Help: "Bytes copied by the VIP forwarder: to-target (client to host) or from-target."}, []string{"direction"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshdns_vip_forward_active_connections", Help: "Connections the VIP forwarder is copying now."}),
		dial: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshdns_vip_forward_dial_duration_seconds",
			Help:    "Time to resolve a VIP's host and connect to it, for connections that were forwarded.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
	}
	reg.MustRegister(m.conns, m.bytes, m.active, m.dial)
	// Every series is present from the start, so rate() needs no first event.
	m.byResult = make(map[string]prometheus.Counter, len(results))
	for _, r := range results {
		m.byResult[r] = m.conns.WithLabelValues(r)
	}
	m.toTarget = m.bytes.WithLabelValues("to-target")
	m.fromTarget = m.bytes.WithLabelValues("from-target")
	return m
}

func (m *Metrics) result(r string) {
	if m != nil {
		m.byResult[r].Inc()
	}
}

// copied counts n bytes moved towards the target, or from it.
func (m *Metrics) copied(toTarget bool, n int64) {
	if m == nil || n <= 0 {
		return
	}
	if toTarget {
		m.toTarget.Add(float64(n))
	} else {
		m.fromTarget.Add(float64(n))
	}
}

func (m *Metrics) activeAdd(d float64) {
	if m != nil {
		m.active.Add(d)
	}
}

func (m *Metrics) dialed(seconds float64) {
	if m != nil {
		m.dial.Observe(seconds)
	}
}
