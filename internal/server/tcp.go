package server

import (
	"container/list"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// DNS over TCP keeps a slot per connection, so the slots are shared out (RFC 7766 §6.2):
//   - a connection that sends no whole query within the idle timeout is closed, which bounds
//     a client trickling one byte at a time as much as a silent one;
//   - one source address holds at most MaxTCPConnsPerClient connections; beyond that its own
//     longest idle connection makes room for the new one;
//   - when all MaxTCPConns are taken, the longest idle connection of the source holding the
//     most makes room; a new connection is refused only when every one is answering.
//
// Idle is the server's view of RFC 7766 §3: every query read has been answered.

// tcpConn is an accepted connection and its place in the server's connTable.
type tcpConn struct {
	net.Conn
	src     netip.Addr
	pending int           // queries read and not yet answered
	idle    *list.Element // in connTable.idle while pending is 0
	removed bool          // no longer in the table: evicted, or finished
}

// connTable holds the open TCP connections; Server.mu guards it.
type connTable struct {
	all   map[*tcpConn]struct{}
	bySrc map[netip.Addr]int
	idle  *list.List // of *tcpConn, the longest idle first
}

func newConnTable() connTable {
	return connTable{all: map[*tcpConn]struct{}{}, bySrc: map[netip.Addr]int{}, idle: list.New()}
}

func (t *connTable) add(c *tcpConn) {
	t.all[c] = struct{}{}
	t.bySrc[c.src]++
	c.idle = t.idle.PushBack(c)
}

func (t *connTable) remove(c *tcpConn) {
	if c.removed {
		return
	}
	c.removed = true
	delete(t.all, c)
	if t.bySrc[c.src]--; t.bySrc[c.src] == 0 {
		delete(t.bySrc, c.src)
	}
	if c.idle != nil {
		t.idle.Remove(c.idle)
		c.idle = nil
	}
}

// oldestIdle returns the longest idle connection of src, or nil.
func (t *connTable) oldestIdle(src netip.Addr) *tcpConn {
	for e := t.idle.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*tcpConn); c.src == src {
			return c
		}
	}
	return nil
}

// evictable returns the longest idle connection of the source holding the most
// connections, or nil when none is idle. A client with one connection thus keeps it while
// another holds several idle ones.
func (t *connTable) evictable() *tcpConn {
	var best *tcpConn
	for e := t.idle.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*tcpConn); best == nil || t.bySrc[c.src] > t.bySrc[best.src] {
			best = c
		}
	}
	return best
}

func (s *Server) serveTCP(l net.Listener) {
	defer s.loops.Done()
	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like: back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.acceptFails.Warn("accepting TCP connections failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c, closing := s.admit(conn)
		if c == nil {
			conn.Close()
			if closing {
				return
			}
			continue
		}
		s.loops.Add(1)
		go s.serveConn(c)
	}
}

// admit registers a new connection, closing an idle one to make room if need be. It returns
// nil when shutting down or when no room can be made.
func (s *Server) admit(conn net.Conn) (c *tcpConn, closing bool) {
	c = &tcpConn{Conn: conn, src: remoteAddr(conn)}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, true
	}
	evict, reason, ok := s.makeRoom(c.src)
	if evict != nil {
		s.closed(reason) // counted with the table change, so that both are seen together
		s.conns.remove(evict)
	}
	if ok {
		s.conns.add(c)
	}
	s.mu.Unlock()
	if evict != nil {
		evict.Close() // its reader sees the error and leaves
	}
	if !ok {
		return nil, false
	}
	return c, false
}

// makeRoom returns the connection to close so that one more from src fits (nil when it fits
// already) and the reason to count; ok is false, and the refusal counted, when none can go:
// as tcp-connection-limit when every connection is answering, else as tcp-client-limit.
func (s *Server) makeRoom(src netip.Addr) (evict *tcpConn, reason string, ok bool) {
	t := &s.conns
	full := len(t.all) >= s.opts.MaxTCPConns
	switch {
	case t.bySrc[src] >= s.opts.MaxTCPConnsPerClient:
		evict, reason = t.oldestIdle(src), "client-limit"
	case full:
		evict, reason = t.evictable(), "evicted"
	default:
		return nil, "", true
	}
	if evict != nil {
		return evict, reason, true
	}
	if full && t.idle.Len() == 0 {
		s.drop("tcp-connection-limit")
	} else {
		s.drop("tcp-client-limit")
	}
	return nil, "", false
}

