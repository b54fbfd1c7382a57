package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stubResolver answers "big." with n A records, "panic." by panicking, "unpackable." with a
// record that does not pack, "slow." after release is closed, anything else with one A record.
type stubResolver struct {
	big     int
	release chan struct{}
	started chan struct{}
}

func (s *stubResolver) Epoch() uint64 { return 0 }

func (s *stubResolver) Query(ctx context.Context, req *dns.Msg, _ resolver.Client) resolver.Reply {
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	switch q.Name {
	case "panic.":
		panic("boom")
	case "slow.":
		s.started <- struct{}{}
		<-s.release
	case "unpackable.":
		m.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET},
			Target: "empty..label."}}
		return resolver.Reply{Msg: m, Result: resolver.ResultTable}
	}
	n := 1
	if q.Name == "big." || q.Name == "signed-big." {
		n = s.big
	}
	for i := range n {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
			A: net.IPv4(10, 0, byte(i/256), byte(i%256))})
	}
	if q.Name == "signed-big." {
		// As an upstream's reply would carry it, if anything let it through.
		m.Extra = append(m.Extra, &dns.TSIG{Hdr: dns.RR_Header{Name: "key.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
			Algorithm: dns.HmacSHA256, MACSize: 32, MAC: strings.Repeat("00", 32), OrigId: req.Id})
	}
	return resolver.Reply{Msg: m, Result: resolver.ResultTable}
}

func start(t *testing.T, res Resolver) (*Server, string) {
	t.Helper()
	srv := New(res, Options{Listen: []string{"127.0.0.1:0"}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv, srv.Addrs()[0]
}

func query(name string, edns uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	if edns > 0 {
		m.SetEdns0(edns, true)
	}
	return m
}

func exchange(t *testing.T, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s: %v", network, err)
	}
	return resp
}

func TestTransportRules(t *testing.T) {
	_, addr := start(t, &stubResolver{big: 60}) // 60 A records: ~1 KB compressed
	for _, tc := range []struct {
		name     string
		network  string
		req      *dns.Msg
		tc       bool
		answers  int // -1: fewer than 100
		edns     bool
		maxBytes int
	}{
		{"no EDNS over UDP: 512 bytes, TC", "udp", query("big.", 0), true, -1, false, 512},
		{"EDNS 1232 over UDP: fits whole", "udp", query("big.", 1232), false, 60, true, 1232},
		{"EDNS 800 over UDP: TC within 800", "udp", query("big.", 800), true, -1, true, 800},
		{"EDNS below 512 counts as 512", "udp", query("big.", 100), true, -1, true, 512},
		{"no EDNS over TCP: whole", "tcp", query("big.", 0), false, 60, false, 65535},
		{"small answer with EDNS", "udp", query("small.", 4096), false, 1, true, 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := exchange(t, tc.network, addr, tc.req)
			if resp.Truncated != tc.tc {
				t.Errorf("TC = %v, want %v", resp.Truncated, tc.tc)
			}
			if tc.answers >= 0 && len(resp.Answer) != tc.answers {
				t.Errorf("%d answers, want %d", len(resp.Answer), tc.answers)
			}
			if tc.answers < 0 && len(resp.Answer) >= 60 {
				t.Errorf("%d answers, want fewer than 60", len(resp.Answer))
			}
			if got := resp.IsEdns0() != nil; got != tc.edns {
				t.Errorf("OPT present = %v, want %v", got, tc.edns)
			}
			if opt := resp.IsEdns0(); opt != nil && !opt.Do() {
				t.Errorf("DO bit not echoed")
			}
			resp.Compress = true // as sent; Len of an unpacked message assumes no compression
			if resp.Len() > tc.maxBytes {
				t.Errorf("%d bytes, limit %d", resp.Len(), tc.maxBytes)
			}
		})
	}
}

// TestDrops sends packets that must get no reply at all, then checks the server still answers.
func TestDrops(t *testing.T) {
	_, addr := start(t, &stubResolver{})
	response := query("small.", 0)
	response.Response = true
	respBytes, _ := response.Pack()
	valid, _ := query("small.", 0).Pack()
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"empty", nil},
		{"short header", []byte{1, 2, 3}},
		{"question cut short", valid[:len(valid)-3]},
		{"random bytes", []byte("this is not a DNS message at all, not even close")},
		{"a response", respBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write(tc.pkt)
			conn.Write(valid) // answered: proves the first one was read and dropped
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 512)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			var m dns.Msg
			if err := m.Unpack(buf[:n]); err != nil || m.Id != binaryID(valid) {
				t.Fatalf("first reply is not the valid query's (id %d): %v", m.Id, err)
			}
			conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := conn.Read(buf); err == nil {
				t.Errorf("got a second reply of %d bytes: the bad packet was answered", n)
			}
		})
	}
}

func binaryID(pkt []byte) uint16 { return uint16(pkt[0])<<8 | uint16(pkt[1]) }

func TestPanicCostsOneQuery(t *testing.T) {
	_, addr := start(t, &stubResolver{})
	for _, network := range []string{"udp", "tcp"} {
		if resp := exchange(t, network, addr, query("panic.", 0)); resp.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s: panic answered %s, want SERVFAIL", network, dns.RcodeToString[resp.Rcode])
		}
		if resp := exchange(t, network, addr, query("small.", 0)); resp.Rcode != dns.RcodeSuccess {
			t.Errorf("%s: after a panic, answered %s", network, dns.RcodeToString[resp.Rcode])
		}
	}
}

