package resolver

import (
	"context"
	"time"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/response"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// autopath answers the first query of a search-list walk with the walk's result. For a query
// X.<search[0]> (only the first domain, as CoreDNS: a name below a later domain is a query of
// its own, e.g. reviews.svc.cluster.local, and must not be rewritten) it tries
// X.<search[1]>, ..., then X itself, in the order the client's resolver would, and answers the
// first name that exists with a CNAME to its FQDN plus its records.
//
// A name of the table exists when it has records (an empty non-terminal is NODATA to the
// client, which goes on walking: so do we); an unknown name of the zone does not. Any other
// name is asked upstream (through the cache): NXDOMAIN goes on, NOERROR ends the walk, even
// without records of the asked type, so A and AAAA behave alike. When the walk cannot be
// decided (upstream failure, or unknown cluster names forwarded), the query gets the answer
// it would have had without autopath.
//
// When it answers, it sets q's reply and returns true; the reply stays reusable only for a
// walk decided by the table alone.
func (r *Resolver) autopath(q *query) bool {
	search := q.client.Search
	if len(search) == 0 || len(q.qname) <= len(search[0]) || !dnsname.InDomain(q.qname, search[0]) {
		return false
	}
	// The upstream steps are an optimisation: they must never make the client wait long for
	// an answer it would have had at once without them.
	ctx, cancel := context.WithTimeout(q.ctx, autopathUpstreamBudget)
	defer cancel()
	walk := *q // the same query, its upstream steps under the walk's budget
	walk.ctx = ctx
	answered := r.walkSearch(&walk, q.qname[:len(q.qname)-len(search[0])])
	q.rep = walk.rep // even unanswered: a walk that asked upstream leaves it not reusable
	return answered
}

// walkSearch tries stem below each later search domain, then stem itself, for autopath.
func (r *Resolver) walkSearch(q *query, stem string) bool {
	search := q.client.Search
	for i := 1; i <= len(search); i++ {
		name := stem
		if i < len(search) {
			name += search[i]
		}
		m, ok := q.t.Lookup(name, q.client.Namespace)
		switch {
		case ok && !m.Node.Empty():
			q.trace.autopath(name, search, i, "the table")
			r.autopathAnswer(q, name, m)
			return true
		case ok || q.t.InZone(name):
			if !ok && r.opts.ForwardUnknownClusterNames {
				return false
			}
			continue
		}
		q.rep.Reusable = false // the walk depends on upstream answers from here on
		resp, exists, decided := r.autopathUpstream(q, name)
		if !decided {
			return false
		}
		if exists {
			q.trace.autopath(name, search, i, "upstream")
			q.rep.Msg, q.rep.AutopathUpstream = resp, true
			return true
		}
	}
	return false
}

// autopathUpstreamBudget bounds the upstream lookups of one autopath walk; past it the query
// gets its plain answer (NXDOMAIN) and the client walks on by itself.
const autopathUpstreamBudget = time.Second

// availability is implemented by forwarders that know when every upstream is down.
type availability interface{ Available() bool }

// autopathUpstream asks upstream about name (a step of the walk outside the table's
// authority), as a sub-query of q. It returns the autopath answer when the name exists, and
// whether the upstream decided the question at all.
func (r *Resolver) autopathUpstream(q *query, name string) (resp *dns.Msg, exists, decided bool) {
	if a, ok := r.opts.Forwarder.(availability); ok && !a.Available() {
		return nil, false, false // every upstream is down: do not wait for one
	}
	sub := q.sub(name)
	up, err := r.upstream(&sub)
	if err != nil {
		return nil, false, false
	}
	switch response.Typify(up.msg) {
	case response.NXDomain:
		return nil, false, true
	case response.NoError, response.NoData:
	default:
		return nil, false, false // a failure or an error: the walk stays undecided
	}
	resp = r.authoritative(q.req)
	resp.Answer = append([]dns.RR{cname(q.name(), name, q.t.TTL())}, up.msg.Answer...)
	if len(up.msg.Answer) == 0 {
		resp.Ns = up.msg.Ns
	}
	return resp, true, true
}

func (r *Resolver) autopathAnswer(q *query, name string, m table.Match) {
	target := name
	if m.Kind == table.Alias {
		// The CNAME always points at the FQDN, never at a short alias.
		target, m.Kind = m.Node.Name, table.Exact
	}
	q.rep.Msg = r.authoritative(q.req)
	q.rep.Msg.Answer = append(q.rep.Msg.Answer, cname(q.name(), target, q.t.TTL()))
	r.answer(q, target, m)
}
