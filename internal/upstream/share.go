package upstream

import (
	"net/netip"

	"github.com/meshdns/meshdns/internal/fairshare"
)

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

// overloadOf names a refusal of the shares of outstanding exchanges (internal/fairshare
// holds the rule) as the reason label: Full is total, Share is source.
func overloadOf(r fairshare.Refusal) overloadReason {
	switch r {
	case fairshare.Full:
		return overloadTotal
	case fairshare.Share:
		return overloadSource
	}
	return overloadNone
}
