package resolver

import (
	"context"
	"errors"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/response"
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

// upstream answers req from the cache or the upstream resolvers. Every name meshdns does not
// own goes through here: direct queries, CNAME chains leaving the table, and autopath steps.
// For a cache hit, until is the cache's Found.Until.
func (r *Resolver) upstream(ctx context.Context, req *dns.Msg, tcp bool) (resp *dns.Msg, result Result, until time.Time, err error) {
	if r.opts.Forwarder == nil {
		return nil, ResultError, until, errNoUpstream
	}
	c := r.opts.Cache
	if c == nil {
		resp, result, err = r.exchange(ctx, req, tcp)
		return resp, result, until, err
	}
	f := c.Lookup(req)
	switch f.Status {
	case cache.Hit:
		if f.Prefetch {
			r.refresh(req, tcp, nil)
		}
		return f.Msg, ResultCacheHit, f.Until, nil
	case cache.Stale:
		resp, result, err = r.staleOrFresh(ctx, req, f.Msg, tcp)
		return resp, result, until, err
	}
	resp, result, err = r.exchange(ctx, req, tcp)
	if err == nil {
		c.Put(req, resp)
	}
	return resp, result, until, err
}

func (r *Resolver) exchange(ctx context.Context, req *dns.Msg, tcp bool) (*dns.Msg, Result, error) {
	resp, err := r.opts.Forwarder.Forward(ctx, req, tcp)
	if err != nil {
		r.fails.Warn("forwarding failed", "err", err)
		return nil, ResultError, err
	}
	return resp, ResultUpstream, nil
}

// staleOrFresh serves an expired entry (RFC 8767): upstream is asked in the background; its
// answer is used if it comes within the stale answer timer and is not a failure, otherwise the stale
// answer goes out and the refresh updates the cache when it completes.
func (r *Resolver) staleOrFresh(ctx context.Context, req, stale *dns.Msg, tcp bool) (*dns.Msg, Result, error) {
	if !r.opts.Cache.ShouldRefresh(req) {
		return stale, ResultCacheStale, nil // upstream failed moments ago: do not wait on it again
	}
	done := make(chan *dns.Msg, 1)
	r.refresh(req, tcp, done)
	timer := time.NewTimer(r.opts.StaleAnswerTimer)
	defer timer.Stop()
	select {
	case resp := <-done:
		if resp != nil && !response.Typify(resp).Failure() {
			resp.Id, resp.Question = req.Id, req.Question
			return resp, ResultUpstream, nil
		}
	case <-timer.C:
	case <-ctx.Done():
	}
	return stale, ResultCacheStale, nil
}

// refresh asks upstream again for req in the background and caches the answer; done, when
// not nil, receives the reply (nil on error). The request is copied: the caller's may be
// gone by the time the refresh runs. After Close it does nothing (done gets nil).
func (r *Resolver) refresh(req *dns.Msg, tcp bool, done chan<- *dns.Msg) {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	if r.closed {
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
		resp, _, err := r.exchange(ctx, req, tcp)
		if err == nil {
			r.opts.Cache.Put(req, resp)
		}
		if err != nil || response.Typify(resp).Failure() {
			r.opts.Cache.RefreshFailed(req)
		}
		if done != nil {
			done <- resp
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

// Wait blocks until the background refreshes started so far have finished.
func (r *Resolver) Wait() { r.bg.Wait() }
