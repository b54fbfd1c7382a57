package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// DefaultLocalIPs are the addresses of --local-ip: NodeLocal DNSCache's link-local 169.254.20.10,
// so that clients already pointed there keep working, and for IPv6, which has no link-local
// address usable without an interface name, a unique local one (fd00::/8, as Kubernetes
// recommends for NodeLocal DNSCache) that spells the same numbers.
var DefaultLocalIPs = []netip.Addr{netip.MustParseAddr("169.254.20.10"), netip.MustParseAddr("fd00:169:254:20::10")}

// addrLink is the interface that holds the node agent's addresses. The loopback interface
// exists on every host, and an address on it is local like any other, so no link of our own
// (a dummy, which some kernels lack) has to be created and managed.
const addrLink = "lo"

// buildNode builds the rules of a node agent. The agent binds the cluster DNS Service IPs
// themselves, which Install adds to lo, and the rules keep the pods' queries to them out of
// conntrack while that socket exists: untracked, the query skips kube-proxy's NAT, is
// delivered locally as the address is local, and reaches the agent, which answers from the
// address queried. When no such socket exists (the agent crashed, was killed or has not
// started yet) the rules do nothing, and kube-proxy sends the query to the cluster DNS, as
// without meshdns. The decision is made per packet, not per conntrack flow, so a pod whose
// source port an earlier query used switches too, and there is nothing to clean up after a
// kill -9.
//
// The test is the kernel's socket lookup (nft socket, iptables -m socket) on the packet's own
// address and port. A socket bound to the wildcard address on port 53 would be found too, for
// any destination; it must not count (another DNS server of the host would take the pods'
// queries whenever meshdns is away), so only sockets bound to the address itself do. The rules
// sit in the raw table, before conntrack: that is where notrack must be decided.
//
// The agent's replies leave from the same addresses and port 53; they are kept out of
// conntrack too, so that neither direction leaves an entry behind. Queries of the host itself
// are not captured: in OUTPUT the socket lookup would find the sending socket, so no rule
// there could tell whether the agent listens.
func buildNode(s Spec) (Rules, error) {
	addrs, err := nodeAddrs(s)
	if err != nil {
		return Rules{}, err
	}
	var r Rules
	r.addrs = addrs
	for _, f := range families {
		for _, c := range []chain{rawPrerouting, rawOutput} {
			for _, a := range addrs {
				if familyOf(a) == f {
					r.rules = append(r.rules, nodeRules(c, f, a)...)
				}
			}
		}
	}
	return r, nil
}

// nodeRules are the rules of chain c for the agent's address a: queries to it in PREROUTING,
// replies from it in OUTPUT, UDP and TCP.
func nodeRules(c chain, f family, a netip.Addr) []rule {
	var out []rule
	for _, proto := range []string{"udp", "tcp"} {
		r := rule{family: f, chain: c, proto: proto, verdict: doNotrack}
		if c == rawPrerouting {
			r.dst, r.dport, r.socket = a, dnsPort, true
		} else {
			r.src, r.sport = a, dnsPort
		}
		out = append(out, r)
	}
	return out
}

// nodeAddrs returns the cluster DNS addresses, then the local ones, without duplicates.
func nodeAddrs(s Spec) ([]netip.Addr, error) {
	if len(s.ClusterDNS) == 0 {
		return nil, errors.New("node capture without a cluster DNS address: want --cluster-dns, the pods' nameserver")
	}
	var out []netip.Addr
	for _, list := range []struct {
		what  string
		addrs []netip.Addr
	}{{"cluster DNS", s.ClusterDNS}, {"local IP", s.LocalIPs}} {
		for _, a := range list.addrs {
			if !a.IsValid() {
				return nil, fmt.Errorf("%s: invalid (zero) address", list.what)
			}
			a = a.Unmap()
			if err := checkNodeAddr(a); err != nil {
				return nil, fmt.Errorf("%s %s: %w", list.what, a, err)
			}
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// checkNodeAddr refuses what cannot be a unicast address of lo that pods send queries to.
func checkNodeAddr(a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return errors.New("a zone has no place in an address of lo")
	case a.IsLinkLocalUnicast() && a.Is6():
		return errors.New("an IPv6 link-local address needs an interface: pick a unique local one (fd00::/8)")
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast():
		return errors.New("not a unicast address pods can reach")
	}
	return nil
}

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return ipv4
	}
	return ipv6
}
