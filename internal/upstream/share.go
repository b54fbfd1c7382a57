package upstream

import "net/netip"

// Source is who a question is forwarded for: the unit that gets a fair share of the
// outstanding upstream queries. It is comparable and opaque, so that a finer identity (the
// client pod, once known) can replace the address without changing the rule. The zero
// Source is one anonymous asker.
type Source struct {
	addr netip.Addr
}

// AddrSource is the Source of a client at addr; an IPv4-mapped IPv6 address is its IPv4
// address.
func AddrSource(addr netip.Addr) Source { return Source{addr: addr.Unmap()} }

func (s Source) String() string {
	if !s.addr.IsValid() {
		return "anonymous"
	}
	return s.addr.String()
}

// Via is how a question reached meshdns and for whom.
type Via struct {
	// TCP: the question came over TCP and is forwarded over TCP.
	TCP bool
	// Source's share of the outstanding upstream queries is what the exchange takes.
	Source Source
}

// overloadReason is why an exchange was refused, the reason label of
// meshdns_upstream_overload_total.
type overloadReason int

const (
	overloadNone   overloadReason = iota
	overloadTotal                 // all MaxOutstanding slots taken
	overloadSource                // the asker holds its share while others may need theirs
	numOverloadReasons
)

var overloadNames = [numOverloadReasons]string{"", "total", "source"}

func (r overloadReason) String() string { return overloadNames[r] }

// explain says, for an error, why src was refused.
func (r overloadReason) explain(src Source) string {
	if r == overloadSource {
		return "its share held by " + src.String()
	}
	return "every slot taken"
}

// shares counts the exchanges in flight, in all and by the Source that started each. A
// Source holding none is admitted while any slot is free. One holding some is admitted only
// below its share, max/(n+1) for n Sources with exchanges in flight: the one that holds the
// most is refused first, and a slice of the slots stays free for a Source yet to come. One
// client alone may hold half; a flood from one address leaves the other half to the rest.
type shares struct {
	max   int
	total int
	held  map[Source]int
}

// take admits one more exchange for src, or says why not.
func (s *shares) take(src Source) overloadReason {
	n := s.held[src]
	switch {
	case s.total >= s.max:
		return overloadTotal
	case n > 0 && n >= s.max/(len(s.held)+1):
		return overloadSource
	}
	if s.held == nil {
		s.held = map[Source]int{}
	}
	s.held[src] = n + 1
	s.total++
	return overloadNone
}

// give back an exchange src took.
func (s *shares) give(src Source) {
	s.total--
	if s.held[src]--; s.held[src] <= 0 {
		delete(s.held, src)
	}
}
