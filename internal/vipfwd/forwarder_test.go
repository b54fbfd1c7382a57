package vipfwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// wait bounds every read of a test, so that a bug fails the test instead of hanging it.
const wait = 10 * time.Second

// fakeDNS answers A questions from names, NXDOMAIN for the rest.
type fakeDNS struct {
	mu    sync.Mutex
	names map[string]string
	asked int // questions received
}

func (f *fakeDNS) set(name, ip string) {
	f.mu.Lock()
	f.names[name] = ip
	f.mu.Unlock()
}

func (f *fakeDNS) Forward(_ context.Context, req *dns.Msg, _ upstream.Via) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetReply(req)
	f.mu.Lock()
	f.asked++
	ip, ok := f.names[req.Question[0].Name]
	f.mu.Unlock()
	if !ok || req.Question[0].Qtype != dns.TypeA {
		m.Rcode = dns.RcodeNameError
		return m, nil
	}
	rr, err := dns.NewRR(req.Question[0].Name + " 30 IN A " + ip)
	m.Answer = []dns.RR{rr}
	return m, err
}

// server accepts on addr and, per connection, sends banner, echoes one line, then reads to
// EOF and answers "bye": a client sees its server and the half close.
func server(t testing.TB, addr string, banner string) uint16 {
	t.Helper()
	return serve(t, addr, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(wait))
		io.WriteString(c, banner+"\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "echo "+line)
		io.Copy(io.Discard, c)
		io.WriteString(c, "bye\n")
	})
}

// serve accepts on addr (port 0 for any) and runs handle per connection until the test or
// benchmark ends.
func serve(b testing.TB, addr string, handle func(net.Conn)) uint16 {
	b.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

type rig struct {
	fwd  *Forwarder
	dns  *fakeDNS
	m    *Metrics
	reg  *prometheus.Registry
	mu   sync.Mutex
	next netip.AddrPort // the original destination of the next connection
}

// newRig starts a forwarder whose table has orders-db (DNS, VIP 240.240.0.1, resolving to
// 127.0.0.2), cache (STATIC, VIP 240.240.0.2, endpoint 127.0.0.3), gone (VIP 240.240.0.3,
// resolving nowhere) and dead (VIP 240.240.0.4, resolving to an address nobody listens on),
// each on port; answers is the resolver's cache (nil: none).
func newRig(t testing.TB, port uint16, o Options, answers *cache.Cache) *rig {
	t.Helper()
	entry := func(name string, res model.Resolution, endpoints ...string) model.ServiceEntry {
		se := model.ServiceEntry{Meta: model.Meta{Namespace: "db", Name: name}, Hosts: []string{name + ".example.com"},
			Resolution: res, Ports: []model.Port{{Name: "tcp", Protocol: "TCP", Number: port}}}
		for _, e := range endpoints {
			se.Endpoints = append(se.Endpoints, model.WorkloadEndpoint{Address: e})
		}
		return se
	}
	lease := func(a string) []vip.Lease { return []vip.Lease{{Addr: netip.MustParseAddr(a)}} }
	tb, err := table.Build(model.Snapshot{ServiceEntries: []model.ServiceEntry{
		entry("orders-db", model.ResolutionDNS), entry("cache", model.ResolutionStatic, "127.0.0.3"),
		entry("gone", model.ResolutionDNS), entry("dead", model.ResolutionDNS)}},
		table.Options{Zone: "cluster.local", TTL: 30 * time.Second, VIPs: vip.Assignments{
			{Namespace: "db", Host: "orders-db.example.com"}: lease("240.240.0.1"),
			{Namespace: "db", Host: "cache.example.com"}:     lease("240.240.0.2"),
			{Namespace: "db", Host: "gone.example.com"}:      lease("240.240.0.3"),
			{Namespace: "db", Host: "dead.example.com"}:      lease("240.240.0.4"),
		}})
	if err != nil {
		t.Fatal(err)
	}
	up := &fakeDNS{names: map[string]string{"orders-db.example.com.": "127.0.0.2", "dead.example.com.": "127.0.0.4"}}
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up, Cache: answers})
	t.Cleanup(res.Close)
	res.SetTable(tb)
	r := &rig{reg: prometheus.NewRegistry(), dns: up}
	r.m = NewMetrics(r.reg)
	o.Listen, o.Resolver, o.Metrics = []string{"127.0.0.1:0"}, res, r.m
	r.fwd = New(o)
	r.fwd.origDst = func(*net.TCPConn) (netip.AddrPort, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.next, nil
	}
	if err := r.fwd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.fwd.Close)
	return r
}

