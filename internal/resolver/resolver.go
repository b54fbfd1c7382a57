package resolver

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/ratelog"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/miekg/dns"
)

// failureLogInterval is the least time between two log lines about upstream failures.
const failureLogInterval = 10 * time.Second

// maxChain caps the CNAMEs followed inside one answer (ExternalName to ExternalName ...): a
// longer chain is SERVFAIL.
const maxChain = 8

// Forwarder sends a question to the upstream resolvers, on behalf of via.Source and over
// via's transport. The response must carry req's ID and question.
type Forwarder interface {
	Forward(ctx context.Context, req *dns.Msg, via upstream.Via) (*dns.Msg, error)
}

// Client is what the resolver knows about who asks.
type Client struct {
	// Namespace of the client; empty when unknown (then only names exported everywhere and
	// no bare short names are visible).
	Namespace string
	// Search is the client's search list: lowercase FQDNs, in resolv.conf order.
	Search []string
	// TCP is true when the query came over TCP (it is then forwarded over TCP).
	TCP bool
	// Addr is the address the query came from; invalid when unknown. Upstream queries are
	// shared fairly among addresses.
	Addr netip.Addr
}

// via is how q's client reaches upstream: its transport, and its share of the outstanding
// upstream queries.
func (c Client) via() upstream.Via {
	return upstream.Via{TCP: c.TCP, Source: upstream.AddrSource(c.Addr)}
}

// Result says which rule produced an answer; it labels metrics.
type Result uint8

const (
	ResultTable Result = iota
	ResultAutopath
	ResultUpstream
	ResultCacheHit
	ResultCacheStale
	ResultNotReady
	ResultRejected
	ResultError
	// ResultLocal is a CHAOS-class identity answer (version.bind and the like).
	ResultLocal
)

var resultNames = [...]string{"table", "autopath", "upstream", "cache-hit", "cache-stale", "not-ready", "rejected", "error", "local"}

func (r Result) String() string { return resultNames[r] }

// Options configure a Resolver.
type Options struct {
	// Zone is the cluster domain; needed before the first table to refuse zone names.
	Zone string
	// ForwardUnknownClusterNames forwards unknown names of the zone instead of NXDOMAIN.
	ForwardUnknownClusterNames bool
	// Forwarder answers names the table does not own; nil answers them SERVFAIL.
	Forwarder Forwarder
	// Cache keeps upstream answers; nil asks upstream every time.
	Cache *cache.Cache
	// StaleAnswerTimer is how long a query for an expired entry waits for upstream before the
	// stale answer goes out; 0 means DefaultStaleAnswerTimer.
	StaleAnswerTimer time.Duration
	// ChaosVersion answers CHAOS TXT version.bind and version.server, ChaosID hostname.bind and
	// id.server; empty refuses them.
	ChaosVersion, ChaosID string
	Logger                *slog.Logger
}

// Reply is a response and what the server may do with it.
type Reply struct {
	Msg    *dns.Msg
	Result Result
	// Reusable says the response depends on nothing but the question (name without case, type,
	// class), the client and the table of Epoch: the same question from the same client gets
	// the same response, but for the ID, the RD and CD bits and the question's spelling, for as
	// long as Epoch is current. Answers with upstream records or in random order are not.
	Reusable bool
	Epoch    uint64
	// Until, when set, ends the reuse earlier: a cached upstream answer, whose TTLs count down.
	Until time.Time
	// AutopathUpstream, with ResultAutopath, says the walk found the name upstream rather than
	// in the table.
	AutopathUpstream bool
}

// published is a table and the epoch that numbers it among the tables this resolver was given.
type published struct {
	t     *table.Table
	epoch uint64
}

