package cache

import (
	"time"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

// key identifies what a cached answer answers. DO and CD are part of it because they change
// the answer: DNSSEC records, and whether a validating upstream filtered bogus data.
type key struct {
	qname         string // lowercased
	qtype, qclass uint16
	do, cd        bool
}

func keyOf(req *dns.Msg) key {
	q := req.Question[0]
	return key{qname: dnsname.Lower(q.Name), qtype: q.Qtype, qclass: q.Qclass, do: response.DO(req), cd: req.CheckingDisabled}
}

// kind says which store an answer belongs to and how it ages.
type kind uint8

const (
	uncacheable kind = iota
	positive
	negative
	servfail // kept in the negative store; never served stale
)

// answer is a stored response. It is never modified after Put, so Lookup may copy it without
// the lock.
type answer struct {
	kind   kind
	rcode  int
	ad     bool
	ttl    uint32 // lifetime in seconds
	stored time.Time
	// Deep copies of what is served: no OPT or TSIG, and of a negative answer or a SERVFAIL
	// only the answer section (a CNAME chain) and the SOA with its DNSSEC proof (keepDenial).
	// Each TTL is what the record is served with at Put time: its own TTL raised to MinTTL
	// (positive answers only) and capped at ttl.
	answer, ns, extra []dns.RR
}

// newAnswer returns the stored form of resp, or nil when resp is not worth caching.
func (c *Cache) newAnswer(resp *dns.Msg, now time.Time) *answer {
	k, ttl := c.lifetime(resp)
	if k == uncacheable || ttl == 0 {
		return nil
	}
	a := &answer{kind: k, rcode: resp.Rcode, ad: resp.AuthenticatedData, ttl: ttl, stored: now}
	if k == positive {
		a.answer = copyRRs(resp.Answer, c.minTTL, ttl, keepRecord)
		a.ns = copyRRs(resp.Ns, c.minTTL, ttl, keepRecord)
		a.extra = copyRRs(resp.Extra, c.minTTL, ttl, keepRecord)
	} else {
		a.answer = copyRRs(resp.Answer, 0, ttl, keepRecord)
		a.ns = copyRRs(resp.Ns, 0, ttl, keepDenial)
	}
	return a
}

// keepRecord keeps every record but the per-message ones (response.PerMessage): the server
// adds its own EDNS.
func keepRecord(rr dns.RR) bool { return !response.PerMessage(rr) }

// keepDenial keeps, of a negative answer's authority section, what a negative answer served
// from a cache is made of: the SOA (RFC 2308 §6) and the NSEC/NSEC3 records that prove the
// denial, with their signatures (RFC 4035 §3.1.3). NS records and the whole additional
// section are referral data no client needs with NXDOMAIN or NODATA, and an upstream can fill
// them to make every cached denial large.
func keepDenial(rr dns.RR) bool {
	t := rr.Header().Rrtype
	if sig, ok := rr.(*dns.RRSIG); ok {
		t = sig.TypeCovered
	}
	return t == dns.TypeSOA || t == dns.TypeNSEC || t == dns.TypeNSEC3
}

// lifetime says which store resp belongs to and how many seconds it stays fresh, from its
// classification; uncacheable for any reason response.Cacheability gives.
func (c *Cache) lifetime(resp *dns.Msg) (kind, uint32) {
	t := response.Typify(resp)
	if response.Cacheability(resp, t) != response.Cacheable {
		return uncacheable, 0
	}
	switch {
	case t == response.NoError:
		ttl := min(minTTL(resp.Answer), minTTL(resp.Ns))
		return positive, min(max(ttl, c.minTTL), c.maxTTL)
	case t.Negative():
		// A CNAME chain leading to the negative answer must not outlive its own TTL either.
		soa := response.SOA(resp) // present: Cacheability checked
		return negative, min(ttlOf(&soa.Hdr), soa.Minttl, minTTL(resp.Answer), c.maxTTL)
	case t == response.ServFail:
		return servfail, seconds(ServfailTTL)
	}
	return uncacheable, 0
}

// minTTL is the smallest TTL in rrs, ignoring OPT (its TTL field holds flags).
func minTTL(rrs []dns.RR) uint32 {
	m := uint32(ttlLimit)
	for _, rr := range rrs {
		if h := rr.Header(); h.Rrtype != dns.TypeOPT {
			m = min(m, ttlOf(h))
		}
	}
	return m
}

// ttlLimit is the largest TTL (RFC 2181 §8).
const ttlLimit = 1<<31 - 1

// ttlOf reads a TTL as RFC 2181 §8 says: one with the top bit set means 0.
func ttlOf(h *dns.RR_Header) uint32 {
	if h.Ttl > ttlLimit {
		return 0
	}
	return h.Ttl
}

// copyRRs deep-copies the records of rrs that keep accepts, with each TTL raised to floor and
// capped at ceil. A run of records with the same owner shares one name string: an unpacked
// message holds one per record, about a quarter of what an A record takes.
func copyRRs(rrs []dns.RR, floor, ceil uint32, keep func(dns.RR) bool) []dns.RR {
	n := 0
	for _, rr := range rrs {
		if keep(rr) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]dns.RR, 0, n)
	prev := ""
	for _, rr := range rrs {
		if !keep(rr) {
			continue
		}
		cp := dns.Copy(rr)
		h := cp.Header()
		h.Ttl = min(max(ttlOf(h), floor), ceil)
		if h.Name == prev {
			h.Name = prev
		}
		prev = h.Name
		out = append(out, cp)
	}
	return out
}

// serve builds a fresh response to req from a, elapsed after Put. The AD bit is kept only for
// clients that asked for it (response.AD) even if the request that filled the entry did.
func (a *answer) serve(req *dns.Msg, elapsed time.Duration, stale bool) *dns.Msg {
	q := req.Question[0]
	ttl := func(orig uint32) uint32 {
		if stale {
			return StaleTTL
		}
		return orig - min(orig, uint32(elapsed/time.Second))
	}
	return &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Id:                 req.Id,
			Response:           true,
			Opcode:             dns.OpcodeQuery,
			RecursionDesired:   req.RecursionDesired,
			CheckingDisabled:   req.CheckingDisabled,
			RecursionAvailable: true,
			AuthenticatedData:  response.AD(a.ad, req),
			Rcode:              a.rcode,
		},
		Question: []dns.Question{q},
		Answer:   serveRRs(a.answer, q.Name, ttl),
		Ns:       serveRRs(a.ns, q.Name, ttl),
		Extra:    serveRRs(a.extra, q.Name, ttl),
	}
}

// serveRRs copies rrs with their served TTL; records owned by the qname take the request's
// spelling, since 0x20-randomising clients compare it.
func serveRRs(rrs []dns.RR, qname string, ttl func(uint32) uint32) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		cp := dns.Copy(rr)
		h := cp.Header()
		h.Ttl = ttl(h.Ttl)
		if h.Name != qname && dnsname.EqualFold(h.Name, qname) {
			h.Name = qname
		}
		out[i] = cp
	}
	return out
}

// isQuery reports whether req is a request the cache can answer: one question, opcode QUERY.
func isQuery(req *dns.Msg) bool {
	return req != nil && req.Opcode == dns.OpcodeQuery && len(req.Question) == 1
}
