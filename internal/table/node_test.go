package table

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// TestNodeRecordsByKind: records added to a node in any order of types come back by type, in
// the order added, and ANY gives them in kind order; replacing one type's records leaves the
// others; a slice Records returns cannot be appended to in place.
func TestNodeRecordsByKind(t *testing.T) {
	n := &Node{Name: "svc.ns.svc.cluster.local."}
	srv := func(port uint16) dns.RR { return srvRR(n.Name, 30, port, 100, n.Name) }
	ptr := &dns.PTR{Hdr: hdr(n.Name, dns.TypePTR, 30), Ptr: "x."}
	soa := &dns.SOA{Hdr: hdr(n.Name, dns.TypeSOA, 30), Ns: "ns.", Mbox: "mb."}
	n.set(kindSOA, []dns.RR{soa})
	n.add(kindSRV, srv(80))
	addAddr(n, netip.MustParseAddr("fd00::1"), 30)
	addAddr(n, netip.MustParseAddr("10.0.0.1"), 30)
	n.add(kindPTR, ptr)
	n.add(kindSRV, srv(443))
	addAddr(n, netip.MustParseAddr("10.0.0.2"), 30)
	n.add(kindExtra, n.Records(dns.TypeA)...)

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

	n.set(kindSRV, []dns.RR{srv(8080)})
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

// TestNodeHoldsAtMostMaxRecords: a name with more records than a DNS message could carry keeps
// the first 65,535 (the others are left out, whatever kind they are), and its records stay
// consistent; the Additional records of its SRV targets are not counted.
func TestNodeHoldsAtMostMaxRecords(t *testing.T) {
	n := &Node{Name: "big.ns.svc.cluster.local."}
	many := make([]dns.RR, 70_000)
	for i := range many {
		many[i] = &dns.A{Hdr: hdr(n.Name, dns.TypeA, 30), A: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).AsSlice()}
	}
	n.add(kindA, many...)
	n.add(kindSRV, srvRR(n.Name, 30, 80, 100, n.Name))
	n.add(kindExtra, many...)
	if got := len(n.Records(dns.TypeA)); got != maxRecords {
		t.Errorf("%d A records, want %d", got, maxRecords)
	}
	if got := n.Records(dns.TypeSRV); len(got) != 0 {
		t.Errorf("SRV records %v beyond the limit", got)
	}
	if got := len(n.Extra()); got != len(many) {
		t.Errorf("%d Additional records, want %d", got, len(many))
	}
	if last := n.Records(dns.TypeA)[maxRecords-1]; last != many[maxRecords-1] {
		t.Errorf("last A record %v, want %v: the first ones are kept", last, many[maxRecords-1])
	}
	n.set(kindA, many[:2])
	n.add(kindSRV, srvRR(n.Name, 30, 80, 100, n.Name))
	if a, srv := len(n.Records(dns.TypeA)), len(n.Records(dns.TypeSRV)); a != 2 || srv != 1 || len(n.Extra()) != len(many) {
		t.Errorf("after replacing the A records: %d A, %d SRV, %d Additional; want 2, 1, %d", a, srv, len(n.Extra()), len(many))
	}
}
