package server

import (
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the per-query counters of the server.
type Metrics struct {
	queries *prometheus.CounterVec
	dropped *prometheus.CounterVec
	panics  prometheus.Counter
}

// NewMetrics registers the server's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_queries_total",
			Help: "DNS queries answered, by query type, response code, transport and the rule that answered.",
		}, []string{"qtype", "rcode", "protocol", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_packets_dropped_total",
			Help: "Packets received and not answered, by reason.",
		}, []string{"reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_query_panics_total",
			Help: "Queries whose handling panicked (answered SERVFAIL).",
		}),
	}
	reg.MustRegister(m.queries, m.dropped, m.panics)
	return m
}

// qtypeLabels bounds the qtype label to common types; the rest count as "other".
var qtypeLabels = func() map[uint16]string {
	m := map[uint16]string{}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeSRV, dns.TypePTR,
		dns.TypeTXT, dns.TypeMX, dns.TypeNS, dns.TypeSOA, dns.TypeANY, dns.TypeHTTPS, dns.TypeSVCB,
		dns.TypeDS, dns.TypeDNSKEY, dns.TypeCAA, dns.TypeNAPTR} {
		m[t] = dns.TypeToString[t]
	}
	return m
}()

func qtypeLabel(t uint16) string {
	if s, ok := qtypeLabels[t]; ok {
		return s
	}
	return "other"
}

func rcodeLabel(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "other"
}
