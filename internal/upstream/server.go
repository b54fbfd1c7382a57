package upstream

import (
	"net/netip"
	"slices"
)

// server is one configured upstream and the state kept for it across queries. It lives as
// long as its address stays configured: SetServers carries it over, health and idle
// connections included.
type server struct {
	addr   netip.AddrPort
	health health
	pool   tcpPool
	m      *serverMetrics // nil without Metrics
}

func (f *Forwarder) newServer(addr netip.AddrPort) *server {
	s := &server{addr: addr, m: f.opts.Metrics.forServer(addr.String())}
	s.pool.closed = f.closed
	s.pool.idleTimeout = f.idleTimeout
	s.m.setHealthy(true)
	return s
}

// current returns the published server list; callers must not modify it.
func (f *Forwarder) current() []*server { return *f.servers.Load() }

// Servers returns a copy of the upstream servers in their configured order.
func (f *Forwarder) Servers() []netip.AddrPort {
	list := f.current()
	out := make([]netip.AddrPort, len(list))
	for i, s := range list {
		out[i] = s.addr
	}
	return out
}

// SetServers replaces the server list, for instance after resolv.conf changed. Servers that
// remain keep their health and idle connections; removed ones have their idle connections
// closed and their metric series dropped, so labels stay bounded by the configuration.
// Queries already in flight finish with the list they started with.
func (f *Forwarder) SetServers(servers []netip.AddrPort) {
	f.setMu.Lock()
	defer f.setMu.Unlock()
	old := map[netip.AddrPort]*server{}
	if p := f.servers.Load(); p != nil {
		for _, s := range *p {
			old[s.addr] = s
		}
	}
	next := make([]*server, 0, len(servers))
	for _, addr := range servers {
		if slices.ContainsFunc(next, func(s *server) bool { return s.addr == addr }) {
			continue // asking the same server twice only costs time
		}
		s, ok := old[addr]
		if !ok {
			s = f.newServer(addr)
		}
		delete(old, addr)
		next = append(next, s)
	}
	f.servers.Store(&next)
	for _, s := range old {
		s.pool.close()
		f.opts.Metrics.forget(s.addr.String())
	}
}

// Close closes the idle TCP connections and stops keeping new ones. The Forwarder still
// works afterwards, with a fresh connection per TCP exchange.
func (f *Forwarder) Close() {
	f.setMu.Lock()
	defer f.setMu.Unlock()
	f.closed = true
	for _, s := range f.current() {
		s.pool.close()
	}
}