func TestTCPPipelining(t *testing.T) {
	_, addr := start(t, &stubResolver{})
	conn, err := dns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ids := map[uint16]bool{}
	for i := range 5 {
		m := query(fmt.Sprintf("q%d.", i), 0)
		ids[m.Id] = true
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 5 {
		m, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if !ids[m.Id] {
			t.Errorf("unexpected id %d", m.Id)
		}
		delete(ids, m.Id)
	}
}

// TestShutdownFinishesInFlight: a query in progress when Shutdown starts is still answered,
// and new queries are no longer read.
func TestShutdownFinishesInFlight(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			stub := &stubResolver{release: make(chan struct{}), started: make(chan struct{}, 1)}
			srv := New(stub, Options{Listen: []string{"127.0.0.1:0"}})
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			addr := srv.Addrs()[0]
			var wg sync.WaitGroup
			var resp *dns.Msg
			var qerr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &dns.Client{Net: network, Timeout: 5 * time.Second}
				resp, _, qerr = c.Exchange(query("slow.", 0), addr)
			}()
			<-stub.started
			shut := make(chan error)
			go func() { shut <- srv.Shutdown(context.Background()) }()
			time.Sleep(50 * time.Millisecond) // let Shutdown close the listeners first
			close(stub.release)
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			wg.Wait()
			if qerr != nil || resp.Rcode != dns.RcodeSuccess {
				t.Fatalf("in-flight query: %v %v", resp, qerr)
			}
			c := &dns.Client{Net: network, Timeout: 300 * time.Millisecond}
			if _, _, err := c.Exchange(query("small.", 0), addr); err == nil {
				t.Errorf("answered after shutdown")
			}
		})
	}
}

func TestBindError(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := New(&stubResolver{}, Options{Listen: []string{"127.0.0.1:0", l.LocalAddr().String()}})
	err = srv.Start()
	if err == nil || !strings.Contains(err.Error(), l.LocalAddr().String()) {
		t.Fatalf("Start = %v, want an error naming %s", err, l.LocalAddr())
	}
	if errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
}

// TestLimits: beyond MaxInflight a UDP query is dropped and a TCP connection closed, beyond
// MaxTCPConns a connection is closed; both are counted, and service resumes afterwards.
func TestLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	stub := &stubResolver{release: make(chan struct{}), started: make(chan struct{}, 1)}
	srv := New(stub, Options{Listen: []string{"127.0.0.1:0"}, Metrics: metrics, MaxInflight: 1, MaxTCPConns: 1})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addrs()[0]

	held, err := dns.Dial("tcp", addr) // the one TCP connection allowed, kept busy below
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.WriteMsg(query("slow.", 0))
	<-stub.started // the one query allowed is now in flight

	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	if _, _, err := c.Exchange(query("small.", 0), addr); err == nil {
		t.Errorf("UDP query beyond MaxInflight was answered")
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Errorf("TCP connection beyond MaxTCPConns was kept open")
	}
	extra.Close()

	close(stub.release)
	if _, err := held.ReadMsg(); err != nil {
		t.Fatalf("the admitted query was not answered: %v", err)
	}
	// The reply is written just before the slot is released.
	for deadline := time.Now().Add(5 * time.Second); srv.inflight.Total() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := testutil.ToFloat64(metrics.dropped.WithLabelValues("overload")); got != 1 {
		t.Errorf("overload drops = %v, want 1", got)
	}
	if got := testutil.ToFloat64(metrics.dropped.WithLabelValues("tcp-connection-limit")); got != 1 {
		t.Errorf("connection limit drops = %v, want 1", got)
	}
	if resp := exchange(t, "udp", addr, query("small.", 0)); resp.Rcode != dns.RcodeSuccess {
		t.Errorf("after the load, answered %s", dns.RcodeToString[resp.Rcode])
	}
}

// TestShutdownWithBusyClient: a client pipelining queries without pause must not keep
// Shutdown (and so SIGTERM) from returning.
func TestShutdownWithBusyClient(t *testing.T) {
	for range 5 {
		srv := New(&stubResolver{}, Options{Listen: []string{"127.0.0.1:0"}})
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		conn, err := dns.Dial("tcp", srv.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				if _, err := conn.ReadMsg(); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				conn.SetWriteDeadline(time.Now().Add(time.Second))
				if conn.WriteMsg(query("x.", 0)) != nil {
					return
				}
			}
		}()
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		done := make(chan struct{})
		go func() { srv.Shutdown(ctx); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown did not return while a client kept sending")
		}
		cancel()
		close(stop)
		conn.Close()
		wg.Wait()
	}
}

func TestEDNSRejectedBeforeResolving(t *testing.T) {
	_, addr := start(t, &stubResolver{})
	badVersion := query("panic.", 1232) // the stub panics if asked: it must not be
	badVersion.IsEdns0().SetVersion(1)
	twoOPT := query("panic.", 1232)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	for _, tc := range []struct {
		name  string
		req   *dns.Msg
		rcode int
	}{
		{"EDNS version 1", badVersion, dns.RcodeBadVers},
		{"two OPT records", twoOPT, dns.RcodeFormatError},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				resp := exchange(t, network, addr, tc.req)
				if resp.Rcode != tc.rcode || resp.IsEdns0() == nil || len(resp.Answer) != 0 {
					t.Errorf("rcode %s, OPT %v, %d answers; want %s with OPT and no answer",
						dns.RcodeToString[resp.Rcode], resp.IsEdns0(), len(resp.Answer), dns.RcodeToString[tc.rcode])
				}
			})
		}
	}
}
