package upstream

import (
	"context"
	"fmt"
	"sync"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/fairshare"
	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

// flightKey identifies questions that one upstream exchange can answer for all who ask: the
// name in lowercase, the query bits that change an upstream's answer, and the transport. The
// spelling of the name is not part of it: each caller's reply is rebuilt from the shared
// upstream message with its own ID, question and owner spelling.
type flightKey struct {
	name          string
	qtype, qclass uint16
	do, cd, rd    bool // RD too: a non-recursive query may get a different answer
	// tcp: a UDP exchange whose TCP retry failed ends truncated, and TC=1 over TCP would
	// leave a TCP client nowhere to retry.
	tcp bool
}

func keyOf(req *dns.Msg, tcp bool) flightKey {
	q := req.Question[0]
	return flightKey{name: dnsname.Lower(q.Name), qtype: q.Qtype, qclass: q.Qclass,
		do: response.DO(req), cd: req.CheckingDisabled, rd: req.RecursionDesired, tcp: tcp}
}

// flight is one upstream exchange and the callers waiting for it. resp and err are written
// once, before done is closed; resp is shared by every waiter and never modified.
type flight struct {
	key     flightKey
	source  Source // whose share the exchange holds: the caller who started it
	done    chan struct{}
	resp    *dns.Msg
	err     error
	waiters int // under coalescer.mu
	cancel  context.CancelFunc
}

// coalescer holds the exchanges in flight by question, and the shares of the outstanding
// exchanges they hold.
type coalescer struct {
	mu     sync.Mutex
	m      map[flightKey]*flight
	shares *fairshare.Counter[Source]
}

// join returns the flight answering req: one in progress, or a new one started here if the
// asker's share of the MaxOutstanding slots allows.
func (f *Forwarder) join(ctx context.Context, req *dns.Msg, via Via) (*flight, error) {
	key := keyOf(req, via.TCP)
	c := &f.flights
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl, ok := c.m[key]; ok {
		fl.waiters++
		f.opts.Metrics.coalesce()
		return fl, nil
	}
	if reason := overloadOf(c.shares.Acquire(via.Source)); reason != overloadNone {
		f.overloaded(via.Source, reason)
		return nil, fmt.Errorf("%w (%d in flight, %s)", ErrOverloaded, c.shares.Total(), reason.explain(via.Source))
	}
	// The exchange outlives any one caller: it keeps ctx's values but not its cancellation,
	// and ends at the Forwarder's deadline or when the last waiter has left.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.opts.Deadline)
	fl := &flight{key: key, source: via.Source, done: make(chan struct{}), waiters: 1, cancel: cancel}
	c.m[key] = fl
	proto := f.query(req) // built now: req belongs to the caller, who may leave early
	go f.fly(fctx, fl, proto, via.TCP)
	return fl, nil
}

// fly runs the exchange of fl and publishes its result.
func (f *Forwarder) fly(ctx context.Context, fl *flight, proto *dns.Msg, tcp bool) {
	defer fl.cancel()
	resp, err := f.resolve(ctx, proto, tcp)
	f.flights.finish(fl)
	fl.resp, fl.err = resp, err
	close(fl.done)
}

// wait returns fl's result as a reply to req, or ctx's error if the caller gives up first.
func (f *Forwarder) wait(ctx context.Context, fl *flight, req *dns.Msg) (*dns.Msg, error) {
	select {
	case <-fl.done:
		if fl.err != nil {
			return nil, fl.err
		}
		return reply(req, fl.resp), nil
	case <-ctx.Done():
		f.flights.leave(fl)
		return nil, fmt.Errorf("upstream: waiting for %s: %w", req.Question[0].Name, ctx.Err())
	}
}

// leave drops one waiter; the last one to leave cancels the exchange, which nobody would read.
func (c *coalescer) leave(fl *flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fl.waiters--
	if fl.waiters == 0 {
		fl.cancel()
		if c.m[fl.key] == fl {
			delete(c.m, fl.key) // later callers start afresh instead of joining a dead flight
		}
	}
}

// finish removes fl, whose exchange has ended, and gives back its share.
func (c *coalescer) finish(fl *flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shares.Release(fl.source)
	if c.m[fl.key] == fl {
		delete(c.m, fl.key)
	}
}
