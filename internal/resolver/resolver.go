package resolver

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/ratelog"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// failureLogInterval is the least time between two log lines about upstream failures.
const failureLogInterval = 10 * time.Second

// maxChain caps the CNAMEs followed inside one answer (ExternalName to ExternalName ...): a
// longer chain is SERVFAIL.
const maxChain = 8

// Forwarder sends a question to the upstream resolvers. The response must carry req's ID and
// question.
type Forwarder interface {
	Forward(ctx context.Context, req *dns.Msg, tcp bool) (*dns.Msg, error)
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
)

var resultNames = [...]string{"table", "autopath", "upstream", "cache-hit", "cache-stale", "not-ready", "rejected", "error"}

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
	Logger           *slog.Logger
	Metrics          *Metrics
}

// Resolver answers queries from the current table and the forwarder.
type Resolver struct {
	table    atomic.Pointer[table.Table]
	zone     string
	opts     Options
	log      *slog.Logger
	fails    *ratelog.Limiter
	metrics  *Metrics
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
	r := &Resolver{zone: strings.ToLower(dns.Fqdn(o.Zone)), opts: o, log: log,
		fails: ratelog.New(log, failureLogInterval, nil), metrics: o.Metrics}
	r.bgCtx, r.bgCancel = context.WithCancel(context.Background())
	return r
}

// SetTable publishes a new table; queries already running keep the one they loaded.
func (r *Resolver) SetTable(t *table.Table) { r.table.Store(t) }

// Table returns the current table, nil before the first.
func (r *Resolver) Table() *table.Table { return r.table.Load() }

// Resolve answers req for client c. The response has no OPT record; the transport adds EDNS.
func (r *Resolver) Resolve(ctx context.Context, req *dns.Msg, c Client) (*dns.Msg, Result) {
	if req.Opcode != dns.OpcodeQuery {
		return reply(req, dns.RcodeNotImplemented), ResultRejected
	}
	if len(req.Question) != 1 {
		return reply(req, dns.RcodeFormatError), ResultRejected
	}
	q := req.Question[0]
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		// meshdns serves no zone transfers, and forwarding one would only proxy a stream.
		return reply(req, dns.RcodeRefused), ResultRejected
	}
	qname := strings.ToLower(q.Name)
	t := r.table.Load()
	inZone := table.InDomain(qname, r.zone)
	if inZone && q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return reply(req, dns.RcodeRefused), ResultRejected
	}
	if t == nil {
		if inZone {
			return reply(req, dns.RcodeServerFailure), ResultNotReady
		}
		return r.forward(ctx, req, c)
	}
	if m, ok := t.Lookup(qname, c.Namespace); ok {
		resp := r.authoritative(req)
		r.answer(ctx, resp, t, q.Name, m, q.Qtype, c)
		return resp, ResultTable
	}
	if !inZone {
		return r.forward(ctx, req, c)
	}
	if resp, ok := r.autopath(ctx, req, t, qname, c); ok {
		return resp, ResultAutopath
	}
	if r.opts.ForwardUnknownClusterNames {
		return r.forward(ctx, req, c)
	}
	resp := r.authoritative(req)
	resp.Rcode = dns.RcodeNameError
	resp.Ns = []dns.RR{t.SOA(t.Zone())}
	return resp, ResultTable
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
	m.RecursionAvailable = r.opts.Forwarder != nil
	return m
}

func (r *Resolver) forward(ctx context.Context, req *dns.Msg, c Client) (*dns.Msg, Result) {
	resp, result, err := r.upstream(ctx, req, c.TCP)
	if err != nil {
		m := reply(req, dns.RcodeServerFailure)
		m.RecursionAvailable = r.opts.Forwarder != nil
		return m, ResultError
	}
	return resp, result
}
