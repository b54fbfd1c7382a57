package table

import (
	"math"
	"slices"
	"strings"

	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
)

// Node is one owner name and its records. It is shared by every answer for that name and must
// be treated as read-only.
//
// A large table is mostly nodes (four per ClusterIP Service: its name, its port's SRV name,
// the empty non-terminal above that and its endpoint's name; reverse names have no node, see
// Table.reverse), so a node keeps its records in one slice, by kind, what only ServiceEntry
// hosts have behind a pointer, and its origin shared with the other nodes of its object: 80
// bytes where a slice per record type took 288.
type Node struct {
	// Name is the lowercase FQDN the records are stored under.
	Name string
	src  *origin // nil for the empty non-terminals the builder adds
	// rrs holds the records by kind, in the order of the kinds below; end[k] is where kind
	// k ends (and kind k+1 starts); the last kind ends at len(rrs). A node whose ends pass
	// 16 bits (a headless service of tens of thousands of endpoints) keeps them in
	// host.wide instead (see endOf).
	rrs []dns.RR
	end [nKinds - 1]uint16
	// Shuffle asks the resolver to randomise address order per answer (headless services).
	Shuffle bool
	// Endpoint marks an endpoint name of a service (ep.svc.ns.svc.<zone>), which its short
	// names reach through the service's alias (Table.alias). Next to Shuffle it costs no space.
	Endpoint bool
	// service marks a cluster service's name, which its short names reach (Table.alias).
	service bool
	host    *hostInfo // nil but for ServiceEntry hosts and nodes of very many records
	// next is the name's next variant (another object defining the same name), in table order.
	next *Node
}

// origin is the object a node's records come from, shared by the nodes of that object.
type origin struct {
	// desc describes the object, e.g. "Service prod/reviews". A ClusterIP service's is
	// followed by portsSep and its ports' labels (ports), which are not worth a field in
	// every origin.
	desc      string
	namespace string
}

// ports returns the labels of a ClusterIP service's ports, separated by spaces, in the order
// of its SRV records (see portNode); "" for other objects.
func (o *origin) ports() string {
	_, p, _ := strings.Cut(o.desc, portsSep)
	return p
}

// Origin names the object the records come from, e.g. "Service prod/reviews"; "" for an
// empty non-terminal.
func (n *Node) Origin() string {
	if n.src == nil {
		return ""
	}
	d, _, _ := strings.Cut(n.src.desc, portsSep)
	return d
}

// Namespace is the namespace of the object the records come from. A ServiceEntry in the
// client's own namespace wins over one exported from elsewhere (else the oldest wins: see
// byAge).
func (n *Node) Namespace() string {
	if n.src == nil {
		return ""
	}
	return n.src.namespace
}

// hostInfo is what a ServiceEntry host's node has beyond records, and the ends of a node with
// more records than 16-bit ends can count.
type hostInfo struct {
	wide *[nKinds - 1]uint32
	// exportTo restricts which client namespaces see the name; nil means all.
	exportTo []string
	// vips are the allocated addresses among the A and AAAA records, for /debug/table.
	vips []vip.Lease
}

// The kinds of records a node holds, in the order it stores them. extra holds address
// records of SRV targets, for the Additional section.
const (
	kindCNAME = iota
	kindA
	kindAAAA
	kindSRV
	kindPTR
	kindSOA
	kindExtra
	nKinds
)

// kindOf maps a record type to its kind; false for types a node does not hold.
func kindOf(qtype uint16) (int, bool) {
	switch qtype {
	case dns.TypeCNAME:
		return kindCNAME, true
	case dns.TypeA:
		return kindA, true
	case dns.TypeAAAA:
		return kindAAAA, true
	case dns.TypeSRV:
		return kindSRV, true
	case dns.TypePTR:
		return kindPTR, true
	case dns.TypeSOA:
		return kindSOA, true
	}
	return 0, false
}

// endOf returns where the records of kind k end.
func (n *Node) endOf(k int) int {
	switch {
	case k == nKinds-1:
		return len(n.rrs)
	case n.host != nil && n.host.wide != nil:
		return int(n.host.wide[k])
	}
	return int(n.end[k])
}

