package table

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/miekg/dns"
)

// MatchKind says how a query name found its node.
type MatchKind uint8

const (
	// Exact: the query name is the node's name.
	Exact MatchKind = iota
	// Alias: a short name (svc, svc.ns, svc.ns.svc) of a cluster service or of an endpoint
	// (ep.svc, ep.svc.ns, ep.svc.ns.svc); answered with a CNAME to the node's FQDN.
	Alias
	// Wildcard: a ServiceEntry host *.domain matched; records take the query name as owner.
	Wildcard
	// Synthesized: a pod name a-b-c-d.ns.pod.<zone>, computed from the name itself.
	Synthesized
)

// Match is the result of a lookup.
type Match struct {
	Node *Node
	Kind MatchKind
}

// Table is an immutable name table. Build creates it; nothing changes it afterwards.
type Table struct {
	zone    string // lowercase FQDN, e.g. "cluster.local."
	podZone string // "pod." + zone
	// noPodRecords: no pod names are synthesized.
	noPodRecords bool
	ttl          uint32
	generation   uint64
	built        time.Time
	partial      bool

	// names maps a name to its first variant; the others follow through Node.next, in
	// table order. (A pointer, not a slice, per name: the map is a large part of the table.)
	names     map[string]*Node
	wildcards map[string]*Node // "example.com." for host "*.example.com", as names
	// reverse holds the PTR records of every address the table names, sorted by address,
	// each address's oldest first; its names' nodes are made per lookup (reverseNode). A
	// third of a cluster's names are reverse names: a node each would cost three times an
	// entry here, and a map's slots and growth twice. nReverse counts the addresses.
	reverse  []ptrEntry
	nReverse int
	// nPorts counts the names of ClusterIP services' named ports, made per lookup (portNode).
	nPorts     int
	namespaces map[string]bool
	// vipTargets maps the VIPs of ServiceEntry hosts to where the VIP forwarder connects;
	// nil when no host has a VIP.
	vipTargets map[netip.Addr]*VIPTarget
	soa        *dns.SOA
}

// Zone returns the cluster zone, a lowercase FQDN.
func (t *Table) Zone() string { return t.zone }

// TTL returns the TTL of local answers in seconds.
func (t *Table) TTL() uint32 { return t.ttl }

// Generation returns the build generation given in Options.
func (t *Table) Generation() uint64 { return t.generation }

// Partial reports whether the table lacks the content of a source that is not ready yet.
func (t *Table) Partial() bool { return t.partial }

// Len returns the number of names in the table (wildcards included, aliases not).
func (t *Table) Len() int { return len(t.names) + len(t.wildcards) + t.nReverse + t.nPorts }

// InZone reports whether the lowercase FQDN name is the cluster zone or below it.
func (t *Table) InZone(name string) bool { return dnsname.InDomain(name, t.zone) }

// Lookup finds the node answering the lowercase FQDN qname for a client in namespace ns
// (empty when unknown). Exact names win over aliases, aliases over wildcards.
func (t *Table) Lookup(qname, ns string) (Match, bool) {
	first := t.names[qname]
	if p := t.portNode(qname, first); p != nil {
		first = p
	}
	if n := pick(first, ns); n != nil {
		return Match{Node: n, Kind: Exact}, true
	}
	if n := t.alias(qname, ns); n != nil {
		return Match{Node: n, Kind: Alias}, true
	}
	if n := t.podNode(qname); n != nil {
		return Match{Node: n, Kind: Synthesized}, true
	}
	if n := t.reverseNode(qname); n != nil {
		return Match{Node: n, Kind: Exact}, true
	}
	return t.lookupWildcard(qname, ns)
}

// serviceKey is a cluster service's lowercase name and namespace.
type serviceKey struct{ name, ns string }

// aliasKey returns the service a short name may stand for: "svc.ns.", "svc.ns.svc.", or, for
// a client in namespace ns, "svc.".
func aliasKey(qname, ns string) (serviceKey, bool) {
	name, rest, _ := strings.Cut(qname, ".")
	if rest == "" {
		return serviceKey{name, ns}, ns != ""
	}
	svcNS, rest, _ := strings.Cut(rest, ".")
	return serviceKey{name, svcNS}, rest == "" || rest == "svc."
}

