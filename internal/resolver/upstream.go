package resolver

import (
	"context"
	"errors"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/response"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/miekg/dns"
)

const (
	// DefaultStaleAnswerTimer is how long a query for a stale name waits for upstream before
	// the stale answer goes out (RFC 8767 §5 suggests 1.8 s); the refresh carries on regardless.
	DefaultStaleAnswerTimer = 1800 * time.Millisecond
	// backgroundTimeout bounds a refresh that no client waits for.
	backgroundTimeout = 10 * time.Second
)

// errNoUpstream is the failure of forwarding without any upstream configured.
var errNoUpstream = errors.New("no upstream nameservers")

// fetched is what upstream gave for a question: the response, where it came from
// (ResultUpstream, ResultCacheHit or ResultCacheStale) and, for a cache hit, the cache's
// Found.Until.
type fetched struct {
	msg    *dns.Msg
	result Result
	until  time.Time
}

// upstream answers q from the cache or the upstream resolvers. Every name meshdns does not
// own goes through here: direct queries, CNAME chains leaving the table, and autopath steps.
func (r *Resolver) upstream(q *query) (fetched, error) {
	f, err := r.fetch(q)
	if q.trace != nil {
		q.trace.upstream = true
		q.trace.fetched(q.qname, f, err)
	}
	return f, err
}

// fetch is upstream without the trace.
func (r *Resolver) fetch(q *query) (fetched, error) {
	if r.opts.Forwarder == nil {
		return fetched{result: ResultError}, errNoUpstream
	}
	c := r.opts.Cache
	if c == nil {
		return r.exchange(q.ctx, q.req, q.client.via())
	}
	f := c.Lookup(q.req)
	switch f.Status {
	case cache.Hit:
		if f.Prefetch {
			r.refresh(q.req, q.client.via(), nil)
		}
		return fetched{msg: f.Msg, result: ResultCacheHit, until: f.Until}, nil
	case cache.Stale:
		return r.staleOrFresh(q, f.Msg), nil
	}
	up, err := r.exchange(q.ctx, q.req, q.client.via())
	if err == nil {
		c.Put(q.req, up.msg)
	}
	return up, err
}

func (r *Resolver) exchange(ctx context.Context, req *dns.Msg, via upstream.Via) (fetched, error) {
	resp, err := r.opts.Forwarder.Forward(ctx, req, via)
	if err != nil {
		r.fails.Warn("forwarding failed", "err", err)
		return fetched{result: ResultError}, err
	}
	return fetched{msg: resp, result: ResultUpstream}, nil
}

// staleOrFresh serves an expired entry (RFC 8767): upstream is asked in the background, once
// per entry however many queries find it stale (the cache says who starts the refresh). The
// query that starts it uses its answer if it comes within the stale answer timer and is not a
// failure; the others wait as long for that refresh to end and serve what it cached. Otherwise
// the stale answer goes out and the refresh updates the cache when it completes.
func (r *Resolver) staleOrFresh(q *query, stale *dns.Msg) fetched {
	req := q.req
	start, ended := r.opts.Cache.BeginRefresh(req)
	if ended == nil {
		// Upstream failed moments ago: do not wait on it again.
		return fetched{msg: stale, result: ResultCacheStale}
	}
	var done chan *dns.Msg // the starter's own answer; it does not wait on ended
	if start {
		done, ended = make(chan *dns.Msg, 1), nil
		r.refresh(req, q.client.via(), done)
	}
	timer := time.NewTimer(r.opts.StaleAnswerTimer)
	defer timer.Stop()
	select {
	case resp := <-done:
		if resp != nil && !response.Typify(resp).Failure() {
			resp.Id, resp.Question = req.Id, req.Question
			return fetched{msg: resp, result: ResultUpstream}
		}
	case <-ended:
		if f := r.opts.Cache.Lookup(req); f.Status == cache.Hit {
			return fetched{msg: f.Msg, result: ResultCacheHit, until: f.Until}
		}
	case <-timer.C:
	case <-q.ctx.Done():
	}
	return fetched{msg: stale, result: ResultCacheStale}
}

// refresh asks upstream again for req in the background, caches the answer and tells the
// cache the refresh ended (Cache.EndRefresh); done, when not nil, receives the reply (nil on
// error). The request is copied: the caller's may be gone by the time the refresh runs. It
// takes the share of the client whose query started it. After Close it does nothing but end
// the refresh (done gets nil).
func (r *Resolver) refresh(req *dns.Msg, via upstream.Via, done chan<- *dns.Msg) {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.closed {
		r.opts.Cache.EndRefresh(req, false)
		if done != nil {
			done <- nil
		}
		return
	}
	req = req.Copy()
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		ctx, cancel := context.WithTimeout(r.bgCtx, backgroundTimeout)
		defer cancel()
		up, err := r.exchange(ctx, req, via)
		if err == nil {
			r.opts.Cache.Put(req, up.msg)
		}
		r.opts.Cache.EndRefresh(req, err != nil || response.Typify(up.msg).Failure())
		if done != nil {
			done <- up.msg
		}
	}()
}

// Close cancels background refreshes, refuses new ones and waits for them to end.
func (r *Resolver) Close() {
	r.bgMu.Lock()
	r.closed = true
	r.bgMu.Unlock()
	r.bgCancel()
	r.bg.Wait()
}

// Upstream answers req from the cache and the upstream resolvers only, never from the table:
// the VIP forwarder needs the real addresses of a ServiceEntry host, which the table answers
// with its VIP. The response shares the cache and the upstreams of every other query.
func (r *Resolver) Upstream(ctx context.Context, req *dns.Msg, c Client) Reply {
	if rcode := Triage(req); rcode != dns.RcodeSuccess {
		return Reply{Msg: reply(req, rcode), Result: ResultRejected}
	}
	q := query{ctx: ctx, req: req, qname: dnsname.Lower(req.Question[0].Name), qtype: req.Question[0].Qtype, client: c}
	return r.forward(&q)
}
