package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/response"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// switchable answers REFUSED (a failure that counts against health) until up is set, then an
// A record.
func switchable(up *atomic.Bool) handler {
	return func(_ string, q *dns.Msg) []packet {
		if up.Load() {
			return []packet{{msg: replyA(q, dns.RcodeSuccess, "192.0.2.1")}}
		}
		return []packet{{msg: replyA(q, dns.RcodeRefused, "")}}
	}
}

// TestHealth walks a failing first server through down, backoff, failed probe, longer
// backoff and recovery, with an injected clock: the second server answers meanwhile.
func TestHealth(t *testing.T) {
	steps := []struct {
		name    string
		advance time.Duration
		badUp   bool
		asked   int // queries the failing server has seen after this step
		healthy bool
	}{
		{name: "first failure", asked: 1, healthy: true},
		{name: "second failure", asked: 2, healthy: true},
		{name: "third failure marks it down", asked: 3},
		{name: "skipped while down", asked: 3},
		{name: "skipped until the backoff ends", advance: minBackoff - time.Millisecond, asked: 3},
		{name: "probed when the backoff ends, fails", advance: time.Millisecond, asked: 4},
		{name: "backoff doubled: skipped after 1s", advance: time.Second, asked: 4},
		{name: "probe after 2s succeeds", advance: time.Second, badUp: true, asked: 5, healthy: true},
		{name: "healthy: asked first again", asked: 6, healthy: true},
	}
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			var up atomic.Bool
			bad := startFake(t, switchable(&up))
			good := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.2"))
			clock := testutil.NewClock()
			m := NewMetrics(prometheus.NewRegistry())
			f := newForwarder(t, []netip.AddrPort{bad.addr, good.addr},
				Options{TryTimeout: hangGuard, Now: clock.Now, Metrics: m}, 0)
			for _, step := range steps {
				clock.Advance(step.advance)
				up.Store(step.badUp)
				resp, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{TCP: network == "tcp"})
				if err != nil || resp.Rcode != dns.RcodeSuccess {
					t.Fatalf("%s: Forward = %v, %v; want an answer", step.name, resp, err)
				}
				if n := len(bad.Queries()); n != step.asked {
					t.Errorf("%s: failing server asked %d times, want %d", step.name, n, step.asked)
				}
				healthy := promtest.ToFloat64(m.healthy.WithLabelValues(bad.addr.String())) == 1
				if healthy != step.healthy {
					t.Errorf("%s: healthy gauge %v, want %v", step.name, healthy, step.healthy)
				}
			}
		})
	}
}

// TestHealthAllDown checks that servers all marked down are still asked, under each policy.
func TestHealthAllDown(t *testing.T) {
	for _, policy := range []Policy{Sequential, Random, Parallel} {
		t.Run(policy.String(), func(t *testing.T) {
			a := startFake(t, answerWith(dns.RcodeRefused, ""))
			b := startFake(t, answerWith(dns.RcodeRefused, ""))
			f := newForwarder(t, []netip.AddrPort{a.addr, b.addr},
				Options{Policy: policy, FailThreshold: 1, Now: testutil.NewClock().Now}, 0)
			for i := range 3 {
				resp, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{})
				if err != nil || !response.Typify(resp).Failure() {
					t.Fatalf("query %d: Forward = %v, %v; want a failed reply", i, resp, err)
				}
				if na, nb := len(a.Queries()), len(b.Queries()); na != i+1 || nb != i+1 {
					t.Errorf("query %d: servers asked %d and %d times, want %d each", i, na, nb, i+1)
				}
			}
		})
	}
}

// TestAvailable follows Available through an outage of every server, with an injected
// clock: true while any server is up, false once all are down and in backoff, true again
// when a backoff ends.
func TestAvailable(t *testing.T) {
	if New(nil, Options{}).Available() {
		t.Error("no servers: Available = true, want false")
	}
	a := startFake(t, answerWith(dns.RcodeRefused, ""))
	b := startFake(t, answerWith(dns.RcodeRefused, ""))
	clock := testutil.NewClock()
	f := newForwarder(t, []netip.AddrPort{a.addr, b.addr}, Options{TryTimeout: hangGuard, Now: clock.Now}, 0)
	check := func(when string, want bool) {
		t.Helper()
		if got := f.Available(); got != want {
			t.Errorf("%s: Available = %v, want %v", when, got, want)
		}
	}
	check("initially", true)
	for i := range DefaultFailThreshold {
		check(fmt.Sprintf("after %d failures each", i), true)
		if _, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{}); err != nil {
			t.Fatalf("Forward: %v", err) // REFUSED from both is a reply, not an error
		}
	}
	check("every server marked down", false)
	clock.Advance(minBackoff - time.Nanosecond)
	check("just before the backoff ends", false)
	clock.Advance(time.Nanosecond)
	check("the backoff ended", true)
}

