package resolver

import (
	"context"

	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// autopath answers the first query of a search-list walk with the walk's result. For a query
// X.<search[0]> (only the first domain, as CoreDNS: a name below a later domain is a query of
// its own, e.g. reviews.svc.cluster.local, and must not be rewritten) it tries
// X.<search[1]>, ..., then X itself, in the order the client's resolver would, and answers the
// first name that resolves positively (has records) with a CNAME to its FQDN plus its records.
// Existence, not the query type, decides, so A and AAAA behave alike. A name without records
// (an empty non-terminal) would be NODATA to the client, which goes on walking: so do we. The
// walk stops at a name the table cannot vouch for (outside the zone and not in the table),
// since only an upstream could say whether it exists; the query then gets the answer it would
// have had without autopath.
func (r *Resolver) autopath(ctx context.Context, req *dns.Msg, t *table.Table, qname string, c Client) (*dns.Msg, bool) {
	if len(c.Search) == 0 || len(qname) <= len(c.Search[0]) || !table.InDomain(qname, c.Search[0]) {
		return nil, false
	}
	stem := qname[:len(qname)-len(c.Search[0])]
	for i := 1; i <= len(c.Search); i++ {
		name := stem
		if i < len(c.Search) {
			name += c.Search[i]
		}
		m, ok := t.Lookup(name, c.Namespace)
		if ok && !m.Node.Empty() {
			return r.autopathAnswer(ctx, req, t, name, m, c), true
		}
		if !ok && !t.InZone(name) {
			return nil, false
		}
	}
	return nil, false
}

func (r *Resolver) autopathAnswer(ctx context.Context, req *dns.Msg, t *table.Table, name string, m table.Match, c Client) *dns.Msg {
	q := req.Question[0]
	target := name
	if m.Kind == table.Alias {
		// The CNAME always points at the FQDN, never at a short alias.
		target, m.Kind = m.Node.Name, table.Exact
	}
	resp := r.authoritative(req)
	resp.Answer = append(resp.Answer, cname(q.Name, target, t.TTL()))
	r.answer(ctx, resp, t, target, m, q.Qtype, c)
	return resp
}