// remoteAddr is the client's address (clientAddr), invalid if conn is not TCP.
func remoteAddr(conn net.Conn) netip.Addr {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return clientAddr(a.AddrPort().Addr())
	}
	return netip.Addr{}
}

// idleTimeout is how long a connection may wait for its next whole query: shorter once more
// than half the slots are taken, so that idle connections give way before any is refused.
func idleTimeout(base time.Duration, open, limit int) time.Duration {
	if 2*open > limit {
		return base / 5
	}
	return base
}

// armRead sets the deadline of the next query, unless the connection is gone or the server
// shutting down. It holds the lock Shutdown takes, so Shutdown's immediate deadline is never
// overwritten.
func (s *Server) armRead(c *tcpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || c.removed {
		return false
	}
	if c.pending > 0 {
		// Not idle while a query is being answered: the timer starts when the last answer
		// has gone out (RFC 7766 §6.2.3), in answered.
		c.SetReadDeadline(time.Time{})
	} else {
		s.armIdle(c)
	}
	return true
}

// armIdle starts c's idle timer; s.mu is held.
func (s *Server) armIdle(c *tcpConn) {
	c.SetReadDeadline(time.Now().Add(idleTimeout(s.opts.TCPIdleTimeout, len(s.conns.all), s.opts.MaxTCPConns)))
}

// busy marks a query read on c; false when c was closed for another meanwhile.
func (s *Server) busy(c *tcpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.removed {
		return false
	}
	c.pending++
	if c.idle != nil {
		s.conns.idle.Remove(c.idle)
		c.idle = nil
	}
	return true
}

// answered marks a query of c answered; with none left, c is idle from now.
func (s *Server) answered(c *tcpConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.pending--; c.pending == 0 && !c.removed {
		c.idle = s.conns.idle.PushBack(c)
		if !s.closing { // Shutdown's immediate deadline stands
			s.armIdle(c)
		}
	}
}

// finished removes c from the table, counting a close for a query that did not come in
// time (not one for shutdown or eviction, which are counted or expected elsewhere).
func (s *Server) finished(c *tcpConn, err error, partial bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case c.removed || s.closing || !errors.Is(err, os.ErrDeadlineExceeded):
	case partial:
		s.closed("slow")
	default:
		s.closed("idle")
	}
	s.conns.remove(c)
}

// serveConn reads length-prefixed queries until the client goes idle or closes; queries are
// answered concurrently (RFC 7766 pipelining) and replies written whole under a lock. A
// client outside AllowClients gets its first query refused, and the connection closed.
func (s *Server) serveConn(c *tcpConn) {
	defer s.loops.Done()
	var wmu sync.Mutex
	var pending sync.WaitGroup
	var err error
	var partial bool
	defer func() {
		pending.Wait()
		c.Close()
		s.finished(c, err, partial)
	}()
	allowed := s.allowed(c.src)
	for {
		if !s.armRead(c) {
			return
		}
		var pkt []byte
		if pkt, partial, err = readTCPMsg(c); err != nil {
			return
		}
		if !allowed {
			if out := s.refuse(pkt, c.src, true); out != nil {
				c.SetWriteDeadline(time.Now().Add(s.opts.TCPIdleTimeout))
				c.Write(withLength(out))
			}
			return
		}
		if !s.busy(c) {
			return
		}
		if !s.acquire(c.src) {
			return // closing tells the client at once, where a dropped query would time out
		}
		pending.Add(1)
		go func() {
			defer s.release(c.src)
			defer pending.Done()
			defer s.answered(c)
			out := s.handle(pkt, c.src, true)
			if out == nil {
				return
			}
			wmu.Lock()
			defer wmu.Unlock()
			c.SetWriteDeadline(time.Now().Add(s.opts.TCPIdleTimeout))
			c.Write(withLength(out))
		}()
	}
}

func withLength(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg))), msg...)
}

// readTCPMsg reads one length-prefixed message; partial reports whether part of one had
// arrived when reading failed.
func readTCPMsg(r io.Reader) (pkt []byte, partial bool, err error) {
	var l [2]byte
	if n, err := io.ReadFull(r, l[:]); err != nil {
		return nil, n > 0, err
	}
	pkt = make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, pkt); err != nil {
		return nil, true, err
	}
	return pkt, false, nil
}