// Resolver answers queries from the current table and the forwarder.
type Resolver struct {
	table    atomic.Pointer[published]
	zone     string
	opts     Options
	log      *slog.Logger
	fails    *ratelog.Limiter
	bg       sync.WaitGroup // background refreshes
	bgMu     sync.Mutex     // guards closed and bg.Add against Close
	closed   bool
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

// New returns a resolver with no table: zone names answer SERVFAIL until SetTable.
func New(o Options) *Resolver {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.StaleAnswerTimer <= 0 {
		o.StaleAnswerTimer = DefaultStaleAnswerTimer
	}
	r := &Resolver{zone: dnsname.Canonical(o.Zone), opts: o, log: log,
		fails: ratelog.New(log, failureLogInterval, nil)}
	r.bgCtx, r.bgCancel = context.WithCancel(context.Background())
	return r
}

// SetTable publishes a new table; queries already running keep the one they loaded.
func (r *Resolver) SetTable(t *table.Table) {
	var epoch uint64
	if p := r.table.Load(); p != nil {
		epoch = p.epoch
	}
	r.table.Store(&published{t: t, epoch: epoch + 1})
}

// Table returns the current table, nil before the first.
func (r *Resolver) Table() *table.Table {
	if p := r.table.Load(); p != nil {
		return p.t
	}
	return nil
}

// Epoch numbers the current table among those given to SetTable: 0 before the first, then
// 1, 2, ... A Reply is reusable only while its Epoch is current.
func (r *Resolver) Epoch() uint64 {
	if p := r.table.Load(); p != nil {
		return p.epoch
	}
	return 0
}

// Query answers req for client c and says whether the answer may be reused. The response
// has no OPT record and its RA bit means nothing: the server adds EDNS and sets RA.
func (r *Resolver) Query(ctx context.Context, req *dns.Msg, c Client) Reply {
	return r.resolve(ctx, req, c, nil)
}

// resolve is Query, recording its steps in tr when tr is not nil (Explain).
func (r *Resolver) resolve(ctx context.Context, req *dns.Msg, c Client, tr *trace) Reply {
	if rcode := Triage(req); rcode != dns.RcodeSuccess {
		tr.add(RuleRejected, "", dns.RcodeToString[rcode])
		return Reply{Msg: reply(req, rcode), Result: ResultRejected}
	}
	question := req.Question[0]
	if question.Qclass != dns.ClassINET && question.Qclass != dns.ClassANY {
		return r.otherClass(req, tr)
	}
	q := query{ctx: ctx, req: req, qname: dnsname.Lower(question.Name), qtype: question.Qtype, client: c, trace: tr}
	inZone := dnsname.InDomain(q.qname, r.zone)
	p := r.table.Load()
	if p == nil {
		if inZone {
			tr.add(RuleNotReady, q.qname, "no table yet")
			return notReady(req)
		}
		return r.forward(&q)
	}
	q.t, q.epoch = p.t, p.epoch
	return r.fromTable(&q, inZone)
}

// Triage returns the rcode refusing a request whatever its name and class, or NOERROR: an
// opcode other than QUERY, other than one question, or a question type QtypeRcode refuses.
func Triage(req *dns.Msg) int {
	switch {
	case req.Opcode != dns.OpcodeQuery:
		return dns.RcodeNotImplemented
	case len(req.Question) != 1:
		return dns.RcodeFormatError
	}
	return QtypeRcode(req.Question[0].Qtype)
}

// QtypeRcode returns the rcode refusing a question of type qtype, or NOERROR. Meta-types and
// the range kept for them (RFC 6895 §3.1) are never asked upstream: they describe a message,
// not data, and the answer would mean nothing. The rcodes are BIND's.
func QtypeRcode(qtype uint16) int {
	switch {
	case qtype == dns.TypeAXFR || qtype == dns.TypeIXFR:
		// meshdns serves no zone transfers, and forwarding one would only proxy a stream.
		return dns.RcodeRefused
	case qtype == dns.TypeMAILA || qtype == dns.TypeMAILB || qtype == dns.TypeTKEY:
		// Obsolete QTYPEs, and key negotiation meshdns does not do.
		return dns.RcodeNotImplemented
	case qtype == dns.TypeANY:
		return dns.RcodeSuccess
	case qtype == dns.TypeNone || qtype == dns.TypeOPT || qtype >= 128 && qtype <= 255:
		// Type 0, OPT, TSIG and the rest of the Q and Meta range: no question asks for them.
		return dns.RcodeFormatError
	}
	return dns.RcodeSuccess
}

// fromTable answers q once a table is published: from the table, by autopath, or upstream.
func (r *Resolver) fromTable(q *query, inZone bool) Reply {
	// Table answers are reusable unless a step below asks upstream or shuffles.
	q.rep = Reply{Result: ResultTable, Reusable: true, Epoch: q.epoch}
	if m, ok := q.t.Lookup(q.qname, q.client.Namespace); ok {
		q.trace.match(q.qname, m)
		q.rep.Msg = r.authoritative(q.req)
		r.answer(q, q.name(), m)
		return q.rep
	}
	q.trace.hidden(q.qname, q.client.Namespace, q.t)
	if !inZone {
		return r.forward(q)
	}
	if q.t.Partial() {
		// A source still syncing may define this name: neither autopath nor NXDOMAIN yet.
		q.trace.add(RuleNotReady, q.qname, "partial table: a source is not ready")
		return notReady(q.req)
	}
	if r.autopath(q) {
		q.rep.Result = ResultAutopath
		return q.rep
	}
	if r.opts.ForwardUnknownClusterNames {
		return r.forward(q)
	}
	q.trace.add(RuleNXDomain, q.qname, "not in the table")
	q.rep.Msg = r.authoritative(q.req)
	q.rep.Msg.Rcode = dns.RcodeNameError
	q.rep.Msg.Ns = []dns.RR{q.t.SOA(q.t.Zone())}
	return q.rep
}

// notReady is the answer to a zone name that the sources may define but have not delivered.
func notReady(req *dns.Msg) Reply {
	return Reply{Msg: reply(req, dns.RcodeServerFailure), Result: ResultNotReady}
}

func reply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	return m
}

func (r *Resolver) authoritative(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	return m
}

// forward answers q from upstream (through the cache); q's epoch is the table that left it to
// upstream (0 before the first). A cache hit is reusable within the time the cache gives.
func (r *Resolver) forward(q *query) Reply {
	q.trace.add(RuleForward, q.qname, "")
	up, err := r.upstream(q)
	if err != nil {
		return Reply{Msg: reply(q.req, dns.RcodeServerFailure), Result: ResultError}
	}
	rep := Reply{Msg: up.msg, Result: up.result}
	if up.result == ResultCacheHit && !up.until.IsZero() {
		// The answer also depends on the query's DO, CD and AD bits: a server reusing it must
		// keep it apart per combination of them.
		rep.Reusable, rep.Epoch, rep.Until = true, q.epoch, up.until
	}
	return rep
}
