package response

import (
	"testing"

	"github.com/miekg/dns"
)

func TestPerMessage(t *testing.T) {
	opt := new(dns.OPT)
	opt.Hdr.Rrtype = dns.TypeOPT
	sig0 := &dns.SIG{RRSIG: dns.RRSIG{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSIG}, TypeCovered: 0}}
	oldSig := &dns.SIG{RRSIG: dns.RRSIG{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeSIG}, TypeCovered: dns.TypeA}}
	tsig := &dns.TSIG{Hdr: dns.RR_Header{Name: "key.", Rrtype: dns.TypeTSIG}}
	a := mustRR(t, www)
	rrsig := mustRR(t, "www.example.org. 60 IN RRSIG A 8 3 60 20300101000000 20200101000000 1 example.org. AAAA")
	for _, tc := range []struct {
		name string
		rr   dns.RR
		want bool
	}{
		{"OPT", opt, true}, {"TSIG", tsig, true}, {"SIG(0)", sig0, true},
		{"SIG over data", oldSig, false}, {"A", a, false}, {"RRSIG", rrsig, false},
	} {
		if got := PerMessage(tc.rr); got != tc.want {
			t.Errorf("PerMessage(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
	kept := WithoutPerMessage([]dns.RR{opt, a, tsig, rrsig, sig0})
	if len(kept) != 2 || kept[0] != a || kept[1] != rrsig {
		t.Errorf("WithoutPerMessage kept %v, want the A and the RRSIG", kept)
	}
	clean := []dns.RR{a, rrsig}
	if got := WithoutPerMessage(clean); &got[0] != &clean[0] {
		t.Error("WithoutPerMessage copied a section without per-message records")
	}
}
