package response

import "github.com/miekg/dns"

// Type is what a reply says.
type Type uint8

const (
	// NoError is NOERROR with answer records.
	NoError Type = iota
	// NoData is NOERROR without answer records: the name exists, not with the asked type
	// (RFC 2308 §2.2); a referral looks the same and is told apart by its missing SOA.
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
		if len(m.Answer) > 0 {
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
