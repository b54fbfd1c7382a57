package upstream

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxIdleTCP is how many idle connections are kept per server: enough for sequential reuse
	// (TCP clients, truncated answers), few enough to cost the upstream nothing.
	maxIdleTCP = 2
	// idleTCPTimeout closes a connection nobody used for this long, before the upstream's own
	// idle timeout would (unbound's tcp-idle-timeout is 30s, dnsmasq's about 150s).
	idleTCPTimeout = 10 * time.Second
)

// tcpPool keeps a few idle connections to one server. Connections are used by one exchange at
// a time (no pipelining); the most recently used is reused first, being the least likely to
// have been closed by the server.
type tcpPool struct {
	mu          sync.Mutex
	idle        []*idleConn
	closed      bool
	idleTimeout time.Duration
}

type idleConn struct {
	net.Conn
	timer *time.Timer // closes the connection when it has been idle too long
}

// get takes an idle connection, or returns nil.
func (p *tcpPool) get() net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	ic := p.idle[n-1]
	p.idle = p.idle[:n-1]
	// If the timer has already fired, expire finds ic gone from the list and leaves it alone.
	ic.timer.Stop()
	return ic.Conn
}

// put keeps conn for reuse, or closes it when the pool is full or closed.
func (p *tcpPool) put(conn net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxIdleTCP {
		conn.Close()
		return
	}
	ic := &idleConn{Conn: conn}
	ic.timer = time.AfterFunc(p.idleTimeout, func() { p.expire(ic) })
	p.idle = append(p.idle, ic)
}

// expire closes ic if it is still idle.
func (p *tcpPool) expire(ic *idleConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.idle {
		if c == ic {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			ic.Close()
			return
		}
	}
}

// close closes the idle connections; connections in use are closed when they come back.
func (p *tcpPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, ic := range p.idle {
		ic.timer.Stop()
		ic.Close()
	}
	p.idle = nil
}

// exchangeTCP sends q over an idle connection to s if there is one, else a new one. A reused
// connection may have been closed by the server while idle: if it fails before ctx ends, q is
// sent once more on a fresh connection.
func (f *Forwarder) exchangeTCP(ctx context.Context, s *server, q *dns.Msg) (*dns.Msg, error) {
	packed, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	s.m.query("tcp")
	if conn := s.pool.get(); conn != nil {
		resp, err := roundTrip(ctx, s, conn, packed, q)
		if err == nil || ctxErr(ctx) != nil {
			return resp, err
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr.String())
	if err != nil {
		return nil, err
	}
	return roundTrip(ctx, s, conn, packed, q)
}

// roundTrip runs one exchange on conn, then returns conn to the pool if it is still in a known
// state, or closes it.
func roundTrip(ctx context.Context, s *server, conn net.Conn, packed []byte, q *dns.Msg) (*dns.Msg, error) {
	stop := bindContext(ctx, conn)
	resp, err := writeRead(conn, s, packed, q)
	if !stop() || err != nil {
		// The watch fired (its deadline may land at any moment) or the stream is mid-message.
		conn.Close()
		return resp, err
	}
	if conn.SetDeadline(time.Time{}) != nil {
		conn.Close()
		return resp, nil
	}
	s.pool.put(conn)
	return resp, nil
}