// connect opens a connection as if made to dst and redirected to the forwarder.
func (r *rig) connect(t *testing.T, dst string) *net.TCPConn {
	t.Helper()
	c, err := r.dial(dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (r *rig) dial(dst string) (*net.TCPConn, error) {
	r.mu.Lock()
	r.next = netip.MustParseAddrPort(dst)
	r.mu.Unlock()
	c, err := net.Dial("tcp", r.fwd.Addrs()[0])
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(wait))
	return c.(*net.TCPConn), nil
}

// refused reports whether a connection to dst is reset: at once (the reset can beat the
// dialer's own check of the handshake) or at its first read.
func (r *rig) refused(dst string) error {
	c, err := r.dial(dst)
	if err == nil {
		defer c.Close()
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%v, want a reset", err)
	}
	return nil
}

func (r *rig) count(result string) float64 {
	return promtest.ToFloat64(r.m.conns.WithLabelValues(result))
}

// TestForwardsEachVIPToItsHost checks that a connection to a VIP reaches its own host (DNS
// through the resolver, STATIC through its endpoint), both ways, with the client's half close
// reaching the server and the server's answer after it reaching the client.
func TestForwardsEachVIPToItsHost(t *testing.T) {
	port := server(t, "127.0.0.2:0", "orders")
	if p := server(t, "127.0.0.3:"+strconv.Itoa(int(port)), "cache"); p != port {
		t.Fatal("ports differ")
	}
	r := newRig(t, port, Options{}, nil)
	for _, tc := range []struct{ vip, banner string }{
		{vip: "240.240.0.1", banner: "orders"},
		{vip: "240.240.0.2", banner: "cache"},
	} {
		t.Run(tc.vip, func(t *testing.T) {
			c := r.connect(t, netip.AddrPortFrom(netip.MustParseAddr(tc.vip), port).String())
			io.WriteString(c, "hello\n")
			c.CloseWrite()
			got, err := io.ReadAll(c)
			if want := tc.banner + "\necho hello\nbye\n"; string(got) != want || err != nil {
				t.Errorf("read %q, %v; want %q", got, err, want)
			}
		})
	}
	if got := r.count(resultForwarded); got != 2 {
		t.Errorf("forwarded connections: %v, want 2", got)
	}
	r.fwd.Close() // the byte counts are final once every pipe has ended
	if got := promtest.ToFloat64(r.m.bytes.WithLabelValues("to-target")); got != 2*float64(len("hello\n")) {
		t.Errorf("bytes to target: %v", got)
	}
	var h dto.Metric
	if err := r.m.dial.Write(&h); err != nil || h.GetHistogram().GetSampleCount() != 2 {
		t.Errorf("dial durations observed: %v, %v; want 2", h.GetHistogram().GetSampleCount(), err)
	}
}

// TestRefusesWhatItCannotForward checks that each connection that cannot reach a host is
// reset and counted by why.
func TestRefusesWhatItCannotForward(t *testing.T) {
	port := server(t, "127.0.0.2:0", "orders")
	r := newRig(t, port, Options{DialTimeout: 2 * time.Second}, nil)
	p := strconv.Itoa(int(port))
	for _, tc := range []struct{ name, dst, result string }{
		{name: "not a VIP", dst: "240.240.9.9:" + p, result: resultNoVIP},
		{name: "port the entry lacks", dst: "240.240.0.1:" + strconv.Itoa(int(port)+1), result: resultNoPort},
		{name: "host does not resolve", dst: "240.240.0.3:" + p, result: resultUnresolved},
		{name: "no family match", dst: "[64:ff9b::1]:" + p, result: resultNoVIP},
		{name: "nobody listens", dst: "240.240.0.4:" + p, result: resultDialFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.count(tc.result)
			if err := r.refused(tc.dst); err != nil {
				t.Error(err)
			}
			if got := r.count(tc.result); got != before+1 {
				t.Errorf("%s: %v, want %v", tc.result, got, before+1)
			}
		})
	}
}

