package resolver

import (
	"math/rand/v2"
	"strings"

	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// answer appends to q's reply the records of m for q's type, owned by owner (the question's
// spelling for the first name), following CNAMEs through the table and, when a chain leaves
// it, upstream.
func (r *Resolver) answer(q *query, owner string, m table.Match) {
	resp, t := q.rep.Msg, q.t
	for hop := 0; ; hop++ {
		n := m.Node
		if m.Kind == table.Alias {
			resp.Answer = append(resp.Answer, cname(owner, n.Name, t.TTL()))
			owner = n.Name
		}
		target, isAlias := n.Target()
		if !isAlias || q.qtype == dns.TypeCNAME || q.qtype == dns.TypeANY {
			r.records(q, owner, m)
			return
		}
		resp.Answer = append(resp.Answer, withOwner(n.Records(dns.TypeCNAME)[0], owner))
		if hop+1 > maxChain {
			// A loop or an absurd chain: no client could use the answer.
			q.trace.add(RuleCNAMELoop, n.Name, "SERVFAIL")
			resp.Rcode, resp.Answer = dns.RcodeServerFailure, nil
			return
		}
		q.trace.add(RuleCNAME, n.Name, target)
		next, ok := t.Lookup(target, q.client.Namespace)
		if !ok {
			r.chaseUpstream(q, target)
			return
		}
		q.trace.match(target, next)
		owner, m = target, next
		if m.Kind == table.Alias {
			m.Kind = table.Exact // target names are FQDNs; an alias hop would repeat the CNAME
		}
	}
}

// records appends the node's records of q's type, or the SOA for NODATA.
func (r *Resolver) records(q *query, owner string, m table.Match) {
	resp, n := q.rep.Msg, m.Node
	rrs := n.Records(q.qtype)
	if len(rrs) == 0 {
		q.trace.node(RuleNoData, n.Name, n)
		resp.Ns = append(resp.Ns, q.t.SOA(apex(q.t, n)))
		return
	}
	q.trace.node(RuleRecords, n.Name, n)
	start := len(resp.Answer)
	for _, rr := range rrs {
		resp.Answer = append(resp.Answer, withOwner(rr, owner))
	}
	if n.Shuffle && len(rrs) > 1 {
		q.rep.Reusable = false // each query gets its own order
		added := resp.Answer[start:]
		rand.Shuffle(len(added), func(i, j int) { added[i], added[j] = added[j], added[i] })
	}
	if q.qtype == dns.TypeSRV {
		resp.Extra = append(resp.Extra, n.Extra()...)
	}
}

// apex is the owner of the SOA for a negative answer about n: the cluster zone for its names,
// otherwise the ServiceEntry host itself (the base domain for a wildcard).
func apex(t *table.Table, n *table.Node) string {
	if t.InZone(n.Name) {
		return t.Zone()
	}
	return strings.TrimPrefix(n.Name, "*.")
}

// chaseUpstream completes a CNAME chain whose target the table does not know: a target in the
// cluster zone does not exist (NXDOMAIN, RFC 6604: the rcode speaks of the last name) unless
// unknown cluster names are forwarded; any other is asked upstream, as a sub-query of q.
func (r *Resolver) chaseUpstream(q *query, target string) {
	resp := q.rep.Msg
	if q.t.InZone(target) && !r.opts.ForwardUnknownClusterNames {
		q.trace.add(RuleCNAMENXDomain, target, "NXDOMAIN")
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, q.t.SOA(q.t.Zone()))
		return
	}
	q.rep.Reusable = false
	q.trace.add(RuleCNAMEUpstream, target, "")
	sub := q.sub(target)
	up, err := r.upstream(&sub)
	if err != nil {
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	resp.Rcode = up.msg.Rcode
	resp.Answer = append(resp.Answer, up.msg.Answer...)
	if len(up.msg.Answer) == 0 {
		resp.Ns = append(resp.Ns, up.msg.Ns...)
	}
}

func cname(owner, target string, ttl uint32) dns.RR {
	return &dns.CNAME{
		Hdr:    dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
		Target: target,
	}
}

// withOwner returns a copy of rr owned by owner; stored records are shared and never changed.
// The common types are copied by value, which is much cheaper than dns.Copy.
func withOwner(rr dns.RR, owner string) dns.RR {
	switch v := rr.(type) {
	case *dns.A:
		return shallow(v, owner)
	case *dns.AAAA:
		return shallow(v, owner)
	case *dns.CNAME:
		return shallow(v, owner)
	case *dns.SRV:
		return shallow(v, owner)
	case *dns.PTR:
		return shallow(v, owner)
	}
	c := dns.Copy(rr)
	c.Header().Name = owner
	return c
}

// shallow copies a record whose fields hold no shared mutable state and sets its owner.
func shallow[T any, P interface {
	*T
	dns.RR
}](v P, owner string) dns.RR {
	c := P(new(T))
	*(*T)(c) = *(*T)(v)
	c.Header().Name = owner
	return c
}
