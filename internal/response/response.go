package response

import (
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/miekg/dns"
)

// Type is what a reply says.
type Type uint8

const (
	// NoError is NOERROR whose answer section answers the question: a record of the asked
	// type at the qname or at the end of the CNAME chain that starts there.
	NoError Type = iota
	// NoData is NOERROR without an answer to the question: the name exists, not with the
	// asked type (RFC 2308 §2.2). The answer section may hold a CNAME chain that stops short
	// of the asked type: its end has no such record, or the server did not resolve it. A
	// referral looks the same and is told apart by its missing SOA.
	NoData
	// NXDomain says the name does not exist (RFC 2308 §2.1), whatever CNAMEs led to it.
	NXDomain
	// ServFail says this server could not answer now (RFC 1035 §4.1.1).
	ServFail
	// Refused says this server will not answer us, by its policy (RFC 1035 §4.1.1).
	Refused
	// OtherError is any other rcode: FORMERR, NOTIMP, YXDOMAIN, extended rcodes. They speak
	// of the query itself, so another server would say the same.
	OtherError
)

var typeNames = [...]string{"NOERROR", "NODATA", "NXDOMAIN", "SERVFAIL", "REFUSED", "OTHERERROR"}

func (t Type) String() string { return typeNames[t] }

// Typify classifies m, a reply; it is cheap enough for the hot path (no allocation).
func Typify(m *dns.Msg) Type {
	switch m.Rcode {
	case dns.RcodeSuccess:
		if answers(m) {
			return NoError
		}
		return NoData
	case dns.RcodeNameError:
		return NXDomain
	case dns.RcodeServerFailure:
		return ServFail
	case dns.RcodeRefused:
		return Refused
	}
	return OtherError
}

// Failure reports whether t means this server could not or would not answer, so another
// server (or a stale answer) may do better: SERVFAIL or REFUSED. Other errors are answers
// for this purpose; asking elsewhere would not change them.
func (t Type) Failure() bool { return t == ServFail || t == Refused }

// Refusal reports whether t speaks of the server rather than of the name: REFUSED is the
// server's policy towards the asker (an ACL, recursion off) and holds for every name it is
// asked, where a SERVFAIL is most often one zone's trouble (a dead authority, broken DNSSEC)
// and other names still resolve. So SERVFAIL is an answer for the server's health; REFUSED,
// like silence, is not.
func (t Type) Refusal() bool { return t == Refused }

// Negative reports whether t says the name or the type does not exist (RFC 2308).
func (t Type) Negative() bool { return t == NXDomain || t == NoData }

// maxChain bounds the CNAME hops answers follows, so that a hostile reply (a long chain
// listed backwards) costs little; resolvers give up on longer chains too.
const maxChain = 16

// answers reports whether m's answer section answers its question (RFC 1034 §4.3.2): a record
// of the asked type owned by the qname, or by the end of the CNAME chain that starts there.
// ANY is answered by any record; a reply without one question, by any record.
func answers(m *dns.Msg) bool {
	if len(m.Answer) == 0 || len(m.Question) != 1 || m.Question[0].Qtype == dns.TypeANY {
		return len(m.Answer) > 0
	}
	name, qtype := m.Question[0].Name, m.Question[0].Qtype
	for range maxChain + 1 {
		next := ""
		for _, rr := range m.Answer {
			h := rr.Header()
			if !dnsname.EqualFold(h.Name, name) {
				continue
			}
			if h.Rrtype == qtype {
				return true
			}
			if c, ok := rr.(*dns.CNAME); ok && next == "" {
				next = c.Target
			}
		}
		if next == "" {
			return false
		}
		name = next
	}
	return false
}
