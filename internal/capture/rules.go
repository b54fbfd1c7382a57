package capture

import (
	"errors"
	"net/netip"
	"slices"
)

// dnsPort is where resolv.conf nameservers listen: the file has no syntax for another port.
const dnsPort = 53

// Conntrack zones that keep the applications' DNS flows apart from the proxy's (zones.go says
// why). The numbers only have to differ from each other and from zones other software uses in
// the same network namespace (0 is the default zone; Open vSwitch and OpenStack hand out small
// numbers).
const (
	// ZoneUpstream holds the proxy's flows to the nameservers.
	ZoneUpstream uint16 = 5301
	// ZoneApp holds the applications' flows to the nameservers, which NAT sends to the proxy.
	ZoneApp uint16 = 5302
)

// Spec says what to capture and where to send it.
type Spec struct {
	// ProxyPort is the local port meshdns listens on (--proxy-port, 15053).
	ProxyPort uint16
	// ProxyUID and ProxyGID identify meshdns's own packets, which are never captured
	// (--proxy-uid, --proxy-gid, 1337): a packet of either is exempt.
	ProxyUID uint32
	ProxyGID uint32
	// Nameservers are the resolv.conf nameservers whose port-53 traffic is captured. IPv6
	// zones are dropped: netfilter matches the address on any interface.
	Nameservers []netip.Addr
	// All captures port-53 traffic to any address, of both families; Nameservers is ignored.
	All bool
	// VIPPools, when set, are the VIP pools (--vip-cidr, --vip-cidr6) whose TCP connections
	// are redirected to VIPPort, where meshdns serve --forward-vips listens (docs/capture.md,
	// VIPs), with the same exemption of the proxy's uid and gid.
	VIPPools []netip.Prefix
	VIPPort  uint16

	// Node builds the rules of a node agent instead (docs/capture.md, Node): the pods' port-53
	// traffic to ClusterDNS and LocalIPs, which Install puts on lo, reaches a socket of this
	// host bound to them while one exists, and the cluster DNS otherwise. Only ClusterDNS and
	// LocalIPs count then.
	Node bool
	// ClusterDNS are the cluster DNS Service IPs (--cluster-dns), one per family at most in
	// practice; the pods' resolv.conf names them.
	ClusterDNS []netip.Addr
	// LocalIPs are more addresses the node agent listens on (--local-ip), for clients sent to
	// it directly, as NodeLocal DNSCache's 169.254.20.10.
	LocalIPs []netip.Addr
}

// Rules is the rule set as data, independent of any backend: an ordered list of rules per
// family and chain. Build makes it; Render and Install consume it.
type Rules struct {
	rules []rule
	// addrs are the addresses a node agent listens on, which Install adds to lo.
	addrs []netip.Addr
}

// family is an IP version; the iptables backends keep a separate rule set for each.
type family uint8

const (
	ipv4 family = iota
	ipv6
)

var families = []family{ipv4, ipv6}

func (f family) String() string {
	if f == ipv6 {
		return "IPv6"
	}
	return "IPv4"
}

// chain is where a rule lives: a netfilter table and hook.
type chain uint8

const (
	natOutput chain = iota
	rawOutput
	rawPrerouting
)

var chains = []chain{natOutput, rawOutput, rawPrerouting}

// owner says which socket owners a rule matches.
type owner uint8

const (
	anyOwner owner = iota
	proxyUID       // the socket's uid is ProxyUID
	proxyGID       // the socket's gid is ProxyGID
	notProxy       // neither: an application's packet
)

// verdict is what a rule does with a packet it matches.
type verdict uint8

const (
	doReturn   verdict = iota // leave the chain: nothing of ours applies
	doRedirect                // NAT to the local proxy port
	doZone                    // put the new conntrack entry in a zone
	doNotrack                 // keep the packet out of conntrack, and so out of every NAT
)

