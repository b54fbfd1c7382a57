package response

import (
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/miekg/dns"
)

// SameQuestion reports whether resp holds exactly one question and it is req's first: the
// same type and class, the name equal but for ASCII case (RFC 4343). A reply to another
// question answers nothing asked (RFC 5452 §3).
func SameQuestion(resp, req *dns.Msg) bool {
	if resp == nil || len(resp.Question) != 1 || len(req.Question) == 0 {
		return false
	}
	got, want := resp.Question[0], req.Question[0]
	return got.Qtype == want.Qtype && got.Qclass == want.Qclass && dnsname.EqualFold(got.Name, want.Name)
}

// AD is the AD bit of a reply to req whose data was validated (ad): set only for a client that
// asked for it with AD or DO (RFC 6840 §5.7), whoever asked when the data was fetched.
func AD(ad bool, req *dns.Msg) bool {
	if !ad {
		return false
	}
	return req.AuthenticatedData || DO(req)
}

// DO reports whether m asks for DNSSEC records (the EDNS DO bit, RFC 3225): answers with and
// without them differ, so caches and in-flight questions keep them apart.
func DO(m *dns.Msg) bool {
	opt := m.IsEdns0()
	return opt != nil && opt.Do()
}
