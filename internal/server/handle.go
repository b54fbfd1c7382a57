package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"runtime/debug"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

// handle answers one packet from the client at from and returns the packed reply, or nil to
// send nothing.
func (s *Server) handle(pkt []byte, from netip.Addr, tcp bool) []byte {
	req, rep := s.check(pkt)
	if req == nil {
		return nil
	}
	if rep.Msg == nil {
		rep = s.resolve(req, from, tcp)
		if out := s.reuse(pkt, from, req, rep, tcp); out != nil {
			return out
		}
	}
	limit := dns.MaxMsgSize
	if !tcp {
		limit = udpLimit(req, s.opts.MaxUDPSize)
	}
	var buf [cookieReplyLen]byte
	cookie := s.cookieAnswer(&buf, queryCookie(req), from)
	out, err := finish(req, rep.Msg, cookie, limit)
	if err != nil {
		// A reply that does not pack fails the same way for every query asking for it.
		s.packFails.Error("packing response", "qname", req.Question, "err", err)
		rep = resolver.Reply{Msg: servfail(req), Result: resolver.ResultError}
		if out, err = finish(req, rep.Msg, cookie, limit); err != nil {
			return nil
		}
	}
	s.count(req, rep, tcp)
	if s.opts.LogQueries {
		s.log.Info("query", "question", fmt.Sprint(req.Question), "tcp", tcp,
			"rcode", rcodeLabel(rep.Msg.Rcode), "answers", len(rep.Msg.Answer), "result", rep.Result.String())
	}
	return out
}

// check unpacks pkt and applies the server's rules for a query's packet (rules.go) before
// anything is resolved or forwarded. It returns the request and, for a rejected one, the
// rejection; a nil request gets no reply: a response, or a packet whose header and question
// cannot be read (no amplification, no reflection loops).
func (s *Server) check(pkt []byte) (*dns.Msg, resolver.Reply) {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		if req = malformed(pkt); req == nil {
			s.drop("malformed")
			return nil, resolver.Reply{}
		}
		return req, resolver.Reply{Msg: rejection(req, dns.RcodeFormatError), Result: resolver.ResultRejected}
	}
	if req.Response {
		s.drop("response")
		return nil, resolver.Reply{}
	}
	if rcode := packetRcode(pkt, req); rcode != dns.RcodeSuccess {
		return req, resolver.Reply{Msg: rejection(req, rcode), Result: resolver.ResultRejected}
	}
	return req, resolver.Reply{}
}

func rejection(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Rcode = rcode
	return m
}

// resolve runs the resolver, turning a panic into SERVFAIL for this query only.
func (s *Server) resolve(req *dns.Msg, from netip.Addr, tcp bool) (rep resolver.Reply) {
	defer func() {
		if p := recover(); p != nil {
			if m := s.opts.Metrics; m != nil {
				m.panics.Inc()
			}
			// A packet that panics once may come again and again: one stack per interval.
			s.panicLog.Error("panic answering query", "question", fmt.Sprint(req.Question), "panic", p, "stack", string(debug.Stack()))
			rep = resolver.Reply{Msg: servfail(req), Result: resolver.ResultError}
		}
	}()
	ctx, cancel := context.WithTimeout(s.ctx, queryTimeout)
	defer cancel()
	c := s.clientFor(from)
	c.TCP, c.Addr = tcp, from
	return s.res.Query(ctx, req, c)
}

func servfail(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	return m
}

// udpLimit is the largest UDP reply to req, at most maxSize (the server's MaxUDPSize).
func udpLimit(req *dns.Msg, maxSize int) int {
	if opt := req.IsEdns0(); opt != nil {
		return replyLimit(true, opt.UDPSize(), maxSize)
	}
	return replyLimit(false, 0, maxSize)
}

// replyLimit is the largest UDP reply to a query: 512 bytes without EDNS (RFC 1035 §4.2.1),
// else the size the client advertises, at least 512 (RFC 6891 §6.2.5) and at most maxSize.
// Both paths (udpLimit, wireQuery.limit) ask it.
func replyLimit(edns bool, advertised uint16, maxSize int) int {
	if !edns {
		return dns.MinMsgSize
	}
	return min(max(int(advertised), dns.MinMsgSize), maxSize)
}

// finish applies the transport rules to resp: EDNS0 echoed when the query had it, with cookie
// (the COOKIE option's data, nil for none), compression, and truncation with TC to limit
// (which counts the OPT record); then packs it.
func finish(req, resp *dns.Msg, cookie []byte, limit int) ([]byte, error) {
	resp.Id = req.Id
	setServerBits(resp)
	resp.Extra = response.WithoutPerMessage(resp.Extra)
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(ednsSize, opt.Do())
		if cookie != nil {
			o := resp.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(cookie)})
		}
	}
	resp.Truncate(limit)
	// Truncate turns compression off when the message fits without; keep it on: replies are
	// smaller, and no larger than the fast path's (which compresses too).
	resp.Compress = true
	out, err := resp.Pack()
	if err == nil && len(out) > limit {
		// Truncate could not cut it down (it keeps a message whole that it cannot shorten):
		// never send more than the transport allows, nor a TCP length that wraps.
		err = fmt.Errorf("reply of %d bytes is larger than %d after truncation", len(out), limit)
	}
	return out, err
}

// setServerBits sets the header bits that are the server's to say, whoever built resp. RA:
// meshdns offers recursion to every client it answers, so every reply says so, to RD=0
// queries too (as BIND does for clients allowed recursion), rejections and failures included;
// an upstream's own RA, often clear, says nothing about meshdns.
func setServerBits(resp *dns.Msg) {
	resp.RecursionAvailable = true
}

func (s *Server) drop(reason string) {
	if m := s.opts.Metrics; m != nil {
		m.dropped.WithLabelValues(reason).Inc()
	}
}

// closed counts a TCP connection the server closed.
func (s *Server) closed(reason string) {
	if m := s.opts.Metrics; m != nil {
		m.tcpClosed.WithLabelValues(reason).Inc()
	}
}

// count counts a query answered by the general path; the fast path counts with counters kept
// with the stored reply.
func (s *Server) count(req *dns.Msg, rep resolver.Reply, tcp bool) {
	qtype, proto := "none", "udp"
	if len(req.Question) > 0 {
		qtype = qtypeLabel(req.Question[0].Qtype)
	}
	if tcp {
		proto = "tcp"
	}
	s.opts.Metrics.counters(qtype, rep, proto).inc()
}

// queryCookie returns the data of the first COOKIE option of req (RFC 7873 §5.2), or nil.
func queryCookie(req *dns.Msg) []byte {
	opt := req.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if c, ok := o.(*dns.EDNS0_COOKIE); ok {
			b, err := hex.DecodeString(c.Cookie)
			if err != nil {
				return nil
			}
			return b
		}
	}
	return nil
}