// rule is one netfilter rule. Zero fields match anything.
type rule struct {
	family   family
	chain    chain
	proto    string // "udp", "tcp"
	src, dst netip.Addr
	dstNet   netip.Prefix // a destination network (a VIP pool), instead of dst
	sport    uint16
	dport    uint16
	owner    owner
	uid, gid uint32 // of the proxy, used by owner
	dstLocal bool   // the destination is an address of this host
	// socket: a socket of this host bound to the destination address itself (not a wildcard)
	// would take the packet (node.go).
	socket  bool
	verdict verdict
	arg     uint16 // port for doRedirect, zone for doZone
}

// Build validates s and builds the rules for it. It does no I/O.
func Build(s Spec) (Rules, error) {
	if s.Node {
		return buildNode(s)
	}
	if s.ProxyPort == 0 {
		return Rules{}, errors.New("proxy port 0: want the port meshdns listens on (--proxy-port)")
	}
	perFamily, err := destinations(s)
	if err != nil {
		return Rules{}, err
	}
	pools, err := vipPools(s)
	if err != nil {
		return Rules{}, err
	}
	var r Rules
	for _, f := range families {
		dsts := perFamily[f]
		if len(dsts) > 0 || len(pools[f]) > 0 {
			r.rules = append(r.rules, natRules(s, f, dsts, pools[f])...)
		}
		if len(dsts) > 0 {
			r.rules = append(r.rules, zoneRules(s, f, dsts)...)
		}
	}
	return r, nil
}

// vipPools returns the VIP pools per family, masked, in order and without duplicates.
func vipPools(s Spec) (map[family][]netip.Prefix, error) {
	if len(s.VIPPools) > 0 && s.VIPPort == 0 {
		return nil, errors.New("VIP forward port 0: want the port of meshdns serve --forward-vips (--vip-forward-port)")
	}
	out := map[family][]netip.Prefix{}
	for _, p := range s.VIPPools {
		if !p.IsValid() {
			return nil, errors.New("VIP pool: invalid (zero) prefix")
		}
		p = p.Masked()
		f := ipv4
		if p.Addr().Is6() {
			f = ipv6
		}
		if !slices.Contains(out[f], p) {
			out[f] = append(out[f], p)
		}
	}
	return out, nil
}

// destinations returns the captured addresses per family, in order and without duplicates;
// with All each family has the single zero address, which matches any destination.
func destinations(s Spec) (map[family][]netip.Addr, error) {
	if s.All {
		return map[family][]netip.Addr{ipv4: {{}}, ipv6: {{}}}, nil
	}
	if len(s.Nameservers) == 0 {
		return nil, errors.New("no nameservers in resolv.conf: pass --all to capture all DNS traffic")
	}
	out := map[family][]netip.Addr{}
	for _, a := range s.Nameservers {
		if !a.IsValid() {
			return nil, errors.New("nameserver: invalid (zero) address")
		}
		a = a.Unmap().WithZone("")
		f := ipv4
		if a.Is6() {
			f = ipv6
		}
		if !slices.Contains(out[f], a) {
			out[f] = append(out[f], a)
		}
	}
	return out, nil
}

// natRules redirects port-53 UDP and TCP to dsts to the proxy, and TCP to the VIP pools to the
// VIP forwarder, except the proxy's own packets, which would otherwise come straight back to
// it; the exemptions come first so that they are decided before any redirect.
func natRules(s Spec, f family, dsts []netip.Addr, pools []netip.Prefix) []rule {
	base := rule{family: f, chain: natOutput, uid: s.ProxyUID, gid: s.ProxyGID}
	out := []rule{
		with(base, func(r *rule) { r.owner, r.verdict = proxyUID, doReturn }),
		with(base, func(r *rule) { r.owner, r.verdict = proxyGID, doReturn }),
	}
	for _, dst := range dsts {
		for _, proto := range []string{"udp", "tcp"} {
			out = append(out, with(base, func(r *rule) {
				r.proto, r.dst, r.dport = proto, dst, dnsPort
				r.verdict, r.arg = doRedirect, s.ProxyPort
			}))
		}
	}
	for _, pool := range pools {
		out = append(out, with(base, func(r *rule) {
			r.proto, r.dstNet, r.verdict, r.arg = "tcp", pool, doRedirect, s.VIPPort
		}))
	}
	return out
}

// with returns a copy of r changed by set.
func with(r rule, set func(*rule)) rule {
	set(&r)
	return r
}
