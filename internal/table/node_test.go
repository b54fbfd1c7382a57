package table

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// TestNodeRecordsByKind: records added to a node in any order of types come back by type, in
// the order added, and ANY gives them in kind order; replacing one type's records leaves the
// others; a slice Records returns cannot be appended to in place. Lists grown on the heap (as
// lookups do) and from a build's chunks behave alike.
func TestNodeRecordsByKind(t *testing.T) {
	for _, c := range []*chunks{nil, new(chunks)} {
		t.Run(map[bool]string{true: "heap", false: "chunks"}[c == nil], func(t *testing.T) { testNodeRecordsByKind(t, c) })
	}
}

func testNodeRecordsByKind(t *testing.T, c *chunks) {
	n := &Node{Name: "svc.ns.svc.cluster.local."}
	srv := func(port uint16) dns.RR {
		return &dns.SRV{Hdr: hdr(n.Name, dns.TypeSRV, 30), Weight: 100, Port: port, Target: n.Name}
	}
	ptr := &dns.PTR{Hdr: hdr(n.Name, dns.TypePTR, 30), Ptr: "x."}
	soa := &dns.SOA{Hdr: hdr(n.Name, dns.TypeSOA, 30), Ns: "ns.", Mbox: "mb."}
	n.set(c, kindSOA, []dns.RR{soa})
	n.add(c, kindSRV, srv(80))
	addAddr(c, n, netip.MustParseAddr("fd00::1"), 30)
	addAddr(c, n, netip.MustParseAddr("10.0.0.1"), 30)
	n.add(c, kindPTR, ptr)
	n.add(c, kindSRV, srv(443))
	addAddr(c, n, netip.MustParseAddr("10.0.0.2"), 30)
	n.add(c, kindExtra, n.Records(dns.TypeA)...)

	str := func(rrs []dns.RR) []string {
		var out []string
		for _, rr := range rrs {
			out = append(out, dns.TypeToString[rr.Header().Rrtype]+" "+rr.String()[len(rr.Header().String()):])
		}
		return out
	}
	want := map[uint16][]string{
		dns.TypeA:     {"A 10.0.0.1", "A 10.0.0.2"},
		dns.TypeAAAA:  {"AAAA fd00::1"},
		dns.TypeSRV:   {"SRV 0 100 80 svc.ns.svc.cluster.local.", "SRV 0 100 443 svc.ns.svc.cluster.local."},
		dns.TypePTR:   {"PTR x."},
		dns.TypeSOA:   {"SOA ns. mb. 0 0 0 0 0"},
		dns.TypeCNAME: nil,
		dns.TypeTXT:   nil,
	}
	check := func(step string) {
		t.Helper()
		for qtype, w := range want {
			if got := str(n.Records(qtype)); !slices.Equal(got, w) {
				t.Errorf("%s: %s records %q, want %q", step, dns.TypeToString[qtype], got, w)
			}
		}
		if got, w := str(n.Extra()), want[dns.TypeA]; !slices.Equal(got, w) {
			t.Errorf("%s: extra %q, want %q", step, got, w)
		}
		var any []string
		for _, qtype := range []uint16{dns.TypeCNAME, dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeSOA} {
			any = append(any, want[qtype]...)
		}
		if got := str(n.Records(dns.TypeANY)); !slices.Equal(got, any) {
			t.Errorf("%s: ANY %q, want %q", step, got, any)
		}
	}
	check("built")

	_ = append(n.Records(dns.TypeA), ptr) // must not overwrite the AAAA record after the As
	check("after an append to a returned slice")

	n.set(c, kindSRV, []dns.RR{srv(8080)})
	want[dns.TypeSRV] = []string{"SRV 0 100 8080 svc.ns.svc.cluster.local."}
	check("SRV replaced")
	if n.Empty() {
		t.Error("a node with records is Empty")
	}
	if (&Node{}).Empty() != true {
		t.Error("a node without records is not Empty")
	}
}

// TestReverseNames: the reverse name of an address reads back as the address; names of
// partial addresses, with leading zeros or bad digits, are not addresses.
func TestReverseNames(t *testing.T) {
	for _, s := range []string{"10.96.0.10", "0.0.0.0", "255.255.255.255", "192.0.2.1", "2001:db8::1", "fd00:10:96::a", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		ip := netip.MustParseAddr(s)
		if got, ok := parseReverse(reverseName(ip)); !ok || got != ip {
			t.Errorf("parseReverse(%q) = %v, %v; want %v", reverseName(ip), got, ok, ip)
		}
	}
	for _, name := range []string{
		"96.10.in-addr.arpa.", "1.10.0.96.10.in-addr.arpa.", "010.0.96.10.in-addr.arpa.", "256.0.96.10.in-addr.arpa.",
		"x.0.96.10.in-addr.arpa.", "10.0.96.10.in-addr.arpa", "in-addr.arpa.",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.x.",
		"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
		"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
		"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
	} {
		if ip, ok := parseReverse(name); ok {
			t.Errorf("parseReverse(%q) = %v, want no address", name, ip)
		}
	}
}

// TestNodeHoldsManyRecords: a name with more records than 16-bit counts hold (a headless
// service of tens of thousands of endpoints, over both families and with SRV records) keeps
// all of them, in order, before and after its records of one kind are replaced.
func TestNodeHoldsManyRecords(t *testing.T) {
	c := new(chunks) // as a build grows them
	n := &Node{Name: "big.ns.svc.cluster.local."}
	many := make([]dns.RR, 70_000)
	for i := range many {
		many[i] = &dns.A{Hdr: hdr(n.Name, dns.TypeA, 30), A: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).AsSlice()}
	}
	srv := &dns.SRV{Hdr: hdr(n.Name, dns.TypeSRV, 30), Weight: 100, Port: 80, Target: n.Name}
	n.add(c, kindSRV, srv)
	addAddr(c, n, netip.MustParseAddr("fd00::1"), 30)
	n.add(c, kindA, many...)
	n.add(c, kindExtra, many[:3]...)
	check := func(when string, a int) {
		t.Helper()
		if got := n.Records(dns.TypeA); len(got) != a || got[0] != many[0] || got[a-1] != many[a-1] {
			t.Errorf("%s: %d A records, want the first %d", when, len(got), a)
		}
		if got := n.Records(dns.TypeAAAA); len(got) != 1 {
			t.Errorf("%s: AAAA records %v, want 1", when, got)
		}
		if got := n.Records(dns.TypeSRV); len(got) != 1 || got[0] != srv {
			t.Errorf("%s: SRV records %v, want %v", when, got, srv)
		}
		if got := len(n.Extra()); got != 3 {
			t.Errorf("%s: %d Additional records, want 3", when, got)
		}
		if got := len(n.Records(dns.TypeANY)); got != a+2 {
			t.Errorf("%s: ANY gives %d records, want %d", when, got, a+2)
		}
	}
	check("70,000 A records", len(many))
	n.set(c, kindA, many[:2])
	check("replaced by 2", 2)
	n.add(c, kindA, many[2:]...)
	check("70,000 again", len(many))
}