// TestHealthBackoff drives the state machine directly: thresholds, doubling, the cap, and a
// single probe at a time.
func TestHealthBackoff(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var h health
	for i := range DefaultFailThreshold - 1 {
		if down, _ := h.failed(now, DefaultFailThreshold); down {
			t.Fatalf("marked down after %d failures", i+1)
		}
	}
	down, backoff := h.failed(now, DefaultFailThreshold)
	if !down || backoff != minBackoff {
		t.Fatalf("at the threshold: down %v backoff %v, want true %v", down, backoff, minBackoff)
	}
	want := []time.Duration{2, 4, 8, 16, 30, 30}
	for _, w := range want {
		now = now.Add(backoff)
		a, token := h.admit(now)
		if a != probe {
			t.Fatalf("after the backoff: admission %v, want probe", a)
		}
		if second, _ := h.admit(now); second != skip {
			t.Errorf("second query during a probe: admission %v, want skip", second)
		}
		_, backoff = h.failed(now, DefaultFailThreshold)
		h.endProbe(token)
		if backoff != w*time.Second {
			t.Errorf("failed probe: backoff %v, want %v", backoff, w*time.Second)
		}
		if a, _ := h.admit(now.Add(backoff - time.Nanosecond)); a != skip {
			t.Errorf("before the backoff ends: admission %v, want skip", a)
		}
	}
	if !h.succeeded() {
		t.Error("success on a down server did not report a recovery")
	}
	if a, _ := h.admit(now); a != admit {
		t.Errorf("after a success: admission %v, want admit", a)
	}
}

// TestHealthUnreachedProbe checks that a probe a query held without reaching the server
// (an earlier server answered) is handed back for the next query.
func TestHealthUnreachedProbe(t *testing.T) {
	var up atomic.Bool
	bad := startFake(t, switchable(&up))
	good := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.2"))
	clock := testutil.NewClock()
	f := newForwarder(t, []netip.AddrPort{good.addr, bad.addr}, Options{FailThreshold: 1, Now: clock.Now}, 0)
	f.SetServers([]netip.AddrPort{bad.addr, good.addr})
	ask := func() {
		t.Helper()
		if _, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{}); err != nil {
			t.Fatalf("Forward: %v", err)
		}
	}
	ask() // bad fails once: down
	clock.Advance(minBackoff)
	f.SetServers([]netip.AddrPort{good.addr, bad.addr})
	ask() // holds bad's probe, answered by good first
	f.SetServers([]netip.AddrPort{bad.addr, good.addr})
	up.Store(true)
	ask() // the probe is free again: bad is asked and recovers
	if n := len(bad.Queries()); n != 2 {
		t.Errorf("failing server asked %d times, want 2 (the probe was not handed back)", n)
	}
}

// TestHealthCountsOnlyRefusals: SERVFAIL is an answer (most often about one zone: a dead
// authority, broken DNSSEC), so a server that keeps answering it stays healthy and is still
// asked first; a silent server, a closed port and a server answering REFUSED (its policy
// towards us, whatever the name) are marked down. Each server is the only one, asked until
// it is marked down or ten times.
func TestHealthCountsOnlyRefusals(t *testing.T) {
	tests := []struct {
		name    string
		server  func(t *testing.T) netip.AddrPort
		healthy bool
	}{
		{name: "SERVFAIL stays healthy", server: fakeAddr(answerWith(dns.RcodeServerFailure, "")), healthy: true},
		{name: "REFUSED marked down", server: fakeAddr(answerWith(dns.RcodeRefused, ""))},
		{name: "silent marked down", server: silentServer},
		{name: "closed port marked down", server: closedPort},
	}
	for _, tc := range tests {
		for _, network := range networks {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				addr := tc.server(t)
				m := NewMetrics(prometheus.NewRegistry())
				f := newForwarder(t, []netip.AddrPort{addr}, Options{TryTimeout: 50 * time.Millisecond,
					Deadline: 200 * time.Millisecond, Now: testutil.NewClock().Now, Metrics: m}, 0)
				gauge := m.healthy.WithLabelValues(addr.String())
				for i := 0; i < 10 && promtest.ToFloat64(gauge) == 1; i++ {
					_, _ = forwardWithin(t, context.Background(), f, newRequest("a.test.", dns.TypeA), network == "tcp")
				}
				if healthy := promtest.ToFloat64(gauge) == 1; healthy != tc.healthy {
					t.Errorf("meshdns_upstream_healthy = %v after 10 queries, want healthy %v", healthy, tc.healthy)
				}
				if f.Available() != tc.healthy {
					t.Errorf("Available = %v, want %v", f.Available(), tc.healthy)
				}
			})
		}
	}
}