// shiftEnds moves the ends of kinds k and after by delta records, to 32-bit ends when 16 bits
// no longer hold them.
func (n *Node) shiftEnds(k, delta int) {
	if n.host == nil || n.host.wide == nil {
		if int(n.end[nKinds-2])+delta <= math.MaxUint16 { // the last end is the largest
			for i := k; i < nKinds-1; i++ {
				n.end[i] = uint16(int(n.end[i]) + delta)
			}
			return
		}
		wide := new([nKinds - 1]uint32)
		for i, e := range n.end {
			wide[i] = uint32(e)
		}
		n.info().wide = wide
	}
	for i := k; i < nKinds-1; i++ {
		n.host.wide[i] = uint32(int(n.host.wide[i]) + delta)
	}
}

// records returns the records of kind k, capped: appending to them copies.
func (n *Node) records(k int) []dns.RR {
	start, end := 0, n.endOf(k)
	if k > 0 {
		start = n.endOf(k - 1)
	}
	return n.rrs[start:end:end]
}

// add appends rrs to the records of kind k, growing n's list from c.
func (n *Node) add(c *chunks, k int, rrs ...dns.RR) {
	c.room(n, len(rrs))
	n.rrs = slices.Insert(n.rrs, n.endOf(k), rrs...)
	n.shiftEnds(k, len(rrs))
}

// addOwn adds the record of one, a one-element list made for n alone, to kind k. A node that
// has no record yet takes the list itself: most names have one record, and building a large
// table is mostly allocation and garbage collection.
func (n *Node) addOwn(c *chunks, k int, one []dns.RR) {
	if len(n.rrs) > 0 {
		n.add(c, k, one[0])
		return
	}
	n.rrs = one[:1:1]
	n.shiftEnds(k, 1)
}

// set replaces the records of kind k with rrs, growing n's list from c.
func (n *Node) set(c *chunks, k int, rrs []dns.RR) {
	old := n.records(k)
	c.room(n, len(rrs)-len(old))
	end := n.endOf(k)
	n.rrs = slices.Replace(n.rrs, end-len(old), end, rrs...)
	n.shiftEnds(k, len(rrs)-len(old))
}

// Records returns the records of type qtype, in stored order. The slice is shared: copy
// records before changing them.
func (n *Node) Records(qtype uint16) []dns.RR {
	if qtype == dns.TypeANY {
		return slices.Clone(n.owned())
	}
	if k, ok := kindOf(qtype); ok {
		return n.records(k)
	}
	return nil
}

// Extra returns the address records of the SRV records' targets, for the Additional section.
func (n *Node) Extra() []dns.RR { return n.records(kindExtra) }

// ExportTo returns the namespaces that may see the name; nil means all.
func (n *Node) ExportTo() []string {
	if n.host == nil {
		return nil
	}
	return n.host.exportTo
}

// VIPs returns the allocated addresses among the A and AAAA records, for /debug/table.
func (n *Node) VIPs() []vip.Lease {
	if n.host == nil {
		return nil
	}
	return n.host.vips
}

// setExportTo sets the namespaces that may see the name (nil: all).
func (n *Node) setExportTo(e []string) {
	if e != nil || n.host != nil {
		n.info().exportTo = e
	}
}

// info returns n's hostInfo, made when needed.
func (n *Node) info() *hostInfo {
	if n.host == nil {
		n.host = &hostInfo{}
	}
	return n.host
}

// Target returns the CNAME target when the name is an alias.
func (n *Node) Target() (string, bool) {
	if n.endOf(kindCNAME) == 0 {
		return "", false
	}
	return n.rrs[0].(*dns.CNAME).Target, true
}

// Empty reports whether the node has no records: an empty non-terminal, answered with NODATA.
func (n *Node) Empty() bool {
	return n.endOf(kindSOA) == 0
}

// structural reports whether n is an empty non-terminal the builder added: no records, no
// object behind it.
func (n *Node) structural() bool { return n.src == nil && n.Empty() }

// Visible reports whether a client in namespace ns may see the name. A client whose namespace
// is unknown sees only names exported to everyone.
func (n *Node) Visible(ns string) bool {
	if n.host == nil || n.host.exportTo == nil {
		return true
	}
	for _, e := range n.host.exportTo {
		switch {
		case e == "*":
			return true
		case ns == "":
		case e == "." && ns == n.Namespace(), e == ns:
			return true
		}
	}
	return false
}

// owned returns the node's own records (not the Additional ones, which belong to other
// names), by kind.
func (n *Node) owned() []dns.RR {
	end := n.endOf(kindSOA)
	return n.rrs[:end:end]
}
