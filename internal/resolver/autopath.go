package resolver

import (
	"context"

	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// autopath answers the first query of a search-list walk with the walk's result. For a query
// X.<search[i]> it tries X.<search[i+1]>, ..., then X itself, exactly in the order the client's
// resolver would, and answers the first name that exists with a CNAME to its FQDN plus its
// records. Existence, not the query type, decides, so A and AAAA behave alike. The walk stops
// at a name the table cannot vouch for (outside the zone and not in the table), since only an
// upstream could say whether it exists; the query then gets the answer it would have had
// without autopath.
func (r *Resolver) autopath(ctx context.Context, req *dns.Msg, t *table.Table, qname string, c Client) (*dns.Msg, bool) {
	i := searchIndex(qname, c.Search)
	if i < 0 {
		return nil, false
	}
	stem := qname[:len(qname)-len(c.Search[i])]
	candidates := make([]string, 0, len(c.Search)-i)
	for _, d := range c.Search[i+1:] {
		candidates = append(candidates, stem+d)
	}
	candidates = append(candidates, stem)
	for _, name := range candidates {
		m, ok := t.Lookup(name, c.Namespace)
		if ok {
			return r.autopathAnswer(ctx, req, t, name, m, c), true
		}
		if !t.InZone(name) {
			return nil, false
		}
	}
	return nil, false
}

// searchIndex returns the first search domain that qname is strictly below, or -1.
func searchIndex(qname string, search []string) int {
	for i, d := range search {
		if len(qname) > len(d) && table.InDomain(qname, d) {
			return i
		}
	}
	return -1
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
