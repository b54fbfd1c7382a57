package upstream

import (
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

// query builds the message sent upstream for req: a new ID, req's question, RD/CD/AD, and our
// own OPT record carrying only the client's DO bit.
func (f *Forwarder) query(req *dns.Msg) *dns.Msg {
	q := &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Id:                f.newID(),
			Opcode:            dns.OpcodeQuery,
			RecursionDesired:  req.RecursionDesired,
			CheckingDisabled:  req.CheckingDisabled,
			AuthenticatedData: req.AuthenticatedData, // RFC 6840 5.7: asks for AD in the reply
		},
		Question: []dns.Question{req.Question[0]},
	}
	return q.SetEdns0(f.opts.UDPSize, response.DO(req))
}

// parseReply unpacks b and returns it if it answers q, or nil.
func parseReply(b []byte, q *dns.Msg) *dns.Msg {
	resp, err := unpackReply(b)
	if err != nil || !answers(resp, q) {
		return nil
	}
	return resp
}

// unpackReply unpacks b. A truncated reply cut in the middle of a record is kept with empty
// sections: only its TC bit matters.
func unpackReply(b []byte) (*dns.Msg, error) {
	resp := new(dns.Msg)
	if err := resp.Unpack(b); err != nil {
		if !resp.Truncated {
			return nil, err
		}
		resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
	}
	return resp, nil
}

// answers reports whether resp is a reply to q: same ID, QR set, same opcode and question.
func answers(resp, q *dns.Msg) bool {
	return resp.Id == q.Id && resp.Response && resp.Opcode == q.Opcode && response.SameQuestion(resp, q)
}

// reply turns the upstream's response into a response to req. Rcode may exceed 15 when the
// upstream used an extended rcode; the caller's OPT record must then carry the upper bits.
// up may be shared by coalesced callers, so it is only read: each reply gets its own copy of
// the records, which callers are free to change (TTLs, owners).
func reply(req, up *dns.Msg) *dns.Msg {
	qname := req.Question[0].Name
	return &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Id:               req.Id,
			Response:         true,
			Opcode:           req.Opcode,
			RecursionDesired: req.RecursionDesired,
			CheckingDisabled: req.CheckingDisabled,
			Rcode:            up.Rcode,
			// AA clear: meshdns is not an authority for a name it forwards (RFC 1035 §4.1.1),
			// whatever the upstream is; a cached copy says the same.
			Authoritative:      false,
			RecursionAvailable: up.RecursionAvailable,
			// A coalesced joiner may not have asked for AD, though the flight's query did.
			AuthenticatedData: response.AD(up.AuthenticatedData, req),
			Truncated:         up.Truncated,
		},
		Question: []dns.Question{req.Question[0]},
		Answer:   copyRRs(up.Answer, qname),
		Ns:       copyRRs(up.Ns, qname),
		Extra:    copyRRs(up.Extra, qname),
	}
}

// copyRRs deep-copies rrs, leaving out the per-message records (response.PerMessage): the
// server adds its own EDNS. Owners equal to
// qname but for case are spelled as qname: up carries the spelling of whichever caller
// started the flight, or the upstream's own if it does not echo case (0x20).
func copyRRs(rrs []dns.RR, qname string) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if response.PerMessage(rr) {
			continue
		}
		rr = dns.Copy(rr)
		if h := rr.Header(); dnsname.EqualFold(h.Name, qname) {
			h.Name = qname
		}
		out = append(out, rr)
	}
	return out
}
