package response

import (
	"testing"

	"github.com/miekg/dns"
)

const (
	www = "www.example.org. 60 IN A 192.0.2.1"
	soa = "example.org. 300 IN SOA ns.example.org. hostmaster.example.org. 1 7200 1800 86400 60"
	ns  = "example.org. 300 IN NS ns.example.org."
)

// reply builds a reply to www.example.org. A as dig would show it: rcode, TC bit, answer and
// authority records.
func reply(t *testing.T, rcode int, tc bool, answer, authority []string) *dns.Msg {
	t.Helper()
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Rcode: rcode, Truncated: tc},
		Question: []dns.Question{{Name: "www.example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}}
	for _, s := range answer {
		m.Answer = append(m.Answer, mustRR(t, s))
	}
	for _, s := range authority {
		m.Ns = append(m.Ns, mustRR(t, s))
	}
	return m
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("record %q: %v", s, err)
	}
	return rr
}

func TestTypify(t *testing.T) {
	tests := []struct {
		name      string
		qtype     uint16 // A if 0
		rcode     int
		tc        bool
		answer    []string
		authority []string
		typ       Type
		failure   bool
		cache     NoCache
	}{
		{name: "answer", rcode: dns.RcodeSuccess, answer: []string{www}, typ: NoError},
		{name: "answer without SOA is cached", rcode: dns.RcodeSuccess, answer: []string{www}, authority: []string{ns}, typ: NoError},
		{name: "NODATA", rcode: dns.RcodeSuccess, authority: []string{soa}, typ: NoData},
		{name: "NODATA without SOA", rcode: dns.RcodeSuccess, typ: NoData, cache: NoSOA},
		{name: "referral", rcode: dns.RcodeSuccess, authority: []string{ns}, typ: NoData, cache: NoSOA},
		{name: "NXDOMAIN", rcode: dns.RcodeNameError, authority: []string{soa}, typ: NXDomain},
		{name: "NXDOMAIN after a CNAME", rcode: dns.RcodeNameError,
			answer: []string{"a.example.org. 60 IN CNAME gone.example.org."}, authority: []string{soa}, typ: NXDomain},
		{name: "NXDOMAIN without SOA", rcode: dns.RcodeNameError, typ: NXDomain, cache: NoSOA},
		{name: "SERVFAIL", rcode: dns.RcodeServerFailure, typ: ServFail, failure: true},
		{name: "REFUSED", rcode: dns.RcodeRefused, typ: Refused, failure: true, cache: NotAnAnswer},
		{name: "FORMERR", rcode: dns.RcodeFormatError, typ: OtherError, cache: NotAnAnswer},
		{name: "NOTIMP", rcode: dns.RcodeNotImplemented, typ: OtherError, cache: NotAnAnswer},
		{name: "extended rcode BADVERS", rcode: dns.RcodeBadVers, typ: OtherError, cache: NotAnAnswer},
		{name: "truncated answer", rcode: dns.RcodeSuccess, tc: true, answer: []string{www}, typ: NoError, cache: Truncated},
		{name: "CNAME chain to the asked type", rcode: dns.RcodeSuccess, typ: NoError,
			answer: []string{"www.example.org. 60 IN CNAME edge.example.net.", "edge.example.net. 60 IN A 192.0.2.1"}},
		{name: "CNAME chain listed backwards", rcode: dns.RcodeSuccess, typ: NoError,
			answer: []string{"b.example.net. 60 IN A 192.0.2.1", "a.example.net. 60 IN CNAME b.example.net.", "www.example.org. 60 IN CNAME a.example.net."}},
		{name: "CNAME asked for", qtype: dns.TypeCNAME, rcode: dns.RcodeSuccess, typ: NoError,
			answer: []string{"www.example.org. 60 IN CNAME edge.example.net."}},
		{name: "ANY answered by a CNAME", qtype: dns.TypeANY, rcode: dns.RcodeSuccess, typ: NoError,
			answer: []string{"www.example.org. 60 IN CNAME edge.example.net."}},
		{name: "owner in other case", rcode: dns.RcodeSuccess, typ: NoError, answer: []string{"WWW.Example.ORG. 60 IN A 192.0.2.1"}},
		{name: "CNAME only without SOA", rcode: dns.RcodeSuccess, typ: NoData, cache: NoSOA,
			answer: []string{"www.example.org. 60 IN CNAME edge.example.net."}},
		{name: "CNAME only with SOA", rcode: dns.RcodeSuccess, typ: NoData,
			answer: []string{"www.example.org. 60 IN CNAME edge.example.net."}, authority: []string{soa}},
		{name: "CNAME chain to another type", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess, typ: NoData, cache: NoSOA,
			answer: []string{"www.example.org. 60 IN CNAME edge.example.net.", "edge.example.net. 60 IN A 192.0.2.1"}},
		{name: "CNAME loop", rcode: dns.RcodeSuccess, typ: NoData, cache: NoSOA,
			answer: []string{"www.example.org. 60 IN CNAME a.example.net.", "a.example.net. 60 IN CNAME www.example.org."}},
		{name: "records of another owner", rcode: dns.RcodeSuccess, typ: NoData, cache: NoSOA,
			answer: []string{"other.example.org. 60 IN A 192.0.2.1"}},
		{name: "truncated SERVFAIL", rcode: dns.RcodeServerFailure, tc: true, typ: ServFail, failure: true, cache: Truncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := reply(t, tc.rcode, tc.tc, tc.answer, tc.authority)
			if tc.qtype != 0 {
				m.Question[0].Qtype = tc.qtype
			}
			typ := Typify(m)
			if typ != tc.typ {
				t.Errorf("Typify = %v, want %v", typ, tc.typ)
			}
			if got := typ.Failure(); got != tc.failure {
				t.Errorf("%v.Failure() = %v, want %v", typ, got, tc.failure)
			}
			if got := Cacheability(m, typ); got != tc.cache {
				t.Errorf("Cacheability = %q, want %q", got, tc.cache)
			}
		})
	}
}

func TestSOA(t *testing.T) {
	m := reply(t, dns.RcodeNameError, false, nil, []string{ns, soa})
	if got := SOA(m); got == nil || got.Minttl != 60 {
		t.Errorf("SOA = %v, want the authority's SOA", got)
	}
	if got := SOA(reply(t, dns.RcodeNameError, false, nil, []string{ns})); got != nil {
		t.Errorf("SOA without one = %v, want nil", got)
	}
}

func TestTypifyDoesNotAllocate(t *testing.T) {
	for _, answer := range [][]string{{www}, {"b.example.net. 60 IN A 192.0.2.1",
		"a.example.net. 60 IN CNAME b.example.net.", "www.example.org. 60 IN CNAME a.example.net."}} {
		m := reply(t, dns.RcodeSuccess, false, answer, nil)
		if n := testing.AllocsPerRun(100, func() { Typify(m) }); n != 0 {
			t.Errorf("Typify of %d answers allocated %v times", len(answer), n)
		}
	}
}

// TestRefusal: only REFUSED speaks against a server's health; SERVFAIL, like any other
// reply, shows it alive.
func TestRefusal(t *testing.T) {
	for _, typ := range []Type{NoError, NoData, NXDomain, ServFail, Refused, OtherError} {
		if got, want := typ.Refusal(), typ == Refused; got != want {
			t.Errorf("%v.Refusal() = %v, want %v", typ, got, want)
		}
	}
}
