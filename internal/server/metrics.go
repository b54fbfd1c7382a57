package server

import (
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the per-query counters of meshdns: every query is counted here, once, whichever
// path answered it (the fast path included), so no other package counts per query.
type Metrics struct {
	queries *prometheus.CounterVec
	dropped *prometheus.CounterVec
	panics  prometheus.Counter
	// tcpClosed counts TCP connections the server closed, by reason; disallowed counts
	// queries refused for the client's address, by transport.
	tcpClosed, disallowed *prometheus.CounterVec
	// autopathTable and autopathUpstream count autopath answers by where the walk found the
	// name.
	autopathTable, autopathUpstream prometheus.Counter
}

// NewMetrics registers the server's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	autopaths := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshdns_autopath_answers_total",
		Help: "Search-list queries answered with the walk's result, by where the name was found (table or upstream).",
	}, []string{"kind"})
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
		tcpClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_tcp_connections_closed_total",
			Help: "TCP connections the server closed, by reason: idle (no query within the idle timeout), slow (a query not whole within it), evicted (the longest idle, for a new connection when all were taken), client-limit (the client's own longest idle, for its new connection).",
		}, []string{"reason"}),
		disallowed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshdns_disallowed_queries_total",
			Help: "Queries answered REFUSED because the client's address is outside --allow-clients, by transport.",
		}, []string{"protocol"}),
		autopathTable:    autopaths.WithLabelValues("table"),
		autopathUpstream: autopaths.WithLabelValues("upstream"),
	}
	// Every reason and transport is known: show them at 0 from the start, for alerts on rates.
	for _, r := range []string{"idle", "slow", "evicted", "client-limit"} {
		m.tcpClosed.WithLabelValues(r)
	}
	for _, p := range []string{"udp", "tcp"} {
		m.disallowed.WithLabelValues(p)
	}
	reg.MustRegister(m.queries, m.dropped, m.panics, m.tcpClosed, m.disallowed, autopaths)
	return m
}

// counters are the metrics one answered query bumps; the zero value counts nothing.
type counters struct {
	queries  prometheus.Counter
	autopath prometheus.Counter // nil unless the answer is autopath's
}

// counters returns what a query of type qtype answered with rep over proto counts. The fast
// path keeps them with a stored reply, so that each reuse counts without a label lookup.
func (m *Metrics) counters(qtype string, rep resolver.Reply, proto string) counters {
	if m == nil {
		return counters{}
	}
	c := counters{queries: m.queries.WithLabelValues(qtype, rcodeLabel(rep.Msg.Rcode), proto, rep.Result.String())}
	switch {
	case rep.Result != resolver.ResultAutopath:
	case rep.AutopathUpstream:
		c.autopath = m.autopathUpstream
	default:
		c.autopath = m.autopathTable
	}
	return c
}

func (c counters) inc() {
	if c.queries != nil {
		c.queries.Inc()
	}
	if c.autopath != nil {
		c.autopath.Inc()
	}
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
	if rc == dns.RcodeBadVers {
		// 16 is both BADVERS and BADSIG; meshdns signs nothing, so it is always BADVERS here,
		// where the library's table says BADSIG.
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "other"
}
