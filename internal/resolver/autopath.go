package resolver

import (
	"context"
	"time"

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
// When it answers, it sets rep.Msg and returns true; rep stays reusable only for a walk decided
// by the table alone.
func (r *Resolver) autopath(ctx context.Context, rep *Reply, req *dns.Msg, t *table.Table, qname string, c Client) bool {
	if len(c.Search) == 0 || len(qname) <= len(c.Search[0]) || !table.InDomain(qname, c.Search[0]) {
		return false
	}
	// The upstream steps are an optimisation: they must never make the client wait long for
	// an answer it would have had at once without them.
	ctx, cancel := context.WithTimeout(ctx, autopathUpstreamBudget)
	defer cancel()
	stem := qname[:len(qname)-len(c.Search[0])]
	for i := 1; i <= len(c.Search); i++ {
		name := stem
		if i < len(c.Search) {
			name += c.Search[i]
		}
		m, ok := t.Lookup(name, c.Namespace)
		switch {
		case ok && !m.Node.Empty():
			r.autopathAnswer(ctx, rep, req, t, name, m, c)
			return true
		case ok || t.InZone(name):
			if !ok && r.opts.ForwardUnknownClusterNames {
				return false
			}
			continue
		}
		rep.Reusable = false // the walk depends on upstream answers from here on
		resp, exists, decided := r.autopathUpstream(ctx, req, t, name, c)
		if !decided {
			return false
		}
		if exists {
			rep.Msg, rep.AutopathUpstream = resp, true
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
// authority). It returns the autopath answer when the name exists, and whether the upstream
// decided the question at all.
func (r *Resolver) autopathUpstream(ctx context.Context, req *dns.Msg, t *table.Table, name string, c Client) (resp *dns.Msg, exists, decided bool) {
	if a, ok := r.opts.Forwarder.(availability); ok && !a.Available() {
		return nil, false, false // every upstream is down: do not wait for one
	}
	q := req.Question[0]
	sub := new(dns.Msg)
	sub.SetQuestion(name, q.Qtype)
	sub.CheckingDisabled = req.CheckingDisabled
	up, _, _, err := r.upstream(ctx, sub, c.TCP)
	switch {
	case err != nil:
		return nil, false, false
	case up.Rcode == dns.RcodeNameError:
		return nil, false, true
	case up.Rcode != dns.RcodeSuccess:
		return nil, false, false
	}
	resp = r.authoritative(req)
	resp.Answer = append([]dns.RR{cname(q.Name, name, t.TTL())}, up.Answer...)
	if len(up.Answer) == 0 {
		resp.Ns = up.Ns
	}
	return resp, true, true
}

func (r *Resolver) autopathAnswer(ctx context.Context, rep *Reply, req *dns.Msg, t *table.Table, name string, m table.Match, c Client) {
	q := req.Question[0]
	target := name
	if m.Kind == table.Alias {
		// The CNAME always points at the FQDN, never at a short alias.
		target, m.Kind = m.Node.Name, table.Exact
	}
	rep.Msg = r.authoritative(req)
	rep.Msg.Answer = append(rep.Msg.Answer, cname(q.Name, target, t.TTL()))
	r.answer(ctx, rep, t, target, m, q.Qtype, c)
}
