package upstream

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// packet is one message a fake server sends back.
type packet struct {
	msg     *dns.Msg
	raw     []byte // sent instead of msg: bytes that need not be a DNS message
	spoofed bool   // UDP only: sent from another local port, as an off-path attacker would
	close   bool   // TCP only: close the connection after sending this
}

// handler decides what a fake server sends back for q received over network ("udp", "tcp").
// Over TCP, returning nothing closes the connection.
type handler func(network string, q *dns.Msg) []packet

// fakeServer is a scripted DNS server on one loopback port, UDP and TCP.
type fakeServer struct {
	addr   netip.AddrPort
	udp    *net.UDPConn
	spoof  *net.UDPConn
	tcp    *net.TCPListener
	handle handler

	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	queries  []*dns.Msg
	networks []string // network of each query
	accepted int      // TCP connections accepted
	ended    int      // TCP connections ended (by either side)
}

func startFake(t *testing.T, h handler) *fakeServer {
	t.Helper()
	udp, tcp, addr := listenPair(t)
	spoof, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{addr: addr, udp: udp, spoof: spoof, tcp: tcp, handle: h, conns: map[net.Conn]struct{}{}}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) close() {
	s.udp.Close()
	s.spoof.Close()
	s.tcp.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) record(network string, q *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, q)
	s.networks = append(s.networks, network)
}

// Queries returns the queries received so far.
func (s *fakeServer) Queries() []*dns.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*dns.Msg(nil), s.queries...)
}

// Accepted returns how many TCP connections were accepted, and how many of them have ended.
func (s *fakeServer) Accepted() (accepted, ended int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.ended
}

// Networks returns the network ("udp", "tcp") of each query received so far.
func (s *fakeServer) Networks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.networks...)
}

func (s *fakeServer) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		q := new(dns.Msg)
		if q.Unpack(buf[:n]) != nil {
			continue
		}
		s.record("udp", q)
		for _, p := range s.handle("udp", q) {
			conn := s.udp
			if p.spoofed {
				conn = s.spoof
			}
			_, _ = conn.WriteToUDPAddrPort(p.wire(), from)
		}
	}
}

func (s *fakeServer) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.accepted++
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

func (s *fakeServer) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		s.ended++
		s.mu.Unlock()
	}()
	for {
		b, err := readFramed(c)
		if err != nil {
			return
		}
		q := new(dns.Msg)
		if q.Unpack(b) != nil {
			return
		}
		s.record("tcp", q)
		packets := s.handle("tcp", q)
		if len(packets) == 0 {
			return
		}
		for _, p := range packets {
			if !p.spoofed {
				_, _ = c.Write(frame(p.wire()))
			}
			if p.close {
				return
			}
		}
	}
}

func (p packet) wire() []byte {
	if p.raw != nil {
		return p.raw
	}
	return mustPack(p.msg)
}

func frame(b []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

func mustPack(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// listenPair opens UDP and TCP sockets on the same free loopback port.
func listenPair(t *testing.T) (*net.UDPConn, *net.TCPListener, netip.AddrPort) {
	t.Helper()
	for range 20 {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addr := udp.LocalAddr().(*net.UDPAddr).AddrPort()
		tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		if err == nil {
			return udp, tcp, addr
		}
		udp.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil, netip.AddrPort{}
}

// silentServer holds a UDP socket and a TCP listener that never answer: UDP queries queue
// unread, TCP connections complete in the kernel's backlog and are never served.
func silentServer(t *testing.T) netip.AddrPort {
	t.Helper()
	udp, tcp, addr := listenPair(t)
	t.Cleanup(func() {
		udp.Close()
		tcp.Close()
	})
	return addr
}

// closedPort returns a loopback port with nothing bound: UDP gets ICMP port unreachable, TCP a
// reset.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	udp, tcp, addr := listenPair(t)
	udp.Close()
	tcp.Close()
	return addr
}

// answerWith returns a handler that replies to every query with rcode and, for NOERROR, an A
// record of ip for the question's name.
func answerWith(rcode int, ip string) handler {
	return func(_ string, q *dns.Msg) []packet {
		return []packet{{msg: replyA(q, rcode, ip)}}
	}
}

func replyA(q *dns.Msg, rcode int, ip string) *dns.Msg {
	m := new(dns.Msg).SetRcode(q, rcode)
	m.RecursionAvailable = true
	if rcode == dns.RcodeSuccess && ip != "" {
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.ParseIP(ip),
		}}
	}
	return m
}

// hangGuard bounds tests whose options would otherwise let them wait for minutes. It is no
// timing assertion: a correct forwarder finishes orders of magnitude sooner.
const hangGuard = 10 * time.Second

// forwardWithin runs Forward and fails the test if it has not returned within hangGuard.
func forwardWithin(t *testing.T, ctx context.Context, f *Forwarder, req *dns.Msg, tcp bool) (*dns.Msg, error) {
	t.Helper()
	type result struct {
		resp *dns.Msg
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := f.Forward(ctx, req, Via{TCP: tcp})
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-time.After(hangGuard):
		t.Fatalf("Forward(%s) still running after %v", req.Question[0].Name, hangGuard)
		return nil, nil
	}
}

// waitFor polls cond until it holds, failing the test after hangGuard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after %v", what, hangGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newForwarder is New with the test's clock and idle timeout in place before the servers
// are created, and Close at the end of the test.
func newForwarder(t *testing.T, servers []netip.AddrPort, opts Options, idle time.Duration) *Forwarder {
	t.Helper()
	f := New(nil, opts)
	if idle > 0 {
		f.idleTimeout = idle
	}
	f.SetServers(servers)
	t.Cleanup(f.Close)
	return f
}
