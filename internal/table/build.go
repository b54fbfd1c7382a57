package table

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshdns/meshdns/internal/dnsname"
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
	// NoPodRecords turns off the a-b-c-d.<ns>.pod.<zone> names (meshdns watches no pods).
	NoPodRecords bool
	// StatusFirst answers a ServiceEntry host's status.addresses rather than a VIP of
	// this process's that differs (see virtualAddrs).
	StatusFirst bool
	// Partial marks a table built while some source has not delivered its first content:
	// it answers the names it has, and the resolver keeps the rest of the zone not ready.
	Partial bool
}

// Build computes the table for a snapshot. It fails only on invalid options; inconsistent
// objects (an EndpointSlice without its Service, a selector matching nothing) just add fewer
// names.
func Build(s model.Snapshot, o Options) (*Table, error) {
	zone := dnsname.Canonical(o.Zone)
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("cluster domain %q: not a domain name", o.Zone)
	}
	if o.TTL < time.Second {
		return nil, errors.New("ttl: must be at least 1s")
	}
	// Sized for the names of services, endpoints and hosts, and no more: a map's directory
	// of tables doubles, so twice the names would double its size (a tenth of the table).
	names := len(s.Services) + len(s.ServiceEntries) + 2*len(s.Namespaces)
	for i := range s.EndpointSlices {
		names += len(s.EndpointSlices[i].Endpoints)
	}
	for i := range s.ServiceEntries {
		names += len(s.ServiceEntries[i].Hosts)
	}
	t := &Table{
		zone: zone, podZone: "pod." + zone, noPodRecords: o.NoPodRecords,
		ttl: uint32(o.TTL / time.Second), generation: o.Generation, built: time.Now(), partial: o.Partial,
		names:     make(map[string]*Node, names),
		wildcards: map[string]*Node{}, reverse: make([]ptrEntry, 0, 2*len(s.Services)),
		namespaces: map[string]bool{},
	}
	t.soa = newSOA(zone, t.ttl, uint32(o.Generation))
	b := newBuilder(t, s)
	b.vips, b.statusFirst = o.VIPs, o.StatusFirst
	for i := range s.Services {
		b.addService(&s.Services[i])
	}
	for _, se := range byAge(s.ServiceEntries) {
		b.addServiceEntry(se)
	}
	b.addStructure()
	b.finish()
	return t, nil
}

// byAge returns the ServiceEntries oldest first (model.CompareAge). Added in this order, the
// variants of a host shared by several namespaces, the targets of a shared reverse name and
// the merged records of one namespace come in precedence order, and pick's "first visible" is
// Istio's "oldest visible", however the sources listed the objects.
func byAge(entries []model.ServiceEntry) []*model.ServiceEntry {
	out := make([]*model.ServiceEntry, len(entries))
	for i := range entries {
		out[i] = &entries[i]
	}
	slices.SortStableFunc(out, func(x, y *model.ServiceEntry) int { return model.CompareAge(&x.Meta, &y.Meta) })
	return out
}

type builder struct {
	t *Table
	chunks
	// endpointOrigin is the origin of the endpoint names of the service being added.
	endpointOrigin *origin
	// lastSE and lastSEOrigin: the origin of the ServiceEntry being added (seOrigin).
	lastSE       *model.ServiceEntry
	lastSEOrigin *origin
	snap         model.Snapshot
	pods         map[string]*model.Pod
	slices       map[string][]*model.EndpointSlice // "ns/service"
	seHost       map[string]*Node                  // "ns/host" -> merged ServiceEntry node
	// srvOwners are the nodes with SRV records, for addSRVExtras.
	srvOwners []*Node
	// portOwners are the ClusterIP services whose port names are made per lookup.
	portOwners []*Node
	// statusFirst and leased (VIP -> holder, made on first use) serve virtualAddrs.
	statusFirst bool
	leased      map[netip.Addr]vip.Key
	vips        vip.Assignments
	// workloads groups pods and WorkloadEntries by namespace; see workloadsIn.
	workloads map[string]workloads
}

