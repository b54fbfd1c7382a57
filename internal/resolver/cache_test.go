package resolver_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/miekg/dns"
)

// switchUpstream answers www.example.org A with TTL 60 and nx.example.org NXDOMAIN with an
// SOA, counts queries, and can be made to fail or to hang until released.
type switchUpstream struct {
	asked atomic.Int32
	mu    sync.Mutex
	fail  bool
	hold  chan struct{} // when not nil, answers wait for it to close
	addr  string
}

func (u *switchUpstream) set(fail bool, hold chan struct{}, addr string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fail, u.hold, u.addr = fail, hold, addr
}

func (u *switchUpstream) Forward(ctx context.Context, req *dns.Msg, _ upstream.Via) (*dns.Msg, error) {
	u.asked.Add(1)
	u.mu.Lock()
	fail, hold, addr := u.fail, u.hold, u.addr
	u.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail {
		return nil, errors.New("upstream 192.0.2.53:53: i/o timeout")
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	q := req.Question[0]
	switch dnsname.Lower(q.Name) {
	case "www.example.org.":
		rr, _ := dns.NewRR("www.example.org. 60 IN A " + addr)
		rr.Header().Name = q.Name
		m.Answer = []dns.RR{rr}
	default:
		m.Rcode = dns.RcodeNameError
		soa, _ := dns.NewRR("example.org. 3600 IN SOA ns.example.org. h.example.org. 1 7200 1800 86400 120")
		m.Ns = []dns.RR{soa}
	}
	return m, nil
}

func newCached(t *testing.T) (*resolver.Resolver, *switchUpstream, *testutil.Clock) {
	up := &switchUpstream{addr: "192.0.2.80"}
	clk := testutil.NewClock()
	c := cache.New(cache.Options{ServeStale: time.Hour, Now: clk.Now})
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up, Cache: c,
		StaleAnswerTimer: 50 * time.Millisecond})
	res.SetTable(loadTable(t, "testdata/registry.yaml"))
	t.Cleanup(res.Close)
	return res, up, clk
}

func ask(t *testing.T, res *resolver.Resolver, name string) (*dns.Msg, resolver.Result) {
	t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(name, dns.TypeA)
	return res.Resolve(context.Background(), req, resolver.Client{Namespace: "prod"})
}

func answerOf(m *dns.Msg) string {
	if len(m.Answer) == 0 {
		return dns.RcodeToString[m.Rcode]
	}
	return strings.Join(strings.Fields(m.Answer[0].String()), " ")
}

func TestCacheHitCountsDown(t *testing.T) {
	res, up, clk := newCached(t)
	if m, r := ask(t, res, "www.example.org."); r != resolver.ResultUpstream || answerOf(m) != "www.example.org. 60 IN A 192.0.2.80" {
		t.Fatalf("first: %v %q", r, answerOf(m))
	}
	clk.Advance(25 * time.Second)
	m, r := ask(t, res, "WWW.Example.org.")
	if r != resolver.ResultCacheHit || answerOf(m) != "WWW.Example.org. 35 IN A 192.0.2.80" {
		t.Errorf("second: %v %q, want a cache hit in the question's case with TTL 35", r, answerOf(m))
	}
	if n := up.asked.Load(); n != 1 {
		t.Errorf("upstream asked %d times, want 1", n)
	}
}

func TestNegativeCaching(t *testing.T) {
	res, up, clk := newCached(t)
	ask(t, res, "nx.example.org.")
	clk.Advance(100 * time.Second) // SOA minimum 120
	if m, r := ask(t, res, "nx.example.org."); r != resolver.ResultCacheHit || m.Rcode != dns.RcodeNameError {
		t.Errorf("second NXDOMAIN: %v %s, want a cache hit", r, dns.RcodeToString[m.Rcode])
	}
	clk.Advance(30 * time.Second)
	ask(t, res, "nx.example.org.")
	if n := up.asked.Load(); n != 2 {
		t.Errorf("upstream asked %d times, want 2 (once more after the negative TTL)", n)
	}
}

