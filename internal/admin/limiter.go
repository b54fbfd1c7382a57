package admin

import (
	"net"
	"net/http"
	"sync"
)

// connLimiter caps the connections open on an admin listener. Held keep-alive or silent
// connections cost a file descriptor each; with no cap, a client holding a thousand of them
// leaves DNS none. When the cap is reached, a new connection evicts the connection idle the
// longest (between requests, or not yet sent one), so a probe still gets in; when every
// connection is busy, the new one is closed at once.
type connLimiter struct {
	net.Listener
	max int
	m   *Metrics

	mu    sync.Mutex
	seq   uint64 // orders the moments connections became idle
	conns map[net.Conn]*connUse
}

// connUse is what the limiter knows of a connection: idle since the seq-th event, or busy.
type connUse struct {
	idle bool
	seq  uint64
}

func newConnLimiter(ln net.Listener, max int, m *Metrics) *connLimiter {
	return &connLimiter{Listener: ln, max: max, m: m, conns: map[net.Conn]*connUse{}}
}

// Accept returns the next connection admitted under the cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.admit(c) {
			return c, nil
		}
		c.Close()
		l.m.refused.Inc()
	}
}

func (l *connLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		victim := l.oldestIdle()
		if victim == nil {
			return false
		}
		// The server's goroutine of the victim sees the close and reports StateClosed.
		victim.Close()
		delete(l.conns, victim)
		l.m.evicted.Inc()
	}
	l.seq++
	l.conns[c] = &connUse{idle: true, seq: l.seq}
	l.m.open.Set(float64(len(l.conns)))
	return true
}

func (l *connLimiter) oldestIdle() net.Conn {
	var oldest net.Conn
	var seq uint64
	for c, u := range l.conns {
		if u.idle && (oldest == nil || u.seq < seq) {
			oldest, seq = c, u.seq
		}
	}
	return oldest
}

// track is the http.Server's ConnState hook.
func (l *connLimiter) track(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.conns[c]
	if !ok {
		return // evicted
	}
	switch s {
	case http.StateActive:
		u.idle = false
	case http.StateIdle:
		l.seq++
		u.idle, u.seq = true, l.seq
	case http.StateHijacked, http.StateClosed:
		delete(l.conns, c)
		l.m.open.Set(float64(len(l.conns)))
	}
}
