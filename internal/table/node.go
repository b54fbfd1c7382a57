package table

import (
	"slices"

	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
)

// Node is one owner name and its records. It is shared by every answer for that name and must
// be treated as read-only.
type Node struct {
	// Name is the lowercase FQDN the records are stored under.
	Name string
	// Origin names the object the records come from, e.g. "Service prod/reviews".
	Origin string
	// Namespace of the originating object; a ServiceEntry in the client's own namespace wins
	// over one exported from elsewhere (else the oldest wins: see byAge).
	Namespace string
	// ExportTo restricts which client namespaces see the name; nil means all.
	ExportTo []string
	// Shuffle asks the resolver to randomise address order per answer (headless services).
	Shuffle bool
	// Endpoint marks an endpoint name of a service (ep.svc.ns.svc.<zone>), which its short
	// names reach through the service's alias (Table.alias). Next to Shuffle it costs no space.
	Endpoint bool

	A, AAAA, CNAME, SRV, PTR, SOA []dns.RR
	// Extra holds address records of SRV targets, for the Additional section.
	Extra []dns.RR
	// VIPs are the allocated addresses among A/AAAA, for /debug/table.
	VIPs []vip.Lease
}

// Records returns the records of type qtype, in stored order. The slice is shared: copy
// records before changing them.
func (n *Node) Records(qtype uint16) []dns.RR {
	switch qtype {
	case dns.TypeA:
		return n.A
	case dns.TypeAAAA:
		return n.AAAA
	case dns.TypeCNAME:
		return n.CNAME
	case dns.TypeSRV:
		return n.SRV
	case dns.TypePTR:
		return n.PTR
	case dns.TypeSOA:
		return n.SOA
	case dns.TypeANY:
		return slices.Concat(n.CNAME, n.A, n.AAAA, n.SRV, n.PTR, n.SOA)
	}
	return nil
}

// Target returns the CNAME target when the name is an alias.
func (n *Node) Target() (string, bool) {
	if len(n.CNAME) == 0 {
		return "", false
	}
	return n.CNAME[0].(*dns.CNAME).Target, true
}

// Empty reports whether the node has no records: an empty non-terminal, answered with NODATA.
func (n *Node) Empty() bool {
	return len(n.A)+len(n.AAAA)+len(n.CNAME)+len(n.SRV)+len(n.PTR)+len(n.SOA) == 0
}

// structural reports whether n is an empty non-terminal the builder added: no records, no
// object behind it.
func (n *Node) structural() bool { return n.Origin == "" && n.Empty() }

// Visible reports whether a client in namespace ns may see the name. A client whose namespace
// is unknown sees only names exported to everyone.
func (n *Node) Visible(ns string) bool {
	if n.ExportTo == nil {
		return true
	}
	for _, e := range n.ExportTo {
		switch {
		case e == "*":
			return true
		case ns == "":
		case e == "." && ns == n.Namespace, e == ns:
			return true
		}
	}
	return false
}

// owned lists the node's own records (not the Additional ones, which belong to other names).
func (n *Node) owned() [][]dns.RR {
	return [][]dns.RR{n.CNAME, n.A, n.AAAA, n.SRV, n.PTR, n.SOA}
}
