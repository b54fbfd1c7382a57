package server

import (
	"net/netip"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
)

// allowed reports whether a query from addr is answered: AllowClients is nil (everyone) or
// holds a network of addr.
func (s *Server) allowed(addr netip.Addr) bool {
	if s.opts.AllowClients == nil {
		return true
	}
	addr = clientAddr(addr)
	for _, p := range s.opts.AllowClients {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// refuse answers a query from a client outside AllowClients: REFUSED with the question and
// the query's EDNS, nothing else, so the reply is never larger than the query (no
// amplification). Nothing is resolved or forwarded for it. Packets that are not queries get
// no reply, as from any client.
func (s *Server) refuse(pkt []byte, client netip.Addr, tcp bool) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		s.drop("malformed")
		return nil
	}
	if req.Response {
		s.drop("response")
		return nil
	}
	rep := resolver.Reply{Msg: rejection(req, dns.RcodeRefused), Result: resolver.ResultRejected}
	out, err := finish(req, rep.Msg, nil, dns.MinMsgSize) // no server cookie: nothing to amplify
	if err != nil {
		return nil
	}
	s.count(req, rep, tcp)
	if m := s.opts.Metrics; m != nil {
		m.disallowed.WithLabelValues(protoLabel(tcp)).Inc()
	}
	s.refusedLog.Warn("refused a query from a client outside --allow-clients", "client", client.String())
	return out
}

func protoLabel(tcp bool) string {
	if tcp {
		return "tcp"
	}
	return "udp"
}

// clientAddr is the form in which a client's address is compared by the allow-list, the
// per-client TCP limits and the upstream shares: a client on a dual-stack socket appears
// IPv4-mapped, a link-local one with its zone, which no prefix contains.
func clientAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }
