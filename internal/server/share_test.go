package server

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// slowDomainUpstream is a recursive resolver on loopback that never answers names below
// silent.test. (their authority is dead) and answers any other A question with 192.0.2.53.
func slowDomainUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 || dns.IsSubDomain("silent.test.", q.Question[0].Name) {
				continue
			}
			m := new(dns.Msg).SetReply(q)
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.53")
			m.Answer = []dns.RR{rr}
			b, _ := m.Pack()
			conn.WriteToUDPAddrPort(b, from)
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// randomSilent names a new name below silent.test. for each query of a flood.
func randomSilent(i int) string { return fmt.Sprintf("r%d-%d.silent.test.", i, time.Now().UnixNano()) }

// flood sends queries for name(i) from src to addr until stop is closed or max packets are
// sent, without reading the replies.
func flood(t *testing.T, src, addr string, max int, stop <-chan struct{}, name func(i int) string) (wait func()) {
	t.Helper()
	c, err := (&net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}).Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer c.Close()
		for i := range max {
			select {
			case <-stop:
				return
			default:
			}
			m := new(dns.Msg).SetQuestion(name(i), dns.TypeA)
			b, _ := m.Pack()
			c.Write(b)
			time.Sleep(time.Millisecond) // paces the flood; not a timing assertion
		}
	})
	return wg.Wait
}

// overloads sums meshdns_upstream_overload_total with the given reason label ("" for all).
func overloads(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "meshdns_upstream_overload_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == "reason" && l.GetValue() == reason
			}) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestUpstreamShareFailsFlooderFirst floods meshdns from 127.0.0.2 with random names below a
// domain whose upstream never answers, while a client at 127.0.0.3 looks up 20 other names
// one by one. The flood holds at most its share of the outstanding upstream queries (4 of
// 8 here), so every one of the 20 lookups gets its NOERROR answer, and every overload is
// the flooder's: none is the whole cap being full.
func TestUpstreamShareFailsFlooderFirst(t *testing.T) {
	up := slowDomainUpstream(t)
	reg := prometheus.NewRegistry()
	fwd := upstream.New([]netip.AddrPort{up}, upstream.Options{MaxOutstanding: 8,
		TryTimeout: 300 * time.Millisecond, Deadline: time.Second, Metrics: upstream.NewMetrics(reg)})
	t.Cleanup(fwd.Close)
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: fwd})
	t.Cleanup(res.Close)
	_, addr := start(t, res)

	stop := make(chan struct{})
	wait := flood(t, "127.0.0.2", addr, 5000, stop, randomSilent)
	defer wait()
	defer close(stop)
	deadline := time.Now().Add(10 * time.Second)
	for overloads(t, reg, "") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the flood never reached the cap on outstanding upstream queries")
		}
		time.Sleep(5 * time.Millisecond)
	}

	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}}}
	failed := 0
	for i := range 20 {
		name := fmt.Sprintf("w%d.ok.test.", i)
		resp, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), addr)
		want := name + "\t60\tIN\tA\t192.0.2.53"
		if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].String() != want {
			failed++
			t.Errorf("%s from 127.0.0.3 during the flood: %v %v, want %q", name, resp, err, want)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 20 lookups of a well-behaved client failed during the flood, want 0", failed)
	}
	if n := overloads(t, reg, "total"); n != 0 {
		t.Errorf("overload_total{reason=\"total\"} = %v, want 0: the flood alone filled the cap", n)
	}
	if n := overloads(t, reg, "source"); n == 0 {
		t.Error(`overload_total{reason="source"} = 0, want the flooder's refusals counted`)
	}
}

// servicesTable is a table of n Services svc<i>.prod with ClusterIP 10.96.1.<i>.
func servicesTable(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: prod}\n"+
			"spec:\n  clusterIPs: [10.96.1.%d]\n  ports: [{name: http, port: 80}]\n", i, i)
	}
	return b.String()
}

// TestInflightShareFailsFlooderFirst floods meshdns from 127.0.0.2 with one name below a
// domain whose upstream never answers: upstream asks it once for all (coalesced), but each
// query holds one of the server's 16 in-flight slots until the forwarder gives up. Meanwhile
// a client at 127.0.0.3 asks Services of the table, each for the first time (so not on the
// fast path), over UDP and TCP. The flood holds at most its share of the slots (8 of 16), so
// every one of those lookups is answered, and every refusal is the flooder's.
func TestInflightShareFailsFlooderFirst(t *testing.T) {
	up := slowDomainUpstream(t)
	fwd := upstream.New([]netip.AddrPort{up}, upstream.Options{TryTimeout: time.Second, Deadline: 3 * time.Second})
	t.Cleanup(fwd.Close)
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: fwd})
	t.Cleanup(res.Close)
	res.SetTable(buildTable(t, servicesTable(t, 20), 1))
	reg := prometheus.NewRegistry()
	addr := startWith(t, res, Options{MaxInflight: 16, Metrics: NewMetrics(reg)})

	stop := make(chan struct{})
	wait := flood(t, "127.0.0.2", addr, 5000, stop, func(int) string { return "stuck.silent.test." })
	defer wait()
	defer close(stop)
	dropped := func(reason string) float64 {
		return counterValue(t, reg, "meshdns_packets_dropped_total", "reason="+reason)
	}
	deadline := time.Now().Add(10 * time.Second)
	for dropped("overload")+dropped("client-overload") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the flood never reached the cap on queries in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}

	failed := 0
	for i := range 20 {
		network := []string{"udp", "tcp"}[i%2]
		c := &dns.Client{Net: network, Timeout: 2 * time.Second, Dialer: &net.Dialer{
			LocalAddr: map[string]net.Addr{"udp": &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)},
				"tcp": &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}[network]}}
		name := fmt.Sprintf("svc%d.prod.svc.cluster.local.", i)
		resp, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), addr)
		want := fmt.Sprintf("%s\t30\tIN\tA\t10.96.1.%d", name, i)
		if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].String() != want {
			failed++
			t.Errorf("%s over %s from 127.0.0.3 during the flood: %v %v, want %q", name, network, resp, err, want)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 20 lookups of a well-behaved client failed during the flood, want 0", failed)
	}
	if n := dropped("overload"); n != 0 {
		t.Errorf(`packets_dropped_total{reason="overload"} = %v, want 0: the flood alone filled the cap`, n)
	}
	if n := dropped("client-overload"); n == 0 {
		t.Error(`packets_dropped_total{reason="client-overload"} = 0, want the flooder's refusals counted`)
	}
}