// TestMaxConns checks that a connection beyond the cap is reset while the others go on.
func TestMaxConns(t *testing.T) {
	port := server(t, "127.0.0.2:0", "orders")
	r := newRig(t, port, Options{MaxConns: 1}, nil)
	dst := "240.240.0.1:" + strconv.Itoa(int(port))
	first := r.connect(t, dst)
	if line, err := bufio.NewReader(first).ReadString('\n'); line != "orders\n" {
		t.Fatalf("first connection: %q, %v", line, err)
	}
	if err := r.refused(dst); err != nil {
		t.Errorf("second connection: %v", err)
	}
	if got := r.count(resultLimit); got != 1 {
		t.Errorf("limit: %v, want 1", got)
	}
}

// TestIdleTimeout checks that a connection with no bytes either way is closed.
func TestIdleTimeout(t *testing.T) {
	port := server(t, "127.0.0.2:0", "orders")
	r := newRig(t, port, Options{IdleTimeout: 200 * time.Millisecond}, nil)
	c := r.connect(t, "240.240.0.1:"+strconv.Itoa(int(port)))
	got, err := io.ReadAll(c) // bounded by the connection's deadline
	if string(got) != "orders\n" || err != nil {
		t.Errorf("read %q, %v; want the banner, then the end", got, err)
	}
}

// TestFollowsUpstreamChange checks that the host is resolved through the resolver's cache: a
// new address upstream reaches new connections once the cached answer (TTL 30s) expires, and
// not before.
func TestFollowsUpstreamChange(t *testing.T) {
	port := server(t, "127.0.0.2:0", "old")
	server(t, "127.0.0.3:"+strconv.Itoa(int(port)), "new")
	clock := testutil.NewClock()
	r := newRig(t, port, Options{}, cache.New(cache.Options{Size: 100, Now: clock.Now}))
	dst := "240.240.0.1:" + strconv.Itoa(int(port))
	banner := func() string {
		c := r.connect(t, dst)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if got := banner(); got != "old\n" {
		t.Fatalf("first connection: %q, want old", got)
	}
	r.dns.set("orders-db.example.com.", "127.0.0.3")
	if got := banner(); got != "old\n" {
		t.Errorf("within the TTL: %q, want old (the cached answer)", got)
	}
	clock.Advance(31 * time.Second)
	if got := banner(); got != "new\n" {
		t.Errorf("after the TTL: %q, want new", got)
	}
}

// TestKeepAliveTowardsTheHostOnly checks that the connection to the host probes for a host
// that vanished (keep-alive on), and the redirected one from a local process does not.
func TestKeepAliveTowardsTheHostOnly(t *testing.T) {
	port := server(t, "127.0.0.2:0", "orders")
	r := newRig(t, port, Options{}, nil)
	c := r.connect(t, "240.240.0.1:"+strconv.Itoa(int(port)))
	if line, err := bufio.NewReader(c).ReadString('\n'); line != "orders\n" {
		t.Fatalf("read %q, %v; want the banner", line, err)
	}
	r.fwd.mu.Lock()
	defer r.fwd.mu.Unlock()
	want := map[string]int{"client": 0, "host": 1}
	got := map[string]int{}
	for conn := range r.fwd.conns {
		side := "client"
		if conn.RemoteAddr().(*net.TCPAddr).IP.Equal(net.IPv4(127, 0, 0, 2)) {
			side = "host"
		}
		raw, err := conn.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var on int
		var serr error
		err = raw.Control(func(fd uintptr) {
			on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		})
		if err != nil || serr != nil {
			t.Fatal(err, serr)
		}
		got[side] = on
	}
	if len(got) != 2 || got["client"] != want["client"] || got["host"] != want["host"] {
		t.Errorf("SO_KEEPALIVE by side: %v, want %v", got, want)
	}
}