// alias returns the node a short name stands for: a service's, else an endpoint's. A name of
// both shapes ("a.b." for a client in namespace ns: service a of namespace b, or endpoint a of
// service b in ns) is the service's, as ztunnel tries the service form first.
//
// Short names are not indexed: the FQDN they stand for is made in a stack buffer and looked
// up (a map index by string(bytes) does not allocate).
func (t *Table) alias(qname, ns string) *Node {
	var buf [256]byte
	if k, ok := aliasKey(qname, ns); ok {
		if first := t.names[string(k.fqdn(buf[:0], "", t.zone))]; isService(first) {
			if n := pick(first, ns); n != nil {
				return n
			}
		}
	}
	ep, k, ok := endpointAliasKey(qname, ns)
	if !ok || !isService(t.names[string(k.fqdn(buf[:0], "", t.zone))]) {
		return nil
	}
	for n := t.names[string(k.fqdn(buf[:0], ep, t.zone))]; n != nil; n = n.next {
		if n.Endpoint {
			return n
		}
	}
	return nil
}

// fqdn appends to buf the FQDN of the service, or of its endpoint ep when ep is not empty.
func (k serviceKey) fqdn(buf []byte, ep, zone string) []byte {
	if ep != "" {
		buf = append(append(buf, ep...), '.')
	}
	return append(append(append(append(append(buf, k.name...), '.'), k.ns...), ".svc."...), zone...)
}

// isService reports whether a variant of a name is a cluster service's.
func isService(first *Node) bool {
	for n := first; n != nil; n = n.next {
		if n.service {
			return true
		}
	}
	return false
}

// endpointAliasKey splits a short name of an endpoint into the endpoint's label and its
// service: "ep.svc.ns.", "ep.svc.ns.svc.", or, for a client in namespace ns, "ep.svc.".
func endpointAliasKey(qname, ns string) (string, serviceKey, bool) {
	ep, rest, _ := strings.Cut(qname, ".")
	name, rest, _ := strings.Cut(rest, ".")
	if ep == "" || name == "" {
		return "", serviceKey{}, false
	}
	if rest == "" {
		return ep, serviceKey{name, ns}, ns != ""
	}
	svcNS, rest, _ := strings.Cut(rest, ".")
	return ep, serviceKey{name, svcNS}, rest == "" || rest == "svc."
}

func (t *Table) lookupWildcard(qname, ns string) (Match, bool) {
	if len(t.wildcards) == 0 {
		return Match{}, false
	}
	for i := strings.IndexByte(qname, '.'); i >= 0 && i < len(qname)-1; i = strings.IndexByte(qname, '.') {
		qname = qname[i+1:]
		if n := pick(t.wildcards[qname], ns); n != nil {
			return Match{Node: n, Kind: Wildcard}, true
		}
	}
	return Match{}, false
}

// pick returns the variant visible to ns, preferring one from ns itself, else the first
// visible: variants are stored oldest first (byAge), so that is Istio's choice too.
// Hidden returns a node named qname that a client in namespace ns may not see (its exportTo
// leaves ns out), nil when there is none: what explain names when such a client gets no answer.
func (t *Table) Hidden(qname, ns string) *Node {
	for n := t.names[qname]; n != nil; n = n.next {
		if !n.Visible(ns) {
			return n
		}
	}
	return nil
}

func pick(first *Node, ns string) *Node {
	var found *Node
	for n := first; n != nil; n = n.next {
		if !n.Visible(ns) {
			continue
		}
		if n.Namespace() == ns {
			return n
		}
		if found == nil {
			found = n
		}
	}
	return found
}

// podNode synthesizes the record of a-b-c-d.ns.pod.<zone> (CoreDNS "pods insecure"): the
// address is read from the name and answered when the namespace exists.
func (t *Table) podNode(qname string) *Node {
	if t.noPodRecords || len(qname) == len(t.podZone) || !dnsname.InDomain(qname, t.podZone) {
		return nil
	}
	labels := strings.Split(strings.TrimSuffix(qname, "."+t.podZone), ".")
	if len(labels) != 2 || !t.namespaces[labels[1]] {
		return nil
	}
	ip, ok := parseDashedIP(labels[0])
	if !ok {
		return nil
	}
	// One allocation for the node and its origin.
	c := &struct {
		n   Node
		src origin
	}{src: origin{desc: "pod name " + labels[0] + " in namespace " + labels[1]}}
	c.n = Node{Name: qname, src: &c.src}
	addAddr(nil, &c.n, ip, t.ttl)
	return &c.n
}

