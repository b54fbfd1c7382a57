package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// openConns is the number of TCP connections srv holds.
func openConns(srv *Server) int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.conns.all)
}

// dialFrom opens a TCP connection to addr from the loopback address src (Linux routes all of
// 127.0.0.0/8 to lo, so each src is a client of its own).
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// holdStyle is how an attacker keeps a TCP connection.
type holdStyle int

const (
	silent   holdStyle = iota // sends nothing
	trickle                   // sends a query one byte at a time
	periodic                  // asks a query now and then, reading each reply
)

// hold keeps a connection from src to addr in style until stop is closed, opening a new one
// 10 ms after the server closes the last (at most 1,000 times); msg is the query it sends,
// length first.
func hold(src, addr string, style holdStyle, msg []byte, stop <-chan struct{}) {
	for try := range 1000 {
		if try > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		conn, err := dialFrom(src, addr)
		if err != nil {
			return
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				conn.Close()
				return
			default:
			}
			conn.SetDeadline(time.Now().Add(20 * time.Millisecond))
			switch style {
			case silent:
				_, err = conn.Read(make([]byte, 1))
			case trickle:
				_, err = conn.Write(msg[i%len(msg) : i%len(msg)+1])
				if err == nil {
					_, err = conn.Read(make([]byte, 512))
				}
			case periodic:
				if i%5 == 0 {
					_, err = conn.Write(msg)
				}
				if err == nil {
					_, err = conn.Read(make([]byte, 512))
				}
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
				break // closed by the server: open another
			}
		}
		conn.Close()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestTCPFairShareUnderHeldConnections: an attacker at three addresses holds TCP connections
// in three styles (silent, trickling a query one byte at a time, a query now and then), ten
// in all for 8 slots and 3 per address, and reopens whatever is closed. A client at a fourth
// address then asks 20 queries, each on a new connection as glibc does after TC. It gets all
// 20 answers: with every slot taken, the longest idle connection of the address holding the
// most makes room. That is always one of the attacker's: its 7 or 8 connections over three
// addresses put at least 3 at one of them, one of which is silent or trickling and so idle
// (no query unanswered), while the client never has more than its one.
func TestTCPFairShareUnderHeldConnections(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	srv := New(&stubResolver{}, Options{Listen: []string{"127.0.0.1:0"}, Metrics: metrics,
		MaxTCPConns: 8, MaxTCPConnsPerClient: 3})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addrs()[0]

	msg := withLength(pack(t, query("attacker.", 0)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	attackers := map[string][]holdStyle{ // the first address holds one more than its share
		"127.0.0.3": {silent, silent, trickle, periodic},
		"127.0.0.4": {silent, trickle, periodic},
		"127.0.0.5": {silent, trickle, periodic},
	}
	for src, styles := range attackers {
		for _, style := range styles {
			wg.Add(1)
			go func() { defer wg.Done(); hold(src, addr, style, msg, stop) }()
		}
	}
	defer func() { close(stop); wg.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); openConns(srv) < 8; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the attacker holds %d connections, want all 8", openConns(srv))
		}
	}

	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}}
	answered := 0
	for range 20 {
		if resp, _, err := c.Exchange(query("victim.", 0), addr); err == nil && resp.Rcode == dns.RcodeSuccess {
			answered++
		}
	}
	if answered != 20 {
		t.Errorf("the client at another address got %d of 20 answers", answered)
	}
	if got := testutil.ToFloat64(metrics.tcpClosed.WithLabelValues("evicted")); got < 1 {
		t.Errorf("evicted connections counted: %v, want some", got)
	}
	// The address holding one more than its share keeps closing its own longest idle one.
	clientLimit := metrics.tcpClosed.WithLabelValues("client-limit")
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(clientLimit) < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no connection closed for the per-address limit")
			break
		}
	}
}

// TestTCPQueryMustArriveInTime: a connection that sends nothing, and one that sends a query
// one byte per 100 ms (3 s for the whole, three idle timeouts), are both closed and counted
// by why.
func TestTCPQueryMustArriveInTime(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	srv := New(&stubResolver{}, Options{Listen: []string{"127.0.0.1:0"}, Metrics: metrics,
		TCPIdleTimeout: time.Second})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addrs()[0]

	silentConn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silentConn.Close()
	silentConn.SetReadDeadline(time.Now().Add(10 * time.Second)) // guards against a hang
	if _, err := silentConn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("silent connection: read %v, want it closed by the server", err)
	}

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	msg := withLength(pack(t, query("slow-loris.", 0)))
	closed := false
	for i := 0; i < len(msg) && !closed; i++ {
		slow.Write(msg[i : i+1])
		slow.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := slow.Read(make([]byte, 512))
		closed = err != nil && !isTimeout(err)
	}
	if !closed {
		t.Errorf("a query trickled one byte at a time was read whole")
	}
	for deadline := time.Now().Add(10 * time.Second); openConns(srv) > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	for _, reason := range []string{"idle", "slow"} {
		if got := testutil.ToFloat64(metrics.tcpClosed.WithLabelValues(reason)); got != 1 {
			t.Errorf("connections closed as %s: %v, want 1", reason, got)
		}
	}
}

// TestTCPIdleTimeoutShorterWhenBusy: past half the slots, idle connections get a fifth of the
// idle timeout.
func TestTCPIdleTimeoutShorterWhenBusy(t *testing.T) {
	for _, tc := range []struct {
		open int
		want time.Duration
	}{
		{0, 10 * time.Second},
		{500, 10 * time.Second},
		{501, 2 * time.Second},
		{1000, 2 * time.Second},
	} {
		if got := idleTimeout(10*time.Second, tc.open, 1000); got != tc.want {
			t.Errorf("%d of 1000 open: idle timeout %s, want %s", tc.open, got, tc.want)
		}
	}
}

// TestTCPConnectionNotIdleWhileAnswering: a connection whose query takes longer than the idle
// timeout to answer is not idle meanwhile (RFC 7766 §6.2.3: the timer starts once nothing is
// outstanding): it gets the answer and stays open for the next query.
func TestTCPConnectionNotIdleWhileAnswering(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	stub := &stubResolver{release: make(chan struct{}), started: make(chan struct{}, 1)}
	srv := New(stub, Options{Listen: []string{"127.0.0.1:0"}, Metrics: metrics, TCPIdleTimeout: 200 * time.Millisecond})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	conn, err := net.Dial("tcp", srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second)) // guards against a hang
	if _, err := conn.Write(withLength(pack(t, query("slow.", 0)))); err != nil {
		t.Fatal(err)
	}
	<-stub.started
	// Three idle timeouts pass while the query is being answered.
	time.Sleep(600 * time.Millisecond)
	close(stub.release)
	for _, name := range []string{"slow.", "next."} {
		if name != "slow." {
			if _, err := conn.Write(withLength(pack(t, query(name, 0)))); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if _, _, err := readTCPMsg(conn); err != nil {
			t.Fatalf("%s: no answer on the connection: %v", name, err)
		}
	}
	if got := testutil.ToFloat64(metrics.tcpClosed.WithLabelValues("idle")); got != 0 {
		t.Errorf("connections closed as idle: %v, want 0", got)
	}
}
