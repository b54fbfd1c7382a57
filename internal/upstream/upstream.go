package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"
)

const (
	// DefaultTryTimeout bounds one exchange with one server.
	DefaultTryTimeout = 2 * time.Second
	// DefaultDeadline bounds a whole Forward, failover included.
	DefaultDeadline = 5 * time.Second
	// DefaultUDPSize is the EDNS UDP payload size advertised upstream and the receive buffer.
	DefaultUDPSize uint16 = 4096
	// minUDPSize is the floor for UDPSize: RFC 6891 treats smaller sizes as 512.
	minUDPSize uint16 = 512
)

var (
	errNoServers  = errors.New("upstream: no servers configured")
	errQuestion   = errors.New("upstream: request must have exactly one question")
	errNilRequest = errors.New("upstream: nil request")
)

// Options tunes a Forwarder. Zero values take the defaults.
type Options struct {
	TryTimeout time.Duration // per try, DefaultTryTimeout if zero
	Deadline   time.Duration // per Forward, DefaultDeadline if zero
	UDPSize    uint16        // EDNS size advertised and UDP receive buffer, DefaultUDPSize if zero
}

func (o Options) withDefaults() Options {
	if o.TryTimeout <= 0 {
		o.TryTimeout = DefaultTryTimeout
	}
	if o.Deadline <= 0 {
		o.Deadline = DefaultDeadline
	}
	if o.UDPSize == 0 {
		o.UDPSize = DefaultUDPSize
	}
	o.UDPSize = max(o.UDPSize, minUDPSize)
	return o
}

// Forwarder sends questions to a fixed, ordered list of upstream servers.
type Forwarder struct {
	servers []netip.AddrPort
	opts    Options
	newID   func() uint16 // query IDs; replaced in tests
}

// New returns a Forwarder for servers, tried in order. It does no I/O.
func New(servers []netip.AddrPort, opts Options) *Forwarder {
	return &Forwarder{
		servers: slices.Clone(servers),
		opts:    opts.withDefaults(),
		newID:   randomID,
	}
}

// randomID draws from math/rand/v2's global source: ChaCha8, seeded by the runtime from the OS.
func randomID() uint16 { return uint16(rand.Uint32()) }

// Servers returns a copy of the upstream servers in the order they are tried.
func (f *Forwarder) Servers() []netip.AddrPort { return slices.Clone(f.servers) }

// Forward sends a fresh query for req's single question and returns a response to req. Over
// UDP (tcp false) a truncated reply is retried over TCP. Servers are tried in order until one
// gives an answer that is not SERVFAIL or REFUSED; if none does, the last such reply is
// returned, and an error only when no server replied at all.
func (f *Forwarder) Forward(ctx context.Context, req *dns.Msg, tcp bool) (*dns.Msg, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if len(f.servers) == 0 {
		return nil, errNoServers
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Deadline)
	defer cancel()
	var failed *dns.Msg // last SERVFAIL/REFUSED reply
	var lastErr error
	for _, server := range f.servers {
		resp, err := f.try(ctx, server, req, tcp)
		switch {
		case err != nil:
			lastErr = fmt.Errorf("upstream %s: %w", server, err)
		case failover(resp.Rcode):
			failed = resp
		default:
			return reply(req, resp), nil
		}
		if ctxErr(ctx) != nil {
			break
		}
	}
	if failed != nil {
		return reply(req, failed), nil
	}
	return nil, lastErr
}

func checkRequest(req *dns.Msg) error {
	if req == nil {
		return errNilRequest
	}
	if len(req.Question) != 1 {
		return errQuestion
	}
	return nil
}

// failover reports whether an rcode means "this server cannot answer now, ask the next one".
func failover(rcode int) bool {
	return rcode == dns.RcodeServerFailure || rcode == dns.RcodeRefused
}

// try asks one server. A truncated UDP reply is retried over TCP; if TCP fails, the truncated
// reply is still an answer (the client will retry over TCP itself).
func (f *Forwarder) try(ctx context.Context, server netip.AddrPort, req *dns.Msg, tcp bool) (*dns.Msg, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	q := f.query(req)
	if tcp {
		return f.exchange(ctx, server, q, exchangeTCP)
	}
	resp, err := f.exchange(ctx, server, q, exchangeUDP)
	if err != nil || !resp.Truncated {
		return resp, err
	}
	if full, err := f.exchange(ctx, server, q, exchangeTCP); err == nil {
		return full, nil
	}
	return resp, nil
}

// exchange runs one transport under the per-try timeout. When the overall deadline or the
// caller's context ended the try, the context's error is returned instead of the I/O error.
func (f *Forwarder) exchange(ctx context.Context, server netip.AddrPort, q *dns.Msg, t transport) (*dns.Msg, error) {
	tryCtx, cancel := context.WithTimeout(ctx, f.opts.TryTimeout)
	defer cancel()
	resp, err := t(tryCtx, server, q, f.opts.UDPSize)
	if err != nil {
		if cerr := ctxErr(ctx); cerr != nil {
			return nil, cerr
		}
	}
	return resp, err
}

// ctxErr is ctx.Err, but also reports a deadline that has passed before ctx's own timer fired:
// socket deadlines, set from the same time, can expire first.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