func parseDashedIP(s string) (netip.Addr, bool) {
	v4 := strings.ReplaceAll(s, "-", ".")
	if ip, err := netip.ParseAddr(v4); err == nil && ip.Is4() {
		return ip, true
	}
	ip, err := netip.ParseAddr(strings.ReplaceAll(s, "-", ":"))
	if err != nil || !ip.Is6() || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip, true
}

// SOA returns the SOA record for negative answers about name: the cluster zone's SOA for names
// in the zone, otherwise one synthesized with apex as owner (a ServiceEntry host is its own
// authority).
func (t *Table) SOA(apex string) dns.RR {
	if t.InZone(apex) {
		return t.soa
	}
	return newSOA(apex, t.ttl, t.soa.Serial)
}

func newSOA(apex string, ttl, serial uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: apex, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "ns.dns." + strings.TrimPrefix(apex, "."),
		Mbox:    "hostmaster." + strings.TrimPrefix(apex, "."),
		Serial:  serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  ttl,
	}
}

// ptrEntry is one PTR record of an address: the name it points at, and the object that named
// the address; the first entry's is the reverse name's origin.
type ptrEntry struct {
	ip     netip.Addr
	target string
	src    *origin
}

// ptrsOf returns the entries of ip in t.reverse.
func (t *Table) ptrsOf(ip netip.Addr) []ptrEntry {
	i, _ := slices.BinarySearchFunc(t.reverse, ip, func(e ptrEntry, ip netip.Addr) int { return e.ip.Compare(ip) })
	j := i
	for j < len(t.reverse) && t.reverse[j].ip == ip {
		j++
	}
	return t.reverse[i:j]
}

// reverseNode makes the node of the reverse name qname (in-addr.arpa. or ip6.arpa., lowercase
// FQDN) of an address the table names, with its PTR records; nil for any other name.
func (t *Table) reverseNode(qname string) *Node {
	if len(t.reverse) == 0 {
		return nil
	}
	ip, ok := parseReverse(qname)
	if !ok {
		return nil
	}
	ptrs := t.ptrsOf(ip)
	if len(ptrs) == 0 {
		return nil
	}
	return t.ptrNode(reverseName(ip), ptrs)
}

// ptrNode is the node of the reverse name rev with the PTR records of ptrs.
func (t *Table) ptrNode(rev string, ptrs []ptrEntry) *Node {
	n := &Node{Name: rev, src: ptrs[0].src}
	rrs := make([]dns.RR, len(ptrs))
	for i, p := range ptrs {
		rrs[i] = &dns.PTR{Hdr: hdr(rev, dns.TypePTR, t.ttl), Ptr: p.target}
	}
	n.add(nil, kindPTR, rrs...)
	return n
}

// parseReverse returns the address of a reverse name: d.c.b.a.in-addr.arpa. with decimal
// octets, or 32 nibbles.ip6.arpa. Names of partial addresses (networks) are not addresses.
func parseReverse(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa."); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var a [4]byte
		for i, l := range labels {
			v, err := strconv.ParseUint(l, 10, 8)
			if err != nil || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			a[3-i] = byte(v)
		}
		return netip.AddrFrom4(a), true
	}
	rest, ok := strings.CutSuffix(name, ".ip6.arpa.")
	if !ok || len(rest) != 63 {
		return netip.Addr{}, false
	}
	var a [16]byte
	for i := range 32 {
		c := rest[2*i]
		if i < 31 && rest[2*i+1] != '.' {
			return netip.Addr{}, false
		}
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return netip.Addr{}, false
		}
		// The first label is the lowest nibble of the last byte.
		j := 15 - i/2
		if i%2 == 0 {
			a[j] |= v
		} else {
			a[j] |= v << 4
		}
	}
	return netip.AddrFrom16(a), true
}