func TestServeStale(t *testing.T) {
	res, up, clk := newCached(t)
	ask(t, res, "www.example.org.")
	clk.Advance(2 * time.Minute)
	up.set(true, nil, "192.0.2.80")
	if m, r := ask(t, res, "www.example.org."); r != resolver.ResultCacheStale || answerOf(m) != "www.example.org. 30 IN A 192.0.2.80" {
		t.Errorf("all upstreams failing: %v %q, want the stale answer with TTL 30", r, answerOf(m))
	}
	if m, r := ask(t, res, "uncached.example.org."); r != resolver.ResultError || m.Rcode != dns.RcodeServerFailure {
		t.Errorf("uncached name with upstreams failing: %v %s, want SERVFAIL", r, dns.RcodeToString[m.Rcode])
	}
	clk.Advance(time.Hour)
	if m, _ := ask(t, res, "www.example.org."); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("past the serve-stale window: %q, want SERVFAIL", answerOf(m))
	}
	up.set(false, nil, "192.0.2.81")
	if m, r := ask(t, res, "www.example.org."); r != resolver.ResultUpstream || answerOf(m) != "www.example.org. 60 IN A 192.0.2.81" {
		t.Errorf("upstream back: %v %q", r, answerOf(m))
	}
}

// TestStaleWhileSlow: a slow upstream gets the stale answer out after the timer; when the
// upstream answers, the refresh replaces the entry.
func TestStaleWhileSlow(t *testing.T) {
	res, up, clk := newCached(t)
	ask(t, res, "www.example.org.")
	clk.Advance(2 * time.Minute)
	hold := make(chan struct{})
	up.set(false, hold, "192.0.2.82")
	if m, r := ask(t, res, "www.example.org."); r != resolver.ResultCacheStale || answerOf(m) != "www.example.org. 30 IN A 192.0.2.80" {
		t.Errorf("slow upstream: %v %q, want stale", r, answerOf(m))
	}
	close(hold)
	res.Wait()
	if m, r := ask(t, res, "www.example.org."); r != resolver.ResultCacheHit || answerOf(m) != "www.example.org. 60 IN A 192.0.2.82" {
		t.Errorf("after the refresh: %v %q, want the refreshed entry", r, answerOf(m))
	}
}

// TestPrefetch: a name asked repeatedly is refreshed before it expires, once.
func TestPrefetch(t *testing.T) {
	res, up, clk := newCached(t)
	ask(t, res, "www.example.org.")
	up.set(false, nil, "192.0.2.83")
	clk.Advance(55 * time.Second) // 5 of 60 seconds left: under 10%
	for range 5 {
		if _, r := ask(t, res, "www.example.org."); r != resolver.ResultCacheHit {
			t.Fatalf("result %v, want cache hits", r)
		}
	}
	res.Wait()
	if n := up.asked.Load(); n != 2 {
		t.Errorf("upstream asked %d times, want 2 (one prefetch)", n)
	}
	clk.Advance(10 * time.Second) // the original entry would have expired
	if m, r := ask(t, res, "www.example.org."); r != resolver.ResultCacheHit || answerOf(m) != "www.example.org. 50 IN A 192.0.2.83" {
		t.Errorf("after expiry of the original: %v %q, want the prefetched entry", r, answerOf(m))
	}
}

func TestNoCache(t *testing.T) {
	up := &switchUpstream{addr: "192.0.2.80"}
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up})
	res.SetTable(loadTable(t, "testdata/registry.yaml"))
	for range 3 {
		if _, r := ask(t, res, "www.example.org."); r != resolver.ResultUpstream {
			t.Errorf("result %v, want upstream", r)
		}
	}
	if n := up.asked.Load(); n != 3 {
		t.Errorf("upstream asked %d times, want 3", n)
	}
}

