package cache_test

import (
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/miekg/dns"
)

func (w *world) get() {
	req := w.request()
	now := w.clk.Now()
	resp, st, prefetch := w.c.Get(req)
	want := w.expect(keyOf(req), now)
	w.seen[st]++
	if w.exact && st != want {
		w.fail("Get %s = %v, model says %v", req.Question[0].String(), st, want)
	}
	if st == cache.Miss {
		if resp != nil || prefetch {
			w.fail("Miss with response %v, prefetch %v", resp != nil, prefetch)
		}
		return
	}
	if resp.Id != req.Id || len(resp.Question) != 1 || resp.Question[0] != req.Question[0] {
		w.fail("response ID %d question %v to request ID %d question %v", resp.Id, resp.Question, req.Id, req.Question)
		return
	}
	p := w.puts[marker(resp)]
	if p == nil || p.key != keyOf(req) {
		w.fail("served marker %d, which was not stored for %v", marker(resp), keyOf(req))
		return
	}
	if w.exact && p != w.model[p.key] {
		w.fail("served an answer the model no longer holds")
	}
	w.checkAnswer(req, resp, p, st, now.Sub(p.at))
	w.checkPrefetch(p, st, prefetch, now.Sub(p.at))
}

// expect is the model's status for k at now; it forgets entries the cache must drop.
func (w *world) expect(k modelKey, now time.Time) cache.Status {
	p := w.model[k]
	if p == nil {
		return cache.Miss
	}
	elapsed := now.Sub(p.at)
	switch {
	case elapsed < p.ttl:
		return cache.Hit
	case !p.servfail && elapsed < p.ttl+max(w.opts.ServeStale, 0):
		return cache.Stale
	}
	delete(w.model, k)
	return cache.Miss
}

func (w *world) checkAnswer(req, resp *dns.Msg, p *stored, st cache.Status, elapsed time.Duration) {
	if resp.Rcode != p.rcode {
		w.fail("rcode %d, stored %d", resp.Rcode, p.rcode)
	}
	switch st {
	case cache.Hit:
		if elapsed >= p.ttl {
			w.fail("Hit %v after Put of an entry living %v", elapsed, p.ttl)
		}
	case cache.Stale:
		if w.opts.ServeStale <= 0 || p.servfail || elapsed < p.ttl || elapsed >= p.ttl+w.opts.ServeStale {
			w.fail("Stale %v after Put of a %v entry (servfail %v), ServeStale %v", elapsed, p.ttl, p.servfail, w.opts.ServeStale)
		}
	}
	qname := req.Question[0].Name
	for _, rr := range append(append(resp.Answer, resp.Ns...), resp.Extra...) {
		h := rr.Header()
		switch {
		case h.Rrtype == dns.TypeOPT:
			w.fail("served an OPT record")
		case int32(h.Ttl) < 0:
			w.fail("negative TTL %d", int32(h.Ttl))
		case st == cache.Hit && time.Duration(h.Ttl)*time.Second > p.ttl:
			w.fail("Hit TTL %d above the entry's %v", h.Ttl, p.ttl)
		case st == cache.Stale && h.Ttl != cache.StaleTTL:
			w.fail("Stale TTL %d, want %d", h.Ttl, cache.StaleTTL)
		case h.Name != qname && dnsname.EqualFold(h.Name, qname):
			w.fail("owner %q, request spelled %q", h.Name, qname)
		}
	}
}

// checkPrefetch asserts Get asks for a refresh exactly when the rules say so.
func (w *world) checkPrefetch(p *stored, st cache.Status, prefetch bool, elapsed time.Duration) {
	if st != cache.Hit {
		if prefetch {
			w.fail("prefetch on a %v", st)
		}
		return
	}
	p.hits++
	left := max(p.ttl-max(elapsed, 0), 0)
	want := !p.fetched && p.hits >= cache.PrefetchHits && p.ttl >= 10*time.Second && 10*left <= p.ttl
	if prefetch != want {
		w.fail("prefetch = %v after %d hits, %v of %v left, asked before %v", prefetch, p.hits, left, p.ttl, p.fetched)
	}
	if prefetch {
		p.fetched = true
		w.fetch++
	}
}
