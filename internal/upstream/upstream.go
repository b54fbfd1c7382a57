package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshdns/meshdns/internal/fairshare"
	"github.com/meshdns/meshdns/internal/ratelog"
	"github.com/miekg/dns"
)

const (
	// DefaultTryTimeout bounds one exchange with one server.
	DefaultTryTimeout = 2 * time.Second
	// DefaultDeadline bounds a whole Forward, failover included.
	DefaultDeadline = 5 * time.Second
	// DefaultUDPSize is the EDNS UDP payload size advertised upstream.
	DefaultUDPSize uint16 = 4096
	// DefaultFailThreshold is how many consecutive failures mark a server down.
	DefaultFailThreshold = 3
	// DefaultMaxOutstanding caps the upstream exchanges in flight at once.
	DefaultMaxOutstanding = 1000
	// minUDPSize is the floor for UDPSize: RFC 6891 treats smaller sizes as 512.
	minUDPSize uint16 = 512
	// failureLogInterval is the least time between two log lines about failed tries.
	failureLogInterval = 10 * time.Second
)

// ErrOverloaded is returned (wrapped) by Forward when Options.MaxOutstanding exchanges are
// already in flight, or the asker holds its share of them; the caller should answer SERVFAIL
// rather than queue.
var ErrOverloaded = errors.New("upstream: too many outstanding queries")

var (
	errNoServers  = errors.New("upstream: no servers configured")
	errQuestion   = errors.New("upstream: request must have exactly one question")
	errNilRequest = errors.New("upstream: nil request")
)

// Options tunes a Forwarder. Zero values take the defaults.
type Options struct {
	TryTimeout     time.Duration // per try, DefaultTryTimeout if zero
	Deadline       time.Duration // per Forward, DefaultDeadline if zero
	UDPSize        uint16        // EDNS size advertised, DefaultUDPSize if zero
	Policy         Policy        // order of the servers, Sequential if zero
	FailThreshold  int           // consecutive failures that mark a server down, DefaultFailThreshold if zero
	MaxOutstanding int           // exchanges in flight at once, DefaultMaxOutstanding if zero

	Now     func() time.Time // clock for health backoff and latency, time.Now if nil
	Metrics *Metrics         // nil: no metrics
	Logger  *slog.Logger     // rate-limited failure lines; discarded if nil
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
	if o.FailThreshold <= 0 {
		o.FailThreshold = DefaultFailThreshold
	}
	if o.MaxOutstanding <= 0 {
		o.MaxOutstanding = DefaultMaxOutstanding
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Forwarder sends questions to an ordered list of upstream servers. It is safe for concurrent
// use; SetServers may run while queries are in flight.
type Forwarder struct {
	opts    Options
	servers atomic.Pointer[[]*server] // published copy-on-write by SetServers
	flights coalescer
	fails   *ratelog.Limiter
	// overloads logs refused questions apart from failed tries: a flood of one must not
	// hide the other.
	overloads *ratelog.Limiter

	setMu  sync.Mutex // serialises SetServers and Close
	closed bool       // under setMu: pools of later servers start closed

	newID       func() uint16   // query IDs; replaced in tests
	randIntN    func(n int) int // first server of the Random policy; replaced in tests
	idleTimeout time.Duration   // idle TCP connections; shortened in tests
}

// New returns a Forwarder for servers (duplicates dropped), tried according to opts.Policy.
// It does no I/O.
func New(servers []netip.AddrPort, opts Options) *Forwarder {
	opts = opts.withDefaults()
	f := &Forwarder{
		opts:        opts,
		flights:     coalescer{m: map[flightKey]*flight{}, shares: fairshare.New[Source](opts.MaxOutstanding)},
		fails:       ratelog.New(opts.Logger, failureLogInterval, opts.Now),
		overloads:   ratelog.New(opts.Logger, failureLogInterval, opts.Now),
		newID:       randomID,
		randIntN:    rand.IntN,
		idleTimeout: idleTCPTimeout,
	}
	f.SetServers(servers)
	return f
}

// randomID draws from math/rand/v2's global source: ChaCha8, seeded by the runtime from the OS.
func randomID() uint16 { return uint16(rand.Uint32()) }

// Forward sends a fresh query for req's single question and returns a response to req. A
// question that came over UDP (via.TCP false) goes over UDP, a truncated reply then retried
// over TCP. Servers are tried according to the policy until one gives an answer that is not
// SERVFAIL or REFUSED; if none does, the last such reply is returned, and an error only when
// no server replied at all. An identical question already in flight is not sent again: this
// call waits for that exchange instead. A new exchange takes one of via.Source's share of the
// outstanding upstream queries; beyond it Forward fails at once with ErrOverloaded.
func (f *Forwarder) Forward(ctx context.Context, req *dns.Msg, via Via) (*dns.Msg, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	if len(f.current()) == 0 {
		return nil, errNoServers
	}
	fl, err := f.join(ctx, req, via)
	if err != nil {
		return nil, err
	}
	return f.wait(ctx, fl, req)
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

// overloaded counts and logs (rate-limited) a question refused for src.
func (f *Forwarder) overloaded(src Source, reason overloadReason) {
	f.opts.Metrics.overload(reason)
	f.overloads.Warn("upstream queries refused", "reason", reason.String(), "source", src.String(),
		"max_outstanding", f.opts.MaxOutstanding)
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
