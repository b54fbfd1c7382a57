package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil/unbound"
	"github.com/miekg/dns"
)

// hugeTXT is an RRset of 14 TXT records of 240 bytes each: a reply of about 3.5 KiB, past
// unbound's default max-udp-size of 1232 and under the 4096 bytes we advertise.
var hugeTXT = func() []string {
	var rrs []string
	for i := range 14 {
		rrs = append(rrs, fmt.Sprintf(`huge.test. 30 in txt "%02d%s"`, i, strings.Repeat(string(rune('a'+i)), 238)))
	}
	return rrs
}()

const (
	soaRR = "test. 3600 in soa ns.test. hostmaster.test. 1 3600 600 86400 60"
	// negativeSOA is soaRR as unbound puts it in negative answers: TTL lowered to the SOA
	// minimum (RFC 2308 section 3), the negative TTL a cache must use.
	negativeSOA = "test. 60 in soa ns.test. hostmaster.test. 1 3600 600 86400 60"
)

func unboundConf(extra ...string) string {
	lines := []string{
		`local-zone: "test." static`,
		`local-data: "` + soaRR + `"`,
		`local-data: "a.test. 30 IN A 192.0.2.10"`,
		"max-udp-size: 4096", // let UDP carry what the client's EDNS size allows
	}
	for _, rr := range hugeTXT {
		lines = append(lines, "local-data: '"+rr+"'")
	}
	return strings.Join(append(lines, extra...), "\n")
}

func TestForwardUnbound(t *testing.T) {
	servers := map[string]netip.AddrPort{
		"both":     unbound.Start(t, unboundConf()),
		"udp-only": unbound.Start(t, unboundConf("do-tcp: no")), // a TCP retry would fail
		"tcp-only": unbound.Start(t, unboundConf("do-udp: no")),
	}
	tests := []struct {
		name     string
		server   string
		networks []string // client transports; both if nil
		qname    string
		qtype    uint16
		rcode    int
		answer   []string
		soa      bool // negative answer: the zone's SOA in the authority section
	}{
		{name: "A", server: "both", qname: "a.test.", qtype: dns.TypeA,
			answer: []string{"a.test. 30 in a 192.0.2.10"}},
		{name: "NXDOMAIN with SOA", server: "both", qname: "nothing.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, soa: true},
		{name: "NODATA with SOA", server: "both", qname: "a.test.", qtype: dns.TypeAAAA, soa: true},
		{name: "3.5 KiB TXT whole", server: "both", qname: "huge.test.", qtype: dns.TypeTXT, answer: hugeTXT},
		{name: "3.5 KiB TXT whole over UDP alone", server: "udp-only", networks: []string{"udp"},
			qname: "huge.test.", qtype: dns.TypeTXT, answer: hugeTXT},
		// UDP clients too: the refused UDP try falls back to TCP.
		{name: "TCP-only upstream: A", server: "tcp-only", qname: "a.test.",
			qtype: dns.TypeA, answer: []string{"a.test. 30 in a 192.0.2.10"}},
		{name: "TCP-only upstream: 3.5 KiB TXT", server: "tcp-only",
			qname: "huge.test.", qtype: dns.TypeTXT, answer: hugeTXT},
	}
	for _, tc := range tests {
		for _, network := range cmpOr(tc.networks, networks) {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				f := newForwarder(t, []netip.AddrPort{servers[tc.server]}, fastOpts, 0)
				req := newRequest(tc.qname, tc.qtype)
				resp, err := f.Forward(context.Background(), req, Via{TCP: network == "tcp"})
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				checkReply(t, req, resp)
				if resp.Rcode != tc.rcode || resp.Truncated {
					t.Errorf("rcode %s tc %v, want %s tc false", dns.RcodeToString[resp.Rcode], resp.Truncated,
						dns.RcodeToString[tc.rcode])
				}
				if got := sorted(rrStrings(resp.Answer)); !slices.Equal(got, sorted(tc.answer)) {
					t.Errorf("answer\n got %q\nwant %q", got, tc.answer)
				}
				checkSOA(t, resp, tc.soa)
			})
		}
	}
}

func checkSOA(t *testing.T, resp *dns.Msg, want bool) {
	t.Helper()
	var ns []string
	for _, rr := range resp.Ns {
		if rr.Header().Rrtype == dns.TypeSOA {
			ns = append(ns, rrStrings([]dns.RR{rr})...)
		}
	}
	var wantNS []string
	if want {
		wantNS = []string{negativeSOA}
	}
	if !slices.Equal(ns, wantNS) {
		t.Errorf("authority SOA %q, want %q", ns, wantNS)
	}
}

// cmpOr returns s unless it is empty.
func cmpOr(s, fallback []string) []string {
	if len(s) == 0 {
		return fallback
	}
	return s
}
