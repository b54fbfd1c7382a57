package table

import (
	"strings"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/miekg/dns"
)

// The names of a ClusterIP service's named ports, _port._proto.<service> with an SRV record
// and _proto.<service> above it, are made per lookup from the service's node, as reverse names
// are: at two nodes, two map entries and a record per service, they were a third of the
// table. The service's origin lists its ports' labels (origin.ports) in the order of the
// service's SRV records, one per port. Headless and ExternalName services, whose port names
// have other targets, and ServiceEntries keep nodes for them.

// portsSep ends an origin's description where a ClusterIP service's port labels follow.
const portsSep = "\x00"

// protoLabel is the label of a port's protocol: TCP unless UDP or SCTP, as in CoreDNS.
func protoLabel(protocol string) string {
	switch {
	case strings.EqualFold(protocol, "udp"):
		return "_udp"
	case strings.EqualFold(protocol, "sctp"):
		return "_sctp"
	}
	return "_tcp"
}

// portLabels appends to buf the labels of the ports of svc, a ClusterIP service, lowercased
// and separated by spaces ("_http._tcp", "" when unnamed), for portNode and Len. It returns
// false when no port has a name, or when one's name is not one label (Kubernetes allows none
// such): those names are made as nodes.
func portLabels(buf []byte, svc *model.Service) ([]byte, bool) {
	named := false
	for i, p := range svc.Ports {
		if strings.ContainsAny(p.Name, ". "+portsSep) {
			return nil, false
		}
		if i > 0 {
			buf = append(buf, ' ')
		}
		if p.Name != "" {
			named = true
			buf = append(append(append(append(buf, '_'), p.Name...), '.'), protoLabel(p.Protocol)...)
		}
	}
	toLower(buf)
	return buf, named
}

// countPortNames counts the port names of the services that no other object names too (those
// are counted in names).
func (b *builder) countPortNames() {
	var buf [256]byte
	for _, n := range b.portOwners {
		eachPortName(n, func(label string) {
			name := append(append(append(buf[:0], label...), '.'), n.Name...)
			if b.t.names[string(name)] == nil {
				b.t.nPorts++
			}
		})
	}
}

// eachPortName calls f with the first label(s) of each name below service node n: every
// "_port._proto", then every "_proto" of them.
func eachPortName(n *Node, f func(label string)) {
	for l := range strings.SplitSeq(n.src.ports(), " ") {
		if l != "" {
			f(l)
		}
	}
	for _, proto := range [...]string{"_tcp", "_udp", "_sctp"} { // protoLabel's
		if hasProto(n.src.ports(), proto) {
			f(proto)
		}
	}
}

// portOwner returns the ClusterIP service node named name whose named ports make names below
// it, nil when there is none.
func (t *Table) portOwner(name string) *Node {
	for n := t.names[name]; n != nil; n = n.next {
		if n.service && n.src.ports() != "" {
			return n
		}
	}
	return nil
}

// portNode makes the node of qname when it is a ClusterIP service's named port,
// _port._proto.<service> (its SRV record and the service's addresses for the Additional
// section), or _proto.<service> (an empty non-terminal, unless next, the variants the table
// holds for qname, already make the name exist). The node comes before next, as the service
// came before the ServiceEntries naming the same host. nil when qname is neither.
func (t *Table) portNode(qname string, next *Node) *Node {
	if !strings.HasPrefix(qname, "_") {
		return nil
	}
	first, rest, _ := strings.Cut(qname, ".")
	if svc := t.portOwner(rest); svc != nil {
		if next == nil && hasProto(svc.src.ports(), first) {
			return &Node{Name: qname}
		}
		return nil
	}
	proto, owner, _ := strings.Cut(rest, ".")
	if !strings.HasPrefix(proto, "_") {
		return nil
	}
	svc := t.portOwner(owner)
	if svc == nil {
		return nil
	}
	label := qname[:len(first)+1+len(proto)]
	srvs := svc.records(kindSRV)
	// Most services have one port of a name and one address: the node, its record and their
	// list are then one allocation.
	c := &struct {
		n    Node
		srv  dns.SRV
		list [3]dns.RR
	}{n: Node{Name: qname, src: svc.src, next: next}}
	n := &c.n
	n.rrs = c.list[:0]
	i := 0
	for l := range strings.SplitSeq(svc.src.ports(), " ") {
		if l == label && i < len(srvs) {
			rr := &c.srv
			if len(n.rrs) > 0 {
				rr = new(dns.SRV)
			}
			*rr = *srvs[i].(*dns.SRV)
			rr.Hdr.Name = qname
			n.add(nil, kindSRV, rr)
		}
		i++
	}
	if len(n.rrs) == 0 {
		return nil
	}
	setWeights(n.records(kindSRV))
	if target := pick(t.names[svc.Name], svc.Namespace()); target != nil {
		n.add(nil, kindExtra, target.records(kindA)...)
		n.add(nil, kindExtra, target.records(kindAAAA)...)
	}
	return n
}

// hasProto reports whether a named port of the labels ports uses protocol label proto
// ("_tcp").
func hasProto(ports, proto string) bool {
	for l := range strings.SplitSeq(ports, " ") {
		if _, p, ok := strings.Cut(l, "."); ok && p == proto {
			return true
		}
	}
	return false
}
