package upstream

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

const (
	// minBackoff is how long a server is skipped after it is first marked down.
	minBackoff = time.Second
	// maxBackoff caps the doubling of the backoff while a server keeps failing its probes.
	maxBackoff = 30 * time.Second
)

// health tracks one server: consecutive failures, and while it is down, when it may be probed
// again. A down server whose backoff has ended is probed with real traffic by one query at a
// time; one success makes it healthy, one failure sends it back down for twice as long.
type health struct {
	mu      sync.Mutex
	fails   int // consecutive failed tries
	down    bool
	until   time.Time     // while down: end of the backoff
	backoff time.Duration // while down: the current backoff
	probe   uint64        // token of the query holding the half-open probe, 0 if none
	tokens  uint64        // last probe token handed out
}

// admission says whether a query may ask a server.
type admission int

const (
	skip  admission = iota // down: ask only if every server is down
	admit                  // healthy
	probe                  // down, backoff over: this query holds the probe
)

// admit decides for one query at now; a probe token is returned with probe and must be given
// back with endProbe.
func (h *health) admit(now time.Time) (admission, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.down:
		return admit, 0
	case h.probe != 0 || now.Before(h.until):
		return skip, 0
	}
	h.tokens++
	h.probe = h.tokens
	return probe, h.probe
}

// endProbe gives back a probe token, whether or not the query reached the server.
func (h *health) endProbe(token uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.probe == token {
		h.probe = 0
	}
}

// succeeded records a good try and reports whether the server was down until now.
func (h *health) succeeded() (recovered bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	recovered = h.down
	h.fails, h.down, h.backoff = 0, false, 0
	return recovered
}

// failed records a failed try at now and reports whether it marked the server down. A server
// already down (a failed probe, or a try made because every server was down) backs off longer.
func (h *health) failed(now time.Time, threshold int) (markedDown bool, backoff time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails++
	switch {
	case h.down:
		h.backoff = min(2*h.backoff, maxBackoff)
	case h.fails >= threshold:
		h.down, h.backoff, markedDown = true, minBackoff, true
	default:
		return false, 0
	}
	h.until = now.Add(h.backoff)
	return markedDown, h.backoff
}

// usable reports whether the server may be asked at now: it is up, or its backoff is over
// and a query may probe it.
func (h *health) usable(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.down || !now.Before(h.until)
}

// Available reports whether any server may be asked now: false when none is configured or
// every one is down and within its backoff. Forward still asks down servers then, at the cost
// of their timeouts; callers with optional lookups use this to skip them during an outage.
// It turns true again when a backoff ends, so such lookups also probe a recovering server.
func (f *Forwarder) Available() bool {
	now := f.opts.Now()
	for _, s := range f.current() {
		if s.health.usable(now) {
			return true
		}
	}
	return false
}

// plan is the list of servers one query asks, in order, and the probes it holds.
type plan struct {
	servers []*server
	probes  map[*server]uint64
}

// plan orders servers by policy and leaves out those that are down, unless all are: then
// all are asked anyway, as failing without trying helps nobody.
func (f *Forwarder) plan(servers []*server) plan {
	now := f.opts.Now()
	var p plan
	var down []*server
	for _, s := range f.order(servers) {
		a, token := s.health.admit(now)
		switch a {
		case skip:
			down = append(down, s)
			continue
		case probe:
			if p.probes == nil {
				p.probes = map[*server]uint64{}
			}
			p.probes[s] = token
		}
		p.servers = append(p.servers, s)
	}
	if len(p.servers) == 0 {
		p.servers = down
	}
	return p
}

func (p plan) done() {
	for s, token := range p.probes {
		s.health.endProbe(token)
	}
}

// observe records the outcome of one try in the server's health, metrics and log. A try cut
// short by ctx (the overall deadline, the caller, or a parallel winner) says nothing about
// the server and is not counted. Every reply but REFUSED shows the server alive, SERVFAIL
// included: it fails over and is counted, but speaks of the name (response.Type.Refusal).
func (f *Forwarder) observe(ctx context.Context, a attempt) {
	reason, failed := failureReason(a)
	if failed {
		if ctxErr(ctx) != nil {
			return
		}
		a.s.m.fail(reason)
		f.fails.Warn("upstream query failed", "upstream", a.s.addr.String(), "reason", reason.String(), "err", errString(a.err, a.resp))
	}
	if failed && (a.err != nil || a.typ.Refusal()) {
		f.unhealthy(a.s)
		return
	}
	f.alive(a.s)
}

// alive records that s answered.
func (f *Forwarder) alive(s *server) {
	if s.health.succeeded() {
		s.m.setHealthy(true)
		f.opts.Logger.Info("upstream healthy again", "upstream", s.addr.String())
	}
}

// unhealthy records a try of s that timed out, met a network error or was refused.
func (f *Forwarder) unhealthy(s *server) {
	if markedDown, backoff := s.health.failed(f.opts.Now(), f.opts.FailThreshold); markedDown {
		s.m.setHealthy(false)
		f.opts.Logger.Warn("upstream marked down", "upstream", s.addr.String(),
			"failures", f.opts.FailThreshold, "backoff", backoff)
	}
}

// failureReason says why a try failed; ok is false for a usable reply (one that is not a
// response.Type Failure). A SERVFAIL is a failure here, for failover and the failure metric,
// though not for health.
func failureReason(a attempt) (reason failReason, ok bool) {
	var ne net.Error
	switch {
	case a.err != nil && errors.As(a.err, &ne) && ne.Timeout():
		return reasonTimeout, true
	case a.err != nil:
		return reasonNetwork, true
	case a.typ == response.ServFail:
		return reasonServfail, true
	case a.typ == response.Refused:
		return reasonRefused, true
	}
	return 0, false
}

func errString(err error, resp *dns.Msg) string {
	if err != nil {
		return err.Error()
	}
	return "rcode " + dns.RcodeToString[resp.Rcode]
}
