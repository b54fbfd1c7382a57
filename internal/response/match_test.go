package response

import (
	"testing"

	"github.com/miekg/dns"
)

func TestSameQuestion(t *testing.T) {
	req := new(dns.Msg).SetQuestion("Www.Example.org.", dns.TypeA)
	for _, tc := range []struct {
		name string
		resp *dns.Msg
		want bool
	}{
		{"same", new(dns.Msg).SetQuestion("Www.Example.org.", dns.TypeA), true},
		{"other case", new(dns.Msg).SetQuestion("wWW.example.ORG.", dns.TypeA), true},
		{"other type", new(dns.Msg).SetQuestion("www.example.org.", dns.TypeAAAA), false},
		{"other name", new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), false},
		{"no question", new(dns.Msg), false},
		{"nil", nil, false},
	} {
		if got := SameQuestion(tc.resp, req); got != tc.want {
			t.Errorf("%s: SameQuestion = %v, want %v", tc.name, got, tc.want)
		}
	}
	other := new(dns.Msg).SetQuestion("www.example.org.", dns.TypeA)
	other.Question[0].Qclass = dns.ClassCHAOS
	if SameQuestion(other, req) {
		t.Error("SameQuestion ignored the class")
	}
}

// TestAD: RFC 6840 §5.7, AD goes only to a client that asked with AD or DO.
func TestAD(t *testing.T) {
	plain := new(dns.Msg).SetQuestion("a.example.", dns.TypeA)
	withAD := plain.Copy()
	withAD.AuthenticatedData = true
	withDO := plain.Copy().SetEdns0(1232, true)
	for _, tc := range []struct {
		name string
		ad   bool
		req  *dns.Msg
		want bool
	}{
		{"validated, plain query", true, plain, false},
		{"validated, AD query", true, withAD, true},
		{"validated, DO query", true, withDO, true},
		{"not validated, AD query", false, withAD, false},
	} {
		if got := AD(tc.ad, tc.req); got != tc.want {
			t.Errorf("%s: AD = %v, want %v", tc.name, got, tc.want)
		}
	}
	if DO(plain) || !DO(withDO) {
		t.Error("DO misread the EDNS DO bit")
	}
}
