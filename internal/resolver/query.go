package resolver

import (
	"context"

	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// query is one question being answered: the request and what is derived from it once (the
// lower-cased qname, the type), who asks, the table that answers (nil before the first) with
// its epoch, and the reply being built. Every step of an answer takes it whole.
type query struct {
	ctx    context.Context
	req    *dns.Msg
	qname  string // the question's name, lower-case (RFC 4343)
	qtype  uint16
	client Client
	t      *table.Table
	epoch  uint64
	// rep is held by value: a pointer to a Reply on Query's stack would escape with the
	// context (escape analysis does not tell fields apart), one allocation per query. A
	// sub-query builds none; its caller merges what upstream says.
	rep Reply
	// trace, when not nil, records the rules the answer goes through (Explain).
	trace *trace
}

// name is the question's name as the client spelt it, which owner names keep (0x20).
func (q *query) name() string { return q.req.Question[0].Name }

// sub derives the query that asks upstream about name, of q's type, on q's behalf: a CNAME
// target outside the table, a step of an autopath walk. It carries the client's CD bit (a
// validating upstream then passes on data it would hold back as bogus) and DO bit (DNSSEC
// records), so upstream and the cache see the question as the client would have asked it.
func (q *query) sub(name string) query {
	m := new(dns.Msg)
	m.SetQuestion(name, q.qtype)
	m.CheckingDisabled = q.req.CheckingDisabled
	if opt := q.req.IsEdns0(); opt != nil && opt.Do() {
		m.SetEdns0(opt.UDPSize(), true)
	}
	return query{ctx: q.ctx, req: m, qname: name, qtype: q.qtype, client: q.client, t: q.t, epoch: q.epoch, trace: q.trace}
}
