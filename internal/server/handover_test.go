package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/testutil/netlab"
	"github.com/miekg/dns"
)

// idResolver answers every A query with its own address, so that a test sees which server
// answered.
type idResolver struct{ id net.IP }

func (r idResolver) Epoch() uint64 { return 0 }

func (r idResolver) Query(_ context.Context, req *dns.Msg, _ resolver.Client) resolver.Reply {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA,
		Class: dns.ClassINET, Ttl: 30}, A: r.id}}
	return resolver.Reply{Msg: m, Result: resolver.ResultTable}
}

var (
	oldID = net.IPv4(10, 0, 0, 1)
	newID = net.IPv4(10, 0, 0, 2)
)

// freeAddr is a loopback address whose port is free for UDP and TCP now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ap, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return ap.String()
}

// answeredBy sends an A query over network and returns the address in the answer.
func answeredBy(network, addr string) (string, error) {
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(query("who.", 0), addr)
	if err != nil {
		return "", err
	}
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
		return "", &net.AddrError{Err: "unexpected reply " + resp.String(), Addr: addr}
	}
	return resp.Answer[0].(*dns.A).A.String(), nil
}

// TestShutdownAnswersQueued: queries the kernel queued on a socket before Shutdown are all
// answered. They are queued before the reader starts, and Shutdown follows at once; a
// Shutdown that stopped reading at once (or closed the socket) would leave them unanswered.
func TestShutdownAnswersQueued(t *testing.T) {
	srv := New(idResolver{oldID}, Options{Listen: []string{"127.0.0.1:0"}, UDPSockets: 1})
	if err := srv.listen(); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addrs()[0]
	const n = 50
	var clients []*dns.Conn
	for i := range n {
		c, err := dns.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		m := query("who.", 0)
		m.Id = uint16(i + 1)
		if err := c.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	srv.serve()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("query %d of %d queued before Shutdown: no answer: %v", i+1, n, err)
		}
		if resp.Id != uint16(i+1) || len(resp.Answer) != 1 {
			t.Fatalf("query %d: answer %v", i+1, resp)
		}
	}
}

// TestHandOver: a second server with ReusePort binds the first one's address while it
// serves; queries sent while the first shuts down all get an answer, and afterwards the
// second answers everything, over UDP and TCP.
func TestHandOver(t *testing.T) {
	addr := freeAddr(t)
	first := New(idResolver{oldID}, Options{Listen: []string{addr}, ReusePort: true})
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown(context.Background())
	if !Held(addr) {
		t.Fatalf("Held(%s) = false while a server listens there", addr)
	}
	second := New(idResolver{newID}, Options{Listen: []string{addr}, ReusePort: true})
	if err := second.Start(); err != nil {
		t.Fatalf("second server on %s: %v", addr, err)
	}
	defer second.Shutdown(context.Background())

	// Queries from fresh sockets while the first leaves: the kernel spreads them over
	// both servers' sockets until the first has left.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	seen := map[string]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id, err := answeredBy("udp", addr)
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				}
				seen[id]++
				mu.Unlock()
			}
		}()
	}
	count := func(id net.IP) int { mu.Lock(); defer mu.Unlock(); return seen[id.String()] }
	waitFor(t, "answers from both servers", func() bool { return count(oldID) > 0 && count(newID) > 0 })
	if err := first.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	after := count(newID)
	waitFor(t, "more answers after Shutdown", func() bool { return count(newID) >= after+100 })
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d queries failed during the hand-over, first: %s", len(failures), failures[0])
	}
	t.Logf("answers during the hand-over by server: %v", seen)
	for _, network := range []string{"udp", "tcp"} {
		for range 20 {
			if id, err := answeredBy(network, addr); err != nil || id != newID.String() {
				t.Fatalf("%s after the hand-over: answered by %q (%v), want %s", network, id, err, newID)
			}
		}
	}
}

// TestReusePortOff: without ReusePort a second server on an address in use fails to start
// (the TCP listener is not shared), whichever of the two has it; with it, an address given
// as port 0 still gets a port of its own.
func TestReusePortOff(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second bool // ReusePort of each
	}{
		{"neither shares", false, false},
		{"only the first shares", true, false},
		{"only the second shares", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			first := New(idResolver{oldID}, Options{Listen: []string{addr}, ReusePort: tc.first})
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			defer first.Shutdown(context.Background())
			second := New(idResolver{newID}, Options{Listen: []string{addr}, ReusePort: tc.second})
			err := second.Start()
			if err == nil {
				second.Shutdown(context.Background())
				t.Fatalf("second server started on %s, want address already in use", addr)
			}
			if !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("second server: %v, want address already in use", err)
			}
		})
	}
	t.Run("port 0", func(t *testing.T) {
		a := New(idResolver{oldID}, Options{Listen: []string{"127.0.0.1:0"}, ReusePort: true})
		b := New(idResolver{newID}, Options{Listen: []string{"127.0.0.1:0"}, ReusePort: true})
		for _, s := range []*Server{a, b} {
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown(context.Background())
		}
		if a.Addrs()[0] == b.Addrs()[0] {
			t.Fatalf("both servers got %s", a.Addrs()[0])
		}
	})
}

// TestFailedStartTakesNoQuery: a second server that fails to start on an address a server
// holds without ReusePort takes none of that server's queries while it tries. Its UDP
// sockets share the port (several per address set SO_REUSEPORT), so they are bound only once
// its TCP listener, which is not shared, has been; bound first, each try would take part of
// the queries and lose them when it gave up.
func TestFailedStartTakesNoQuery(t *testing.T) {
	addr := freeAddr(t)
	first := New(idResolver{oldID}, Options{Listen: []string{addr}, UDPSockets: 2})
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown(context.Background())
	stop, tries := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				tries <- nil
				return
			default:
			}
			second := New(idResolver{newID}, Options{Listen: []string{addr}, UDPSockets: 2})
			if err := second.Start(); err == nil {
				second.Shutdown(context.Background())
				tries <- fmt.Errorf("the second server started on %s", addr)
				return
			}
		}
	}()
	c := &dns.Client{Timeout: 2 * time.Second} // a loss, not a slow answer
	const asked = 500
	lost := 0
	for range asked {
		if _, _, err := c.Exchange(query("who.", 0), addr); err != nil {
			lost++
		}
	}
	close(stop)
	if err := <-tries; err != nil {
		t.Fatal(err)
	}
	if lost > 0 {
		t.Errorf("%d of %d queries got no answer while a second server tried to start", lost, asked)
	}
}

// TestPortZeroJoinsNoStranger: a server asked for port 0 never shares its UDP port with
// another process's SO_REUSEPORT sockets, which would get part of its queries. In a namespace
// whose ephemeral range is two ports, a stranger holds one of them by UDP alone; asked for
// port 0 with SO_REUSEPORT, the kernel would give the server either.
func TestPortZeroJoinsNoStranger(t *testing.T) {
	ns := netlab.New(t, "srvport")
	ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40001")
	err := ns.Do(func() error {
		for i := range 20 {
			lc := ListenConfig(true)
			stranger, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			srv := New(idResolver{oldID}, Options{Listen: []string{"127.0.0.1:0"}, UDPSockets: 2})
			err = srv.Start()
			if err == nil {
				got := srv.Addrs()[0]
				srv.Shutdown(context.Background())
				if got == stranger.LocalAddr().String() {
					err = fmt.Errorf("try %d: the server joined the stranger's port %s", i, got)
				}
			}
			stranger.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after a bound (a limit, not a timing
// assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}
