package server

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
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

// flood sends queries for random names below silent.test. from src to addr until stop is
// closed or max packets are sent, without reading the replies.
func flood(t *testing.T, src, addr string, max int, stop <-chan struct{}) (wait func()) {
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
			m := new(dns.Msg).SetQuestion(fmt.Sprintf("r%d-%d.silent.test.", i, time.Now().UnixNano()), dns.TypeA)
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
	wait := flood(t, "127.0.0.2", addr, 5000, stop)
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