func newBuilder(t *Table, s model.Snapshot) *builder {
	b := &builder{t: t, snap: s, pods: make(map[string]*model.Pod, len(s.Pods)),
		slices: make(map[string][]*model.EndpointSlice, len(s.EndpointSlices)), seHost: map[string]*Node{}}
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

// newNode adds a new variant under name. An empty non-terminal already there (added for a
// name below) becomes the node instead.
func (b *builder) newNode(name string, src *origin) *Node {
	first := b.t.names[name]
	if first != nil && first.next == nil && first.structural() {
		first.src = src
		return first
	}
	n := b.node(name, src)
	b.t.names[name] = appendVariant(first, n)
	b.addParents(name)
	return n
}

// appendVariant appends n to the variants that start with first, and returns the first.
func appendVariant(first, n *Node) *Node {
	if first == nil {
		return n
	}
	last := first
	for last.next != nil {
		last = last.next
	}
	last.next = n
	return first
}

// addParents adds the empty non-terminals between a name of the zone and the apex, so that
// e.g. "prod.svc.cluster.local." is NODATA rather than NXDOMAIN. Every name of the zone has
// its ancestors, so the walk up ends at the first one that exists.
func (b *builder) addParents(name string) {
	t := b.t
	if !t.InZone(name) {
		return
	}
	for {
		name = name[strings.IndexByte(name, '.')+1:]
		if len(name) <= len(t.zone) || t.names[name] != nil {
			return
		}
		t.names[name] = b.node(name, nil)
	}
}

func hdr(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// aRecord is an A record, its address bytes and a one-element list holding it, made
// together: most names have one address.
type aRecord struct {
	rr   dns.A
	ip   [4]byte
	list [1]dns.RR
}

// aaaaRecord is aRecord for AAAA.
type aaaaRecord struct {
	rr   dns.AAAA
	ip   [16]byte
	list [1]dns.RR
}

// addAddr appends an A or AAAA record of ip, made from c.
func addAddr(c *chunks, n *Node, ip netip.Addr, ttl uint32) {
	if ip.Is4() {
		r := c.newA()
		r.ip = ip.As4()
		r.rr = dns.A{Hdr: hdr(n.Name, dns.TypeA, ttl), A: r.ip[:]}
		r.list[0] = &r.rr
		n.addOwn(c, kindA, r.list[:])
		return
	}
	r := c.newAAAA()
	r.ip = ip.As16()
	r.rr = dns.AAAA{Hdr: hdr(n.Name, dns.TypeAAAA, ttl), AAAA: r.ip[:]}
	r.list[0] = &r.rr
	n.addOwn(c, kindAAAA, r.list[:])
}

func (b *builder) addAddrs(n *Node, ips []netip.Addr) {
	for _, ip := range ips {
		if !hasAddr(n, ip) {
			addAddr(&b.chunks, n, ip, b.t.ttl)
		}
	}
}

func hasAddr(n *Node, ip netip.Addr) bool {
	k := kindA
	if ip.Is6() {
		k = kindAAAA
	}
	for _, rr := range n.records(k) {
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

// addPTR makes the reverse name of ip point at target; sortReverse drops repeats.
func (b *builder) addPTR(ip netip.Addr, target string, src *origin) {
	b.t.reverse = append(b.t.reverse, ptrEntry{ip.Unmap(), target, src})
}

// sortReverse orders the PTR entries by address, each address's in the order they were
// added (oldest first), keeps the first entry of each address and target, and counts the
// addresses.
func (b *builder) sortReverse() {
	t := b.t
	slices.SortStableFunc(t.reverse, func(x, y ptrEntry) int { return x.ip.Compare(y.ip) })
	kept, start := t.reverse[:0], 0 // start: where the current address's entries begin in kept
	for _, e := range t.reverse {
		if len(kept) == 0 || kept[len(kept)-1].ip != e.ip {
			start = len(kept)
			t.nReverse++
		} else if slices.ContainsFunc(kept[start:], func(k ptrEntry) bool { return k.target == e.target }) {
			continue
		}
		kept = append(kept, e)
	}
	t.reverse = slices.Clone(kept) // the size it needs: the build's slice grew by doubling
}

// reverseName is the in-addr.arpa. or ip6.arpa. name of ip (RFC 1035 §3.5, RFC 3596 §2.5).
func reverseName(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		a := ip.As4()
		b := make([]byte, 0, len("255.255.255.255.in-addr.arpa."))
		for i := 3; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(a[i]), 10)
			b = append(b, '.')
		}
		return string(append(b, "in-addr.arpa."...))
	}
	const hex = "0123456789abcdef"
	a := ip.As16()
	b := make([]byte, 0, 64+len("ip6.arpa."))
	for i := 15; i >= 0; i-- {
		b = append(b, hex[a[i]&0xf], '.', hex[a[i]>>4], '.')
	}
	return string(append(b, "ip6.arpa."...))
}

func (b *builder) srvRR(name string, port uint16, weight uint16, target string) dns.RR {
	rr := b.srv.new()
	*rr = dns.SRV{Hdr: hdr(name, dns.TypeSRV, b.t.ttl), Priority: 0, Weight: weight, Port: port, Target: target}
	return rr
}

// node makes a node of name and src.
func (b *builder) node(name string, src *origin) *Node {
	n := b.nodes.new()
	n.Name, n.src = name, src
	return n
}

// srvName returns _port._proto.owner for a named port, or "" when the port has no name.
func (b *builder) srvName(p model.Port, owner string) string {
	if p.Name == "" {
		return ""
	}
	return b.names.concat(true, "_", p.Name, ".", protoLabel(p.Protocol), ".", owner)
}

// addStructure adds the zone apex with its SOA, and the namespaces' names (the empty
// non-terminals above every other name are added with it, by newNode).
func (b *builder) addStructure() {
	t := b.t
	apex := b.ensure(t.zone)
	apex.set(&b.chunks, kindSOA, []dns.RR{t.soa})
	for ns := range t.namespaces {
		b.ensure(ns + ".svc." + t.zone)
		b.ensure(ns + "." + t.podZone)
	}
}

// finish fills the Additional section of SRV answers with the targets' addresses, once every
// name is known (ServiceEntry hosts may be merged from several objects).
func (b *builder) finish() {
	for _, n := range b.srvOwners {
		b.addSRVExtras(n)
	}
	b.sortReverse()
	b.countPortNames()
}

func (b *builder) ensure(name string) *Node {
	if first := b.t.names[name]; first != nil {
		return first
	}
	return b.newNode(name, nil)
}

// addSRVExtras adds the addresses of n's SRV targets to n's extra records, once per target.
func (b *builder) addSRVExtras(n *Node) {
	srv := n.records(kindSRV)
	for i, rr := range srv {
		target := rr.(*dns.SRV).Target
		if slices.ContainsFunc(srv[:i], func(prev dns.RR) bool { return prev.(*dns.SRV).Target == target }) {
			continue
		}
		if tn := pick(b.t.names[target], n.Namespace()); tn != nil {
			n.add(&b.chunks, kindExtra, tn.records(kindA)...)
			n.add(&b.chunks, kindExtra, tn.records(kindAAAA)...)
		}
	}
}
