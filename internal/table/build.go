package table

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
)

// Options are the settings a table is built with.
type Options struct {
	// Zone is the cluster domain, e.g. "cluster.local" (case and trailing dot do not matter).
	Zone string
	// TTL of every local answer.
	TTL time.Duration
	// Generation numbers successive builds; it is also the SOA serial.
	Generation uint64
	// VIPs are the addresses allocated to ServiceEntry hosts without spec.addresses.
	VIPs vip.Assignments
}

// Build computes the table for a snapshot. It fails only on invalid options; inconsistent
// objects (an EndpointSlice without its Service, a selector matching nothing) just add fewer
// names.
func Build(s model.Snapshot, o Options) (*Table, error) {
	zone := strings.ToLower(dns.Fqdn(o.Zone))
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("cluster domain %q: not a domain name", o.Zone)
	}
	if o.TTL < time.Second {
		return nil, errors.New("ttl: must be at least 1s")
	}
	t := &Table{
		zone: zone, podZone: "pod." + zone,
		ttl: uint32(o.TTL / time.Second), generation: o.Generation, built: time.Now(),
		names: map[string][]*Node{}, aliases: map[string]string{},
		short: map[string]map[string]string{}, wildcards: map[string][]*Node{},
		namespaces: map[string]bool{},
	}
	t.soa = newSOA(zone, t.ttl, uint32(o.Generation))
	b := newBuilder(t, s)
	b.vips = o.VIPs
	for i := range s.Services {
		b.addService(&s.Services[i])
	}
	for i := range s.ServiceEntries {
		b.addServiceEntry(&s.ServiceEntries[i])
	}
	b.addStructure()
	b.addSRVExtras()
	return t, nil
}

type builder struct {
	t      *Table
	snap   model.Snapshot
	pods   map[string]*model.Pod
	slices map[string][]*model.EndpointSlice // "ns/service"
	seHost map[string]*Node                  // "ns/host" -> merged ServiceEntry node
	ptr    map[string]*Node
	vips   vip.Assignments
}

func newBuilder(t *Table, s model.Snapshot) *builder {
	b := &builder{t: t, snap: s, pods: map[string]*model.Pod{},
		slices: map[string][]*model.EndpointSlice{}, seHost: map[string]*Node{}, ptr: map[string]*Node{}}
	for i := range s.Pods {
		p := &s.Pods[i]
		b.pods[p.Key()] = p
		t.namespaces[p.Namespace] = true
	}
	for i := range s.EndpointSlices {
		es := &s.EndpointSlices[i]
		k := es.Namespace + "/" + es.ServiceName
		b.slices[k] = append(b.slices[k], es)
	}
	for _, ns := range s.Namespaces {
		t.namespaces[ns.Name] = true
	}
	for _, svc := range s.Services {
		t.namespaces[svc.Namespace] = true
	}
	for _, se := range s.ServiceEntries {
		t.namespaces[se.Namespace] = true
	}
	return b
}

// newNode adds a new variant under name.
func (b *builder) newNode(name, origin, ns string) *Node {
	n := &Node{Name: name, Origin: origin, Namespace: ns}
	b.t.names[name] = append(b.t.names[name], n)
	return n
}

func hdr(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

func addAddr(n *Node, ip netip.Addr, ttl uint32) {
	if ip.Is4() {
		n.A = append(n.A, &dns.A{Hdr: hdr(n.Name, dns.TypeA, ttl), A: ip.AsSlice()})
	} else {
		n.AAAA = append(n.AAAA, &dns.AAAA{Hdr: hdr(n.Name, dns.TypeAAAA, ttl), AAAA: ip.AsSlice()})
	}
}

func addAddrs(n *Node, ips []netip.Addr, ttl uint32) {
	for _, ip := range ips {
		if !hasAddr(n, ip) {
			addAddr(n, ip, ttl)
		}
	}
}

func hasAddr(n *Node, ip netip.Addr) bool {
	rrs := n.A
	if ip.Is6() {
		rrs = n.AAAA
	}
	for _, rr := range rrs {
		if rrIP(rr) == ip {
			return true
		}
	}
	return false
}

func rrIP(rr dns.RR) netip.Addr {
	switch v := rr.(type) {
	case *dns.A:
		ip, _ := netip.AddrFromSlice(v.A)
		return ip.Unmap()
	case *dns.AAAA:
		ip, _ := netip.AddrFromSlice(v.AAAA)
		return ip
	}
	return netip.Addr{}
}

// addPTR makes the reverse name of ip point at target (once per target).
func (b *builder) addPTR(ip netip.Addr, target, origin string) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return
	}
	n := b.ptr[rev]
	if n == nil {
		n = b.newNode(rev, origin, "")
		b.ptr[rev] = n
	}
	for _, rr := range n.PTR {
		if rr.(*dns.PTR).Ptr == target {
			return
		}
	}
	n.PTR = append(n.PTR, &dns.PTR{Hdr: hdr(rev, dns.TypePTR, b.t.ttl), Ptr: target})
}

func srvRR(name string, ttl uint32, port uint16, weight uint16, target string) dns.RR {
	return &dns.SRV{Hdr: hdr(name, dns.TypeSRV, ttl), Priority: 0, Weight: weight, Port: port, Target: target}
}

// srvName returns _port._proto.owner for a named port, or "" when the port has no name.
func srvName(p model.Port, owner string) string {
	if p.Name == "" {
		return ""
	}
	proto := strings.ToLower(p.Protocol)
	if proto != "udp" && proto != "sctp" {
		proto = "tcp"
	}
	return "_" + strings.ToLower(p.Name) + "._" + proto + "." + owner
}

// addStructure adds the zone apex with its SOA and every empty non-terminal in the zone, so
// that e.g. "prod.svc.cluster.local." is NODATA rather than NXDOMAIN.
func (b *builder) addStructure() {
	t := b.t
	apex := b.ensure(t.zone)
	apex.SOA = []dns.RR{t.soa}
	for ns := range t.namespaces {
		b.ensureParents(ns + ".svc." + t.zone)
		b.ensureParents(ns + "." + t.podZone)
	}
	for name := range t.names {
		if t.InZone(name) {
			b.ensureParents(name)
		}
	}
}

func (b *builder) ensure(name string) *Node {
	if nodes := b.t.names[name]; len(nodes) > 0 {
		return nodes[0]
	}
	return b.newNode(name, "", "")
}

// ensureParents adds name and its ancestors down to the zone apex, when missing.
func (b *builder) ensureParents(name string) {
	for name != b.t.zone && len(name) > len(b.t.zone) {
		if len(b.t.names[name]) == 0 {
			b.newNode(name, "", "")
		}
		name = name[strings.IndexByte(name, '.')+1:]
	}
}

// addSRVExtras fills the Additional section of SRV answers with the targets' addresses, after
// every name is known (ServiceEntry hosts may be merged from several objects).
func (b *builder) addSRVExtras() {
	for _, nodes := range b.t.names {
		for _, n := range nodes {
			seen := map[string]bool{}
			for _, rr := range n.SRV {
				target := rr.(*dns.SRV).Target
				if seen[target] {
					continue
				}
				seen[target] = true
				if tn := pick(b.t.names[target], n.Namespace); tn != nil {
					n.Extra = append(append(n.Extra, tn.A...), tn.AAAA...)
				}
			}
		}
	}
}
