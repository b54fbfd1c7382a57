package response

import "github.com/miekg/dns"

// PerMessage reports whether rr belongs to the message that carried it rather than to the
// data it answers: the OPT pseudo-record (RFC 6891 §6.1.1) and transaction signatures, TSIG
// (RFC 8945) and SIG(0) (RFC 2931: a SIG covering type 0). They are never copied from an
// upstream's reply, cached or relayed: each reply meshdns sends carries its own EDNS and no
// signature, and a stray TSIG kept last would also stop truncation (dns.Msg.Truncate leaves
// a signed message whole).
func PerMessage(rr dns.RR) bool {
	switch v := rr.(type) {
	case *dns.OPT, *dns.TSIG:
		return true
	case *dns.SIG:
		return v.TypeCovered == 0
	}
	return false
}

// WithoutPerMessage returns rrs without the records PerMessage names, reusing rrs's array
// when it holds none.
func WithoutPerMessage(rrs []dns.RR) []dns.RR {
	for i, rr := range rrs {
		if PerMessage(rr) {
			out := rrs[:i:i]
			for _, rr := range rrs[i+1:] {
				if !PerMessage(rr) {
					out = append(out, rr)
				}
			}
			return out
		}
	}
	return rrs
}
