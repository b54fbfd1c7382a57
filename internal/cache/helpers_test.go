package cache_test

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	A    = dns.TypeA
	AAAA = dns.TypeAAAA

	NOERROR  = dns.RcodeSuccess
	NXDOMAIN = dns.RcodeNameError
	SERVFAIL = dns.RcodeServerFailure
	REFUSED  = dns.RcodeRefused
)

const soa = "example.com. 300 IN SOA ns.example.com. hostmaster.example.com. 1 7200 1800 86400 60"

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("record %q: %v", s, err)
	}
	return rr
}

func mustRRs(t testing.TB, ss []string) []dns.RR {
	t.Helper()
	var rrs []dns.RR
	for _, s := range ss {
		rrs = append(rrs, mustRR(t, s))
	}
	return rrs
}

// query is a client request as dig sends it: RD set, no EDNS unless asked for.
func query(qname string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	return m
}

func withDO(m *dns.Msg) *dns.Msg { return m.SetEdns0(1232, true) }

func withCD(m *dns.Msg) *dns.Msg {
	m.CheckingDisabled = true
	return m
}

// reply is upstream's answer to req.
func reply(t testing.TB, req *dns.Msg, rcode int, answer, ns []string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	m.Answer = mustRRs(t, answer)
	m.Ns = mustRRs(t, ns)
	return m
}

// ttls lists the TTLs of every record in m, section by section.
func ttls(m *dns.Msg) []uint32 {
	var out []uint32
	for _, s := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range s {
			out = append(out, rr.Header().Ttl)
		}
	}
	return out
}

// metric reads one sample from reg: a counter or a gauge, with at most one label value.
func metric(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
