package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestSetServersConcurrent replaces the list over and over while queries run: every query
// gets an answer, and the last list is the one used afterwards.
func TestSetServersConcurrent(t *testing.T) {
	a := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.1"))
	b := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.2"))
	f := newForwarder(t, []netip.AddrPort{a.addr}, fastOpts, 0)
	lists := [][]netip.AddrPort{{b.addr}, {a.addr, b.addr}, {b.addr, a.addr}, {a.addr}}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				req := newRequest(fmt.Sprintf("q%d-%d.test.", w, i), dns.TypeA)
				if _, err := f.Forward(context.Background(), req, Via{TCP: i%2 == 0}); err != nil {
					t.Errorf("worker %d query %d: %v", w, i, err)
				}
			}
		})
	}
	for i := range 200 {
		f.SetServers(lists[i%len(lists)])
	}
	wg.Wait()
	f.SetServers([]netip.AddrPort{b.addr})
	before := len(a.Queries())
	resp, err := f.Forward(context.Background(), newRequest("last.test.", dns.TypeA), Via{})
	if err != nil || len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.2" {
		t.Fatalf("after SetServers([b]): %v, %v; want b's answer", resp, err)
	}
	if len(a.Queries()) != before {
		t.Error("a removed server was asked")
	}
}

// TestSetServersInFlight removes the only server while a query waits for it: the query still
// gets that server's answer.
func TestSetServersInFlight(t *testing.T) {
	a, release := startGated(t)
	b := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.2"))
	f := newForwarder(t, []netip.AddrPort{a.addr}, Options{TryTimeout: hangGuard}, 0)
	done := make(chan *dns.Msg, 1)
	go func() {
		resp, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{})
		if err != nil {
			t.Errorf("in-flight query: %v", err)
		}
		done <- resp
	}()
	waitFor(t, "the query to reach the server", func() bool { return len(a.Queries()) == 1 })
	f.SetServers([]netip.AddrPort{b.addr})
	release()
	if resp := <-done; resp == nil || len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Errorf("in-flight query got %v, want the removed server's answer", resp)
	}
}

// TestSetServersKeepsState checks what a new list keeps: the health of servers that remain,
// and the metric series of those servers only.
func TestSetServersKeepsState(t *testing.T) {
	bad := startFake(t, answerWith(dns.RcodeRefused, ""))
	good := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.2"))
	other := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.3"))
	m := NewMetrics(prometheus.NewRegistry())
	f := newForwarder(t, []netip.AddrPort{bad.addr, good.addr},
		Options{FailThreshold: 1, Now: testutil.NewClock().Now, Metrics: m}, 0)
	ask := func() {
		t.Helper()
		if _, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{}); err != nil {
			t.Fatalf("Forward: %v", err)
		}
	}
	ask() // bad fails once: down
	tests := []struct {
		name    string
		servers []netip.AddrPort
		badSeen int      // queries bad has seen after one more query
		series  []string // upstreams with a healthy gauge
	}{
		{name: "remaining down server still skipped", servers: []netip.AddrPort{bad.addr, other.addr, good.addr},
			badSeen: 1, series: []string{bad.addr.String(), good.addr.String(), other.addr.String()}},
		{name: "removed server's series dropped", servers: []netip.AddrPort{good.addr},
			badSeen: 1, series: []string{good.addr.String()}},
		{name: "re-added server starts healthy", servers: []netip.AddrPort{bad.addr, good.addr},
			badSeen: 2, series: []string{bad.addr.String(), good.addr.String()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.SetServers(tc.servers)
			if got := f.Servers(); !slices.Equal(got, tc.servers) {
				t.Errorf("Servers() = %v, want %v", got, tc.servers)
			}
			ask()
			if n := len(bad.Queries()); n != tc.badSeen {
				t.Errorf("failing server asked %d times in all, want %d", n, tc.badSeen)
			}
			if got := healthySeries(t, m); !slices.Equal(got, sorted(tc.series)) {
				t.Errorf("healthy gauge series %v, want %v", got, sorted(tc.series))
			}
		})
	}
}

// healthySeries returns the upstream labels of the healthy gauge, sorted.
func healthySeries(t *testing.T, m *Metrics) []string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.healthy)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fam := range families {
		for _, metric := range fam.GetMetric() {
			out = append(out, metric.GetLabel()[0].GetValue())
		}
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
