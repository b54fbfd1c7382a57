package response

import "github.com/miekg/dns"

// NoCache is the reason a reply must not be cached, or Cacheable. The list is the one place
// the cache learns what may be kept; a SERVFAIL may, briefly (RFC 2308 §7.1).
type NoCache uint8

const (
	// Cacheable: nothing in the reply itself forbids keeping it.
	Cacheable NoCache = iota
	// Truncated: the reply is incomplete; the client ignores it and asks again over TCP
	// (RFC 2181 §9), so it answers nothing worth keeping.
	Truncated
	// NoSOA: a negative answer without an SOA in the authority section has no negative TTL
	// (RFC 2308 §5), and may be a referral rather than an answer. This includes NOERROR
	// replies holding only a CNAME chain that stops short of the asked type (NODATA): a
	// forwarder that could not resolve the target sends them, and keeping one would hide the
	// target's records for the CNAME's TTL.
	NoSOA
	// NotAnAnswer: REFUSED, FORMERR, NOTIMP and other errors speak of the query or of one
	// server's policy, not of the name (RFC 1035 §4.1.1); RFC 2308 provides only for
	// caching negative answers and SERVFAIL.
	NotAnAnswer
)

var noCacheNames = [...]string{"cacheable", "truncated", "negative without SOA", "not an answer"}

func (n NoCache) String() string { return noCacheNames[n] }

// Cacheability says whether m, of type t (Typify(m)), may be cached, and if not why.
func Cacheability(m *dns.Msg, t Type) NoCache {
	switch {
	case m.Truncated:
		return Truncated
	case t == Refused || t == OtherError:
		return NotAnAnswer
	case t.Negative() && SOA(m) == nil:
		return NoSOA
	}
	return Cacheable
}

// SOA returns the SOA record of m's authority section, which carries a negative answer's TTL
// (RFC 2308 §5), or nil.
func SOA(m *dns.Msg) *dns.SOA {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa
		}
	}
	return nil
}