// TestStaleRecheck: after a failed refresh, stale answers go out at once for the failure
// recheck window without asking the dead upstream again (RFC 8767 §5).
func TestStaleRecheck(t *testing.T) {
	res, up, clk := newCached(t)
	ask(t, res, "www.example.org.")
	clk.Advance(2 * time.Minute)
	up.set(true, nil, "192.0.2.80")
	ask(t, res, "www.example.org.") // fails upstream, served stale
	res.Wait()
	before := up.asked.Load()
	for range 5 {
		if _, r := ask(t, res, "www.example.org."); r != resolver.ResultCacheStale {
			t.Fatalf("result %v, want stale", r)
		}
	}
	if n := up.asked.Load() - before; n != 0 {
		t.Errorf("upstream asked %d more times within the recheck window, want 0", n)
	}
	clk.Advance(cache.FailureRecheck)
	up.set(false, nil, "192.0.2.84")
	if m, r := ask(t, res, "www.example.org."); r != resolver.ResultUpstream || answerOf(m) != "www.example.org. 60 IN A 192.0.2.84" {
		t.Errorf("after the recheck window with upstream back: %v %q", r, answerOf(m))
	}
}

// downUpstream reports every upstream down.
type downUpstream struct{ switchUpstream }

func (*downUpstream) Available() bool { return false }

// TestAutopathNeverWaitsLong: an autopath step to a hanging upstream gives up within its
// budget, and one to an upstream known to be down is not even asked; both answer NXDOMAIN as
// without autopath.
func TestAutopathNeverWaitsLong(t *testing.T) {
	hung := &switchUpstream{hold: make(chan struct{})}
	defer close(hung.hold)
	down := &downUpstream{}
	for name, fwd := range map[string]resolver.Forwarder{"hanging": hung, "down": down} {
		t.Run(name, func(t *testing.T) {
			res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: fwd})
			res.SetTable(loadTable(t, "testdata/registry.yaml"))
			defer res.Close()
			req := new(dns.Msg)
			req.SetQuestion("www.example.org.prod.svc.cluster.local.", dns.TypeA)
			done := make(chan *dns.Msg)
			go func() {
				m, _ := res.Resolve(context.Background(), req, resolver.Client{Namespace: "prod", Search: search("prod")})
				done <- m
			}()
			select {
			case m := <-done:
				if m.Rcode != dns.RcodeNameError {
					t.Errorf("rcode %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
				}
			case <-time.After(10 * time.Second):
				t.Fatal("autopath waited on upstream without bound")
			}
		})
	}
	if n := down.asked.Load(); n != 0 {
		t.Errorf("a down upstream was asked %d times", n)
	}
}

// TestStaleRefreshOnce: many concurrent queries for a stale name while upstream is silent
// start one refresh between them, not one each (a goroutine, a copy and an upstream query
// per query); each gets the stale answer after the timer, and the one refresh, once upstream
// answers, updates the entry for all.
func TestStaleRefreshOnce(t *testing.T) {
	res, up, clk := newCached(t)
	ask(t, res, "www.example.org.")
	clk.Advance(2 * time.Minute)
	hold := make(chan struct{})
	up.set(false, hold, "192.0.2.85")
	before := up.asked.Load()
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if m, r := ask(t, res, "www.example.org."); r != resolver.ResultCacheStale || answerOf(m) != "www.example.org. 30 IN A 192.0.2.80" {
				t.Errorf("stale name, silent upstream: %v %q, want the stale answer", r, answerOf(m))
			}
		})
	}
	wg.Wait()
	close(hold)
	res.Wait()
	if got := up.asked.Load() - before; got != 1 {
		t.Errorf("%d concurrent queries for a stale name asked upstream %d times, want 1", n, got)
	}
	if m, r := ask(t, res, "www.example.org."); r != resolver.ResultCacheHit || answerOf(m) != "www.example.org. 60 IN A 192.0.2.85" {
		t.Errorf("after the refresh: %v %q, want the refreshed entry", r, answerOf(m))
	}
}
