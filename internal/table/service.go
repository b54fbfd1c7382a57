package table

import (
	"net/netip"
	"unsafe"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/miekg/dns"
)

func (b *builder) addService(svc *model.Service) {
	fqdn := b.names.concat(true, svc.Name, ".", svc.Namespace, ".svc.", b.t.zone)
	var buf [256]byte
	sep, labels := "", []byte(nil)
	if svc.Type != model.ServiceTypeExternalName && !svc.Headless {
		if l, ok := portLabels(buf[:0], svc); ok {
			sep, labels = portsSep, l
		}
	}
	desc := b.names.concat(false, "Service ", svc.Namespace, "/", svc.Name, sep, unsafe.String(unsafe.SliceData(labels), len(labels)))
	n := b.newNode(fqdn, b.origin(desc, svc.Namespace))
	// shared by the service's endpoint names
	b.endpointOrigin = b.origin(b.names.concat(false, n.Origin(), " endpoint"), svc.Namespace)
	n.service = true
	switch {
	case svc.Type == model.ServiceTypeExternalName:
		b.addExternalName(svc, n)
	case svc.Headless:
		b.addHeadless(svc, n)
	default:
		b.addClusterIP(svc, n)
	}
}

func (b *builder) addExternalName(svc *model.Service, n *Node) {
	if svc.ExternalName == "" {
		return
	}
	target := dnsname.Canonical(svc.ExternalName)
	n.set(&b.chunks, kindCNAME, []dns.RR{&dns.CNAME{Hdr: hdr(n.Name, dns.TypeCNAME, b.t.ttl), Target: target}})
	// No SRV on the name itself: a CNAME owns its name alone (RFC 2181 §10.1).
	b.addNamedPortSRVs(svc.Ports, n, target)
}

func (b *builder) addClusterIP(svc *model.Service, n *Node) {
	b.addAddrs(n, svc.ClusterIPs)
	for _, ip := range svc.ClusterIPs {
		b.addPTR(ip, n.Name, n.src)
	}
	srv := n.records(kindSRV)
	for _, p := range svc.Ports {
		srv = append(srv, b.srvRR(n.Name, p.Number, 0, n.Name))
	}
	b.setSRV(n, srv)
	if n.src.ports() != "" {
		b.portOwners = append(b.portOwners, n) // their names are made per lookup
	} else {
		b.addNamedPortSRVs(svc.Ports, n, n.Name)
	}
	// Endpoints are addressable by name under a ClusterIP service too, as in CoreDNS.
	for _, tg := range b.endpointTargets(svc, n.Name) {
		b.addTarget(svc, tg)
	}
}

func (b *builder) addNamedPortSRVs(ports []model.Port, n *Node, target string) {
	for _, p := range ports {
		if name := b.srvName(p, n.Name); name != "" {
			sn := b.newNode(name, n.src)
			sn.setExportTo(n.ExportTo())
			b.setSRV(sn, []dns.RR{b.srvRR(name, p.Number, 100, target)})
		}
	}
}

// target is one addressable endpoint of a service: its name and addresses.
type target struct {
	name  string
	addrs []netip.Addr
	ports []model.Port
}

// endpointTargets collects the endpoints of svc that DNS publishes (ready ones, or all with
// publishNotReadyAddresses), merged by name across slices.
func (b *builder) endpointTargets(svc *model.Service, fqdn string) []*target {
	var out []*target
	byName := map[string]*target{}
	for _, es := range b.slices[svc.Namespace+"/"+svc.Name] {
		for _, ep := range es.Endpoints {
			if (!ep.Ready && !svc.PublishNotReady) || len(ep.Addresses) == 0 {
				continue
			}
			host := b.endpointHostname(svc, ep)
			name := b.names.concat(true, host, ".", fqdn)
			tg := byName[name]
			if tg == nil {
				tg = &target{name: name}
				byName[name] = tg
				out = append(out, tg)
			}
			tg.addrs = append(tg.addrs, ep.Addresses...)
			tg.ports = append(tg.ports, es.Ports...)
		}
	}
	return out
}

// endpointHostname is the endpoint's hostname, else that of its pod when the pod's subdomain
// is the service (StatefulSet pods), else the address with dashes (as CoreDNS names them).
func (b *builder) endpointHostname(svc *model.Service, ep model.Endpoint) string {
	if ep.Hostname != "" {
		return ep.Hostname
	}
	if ref := ep.TargetRef; ref != nil && (ref.Kind == "" || ref.Kind == "Pod") {
		ns := ref.Namespace
		if ns == "" {
			ns = svc.Namespace
		}
		if p := b.pods[ns+"/"+ref.Name]; p != nil && p.Hostname != "" && p.Subdomain == svc.Name {
			return p.Hostname
		}
	}
	return dashed(ep.Addresses[0])
}

// dashed writes ip with dashes for dots and colons: 10-1-2-3, fd00--1.
func dashed(ip netip.Addr) string {
	b := ip.AppendTo(make([]byte, 0, 45))
	for i, c := range b {
		if c == '.' || c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}

func (b *builder) addTarget(svc *model.Service, tg *target) {
	tn := b.newNode(tg.name, b.endpointOrigin)
	tn.Endpoint = true
	b.addAddrs(tn, tg.addrs)
	for _, ip := range tg.addrs {
		b.addPTR(ip, tg.name, b.endpointOrigin)
	}
}

func (b *builder) addHeadless(svc *model.Service, n *Node) {
	n.Shuffle = true
	targets := b.endpointTargets(svc, n.Name)
	srvByName := map[string][]dns.RR{}
	var order []string
	var srv []dns.RR
	for _, tg := range targets {
		b.addAddrs(n, tg.addrs)
		b.addTarget(svc, tg)
		for _, p := range uniquePorts(tg.ports) {
			srv = append(srv, b.srvRR(n.Name, p.Number, 0, tg.name))
			if name := b.srvName(p, n.Name); name != "" {
				if _, ok := srvByName[name]; !ok {
					order = append(order, name)
				}
				srvByName[name] = append(srvByName[name], b.srvRR(name, p.Number, 0, tg.name))
			}
		}
	}
	b.setSRV(n, srv)
	for _, name := range order {
		sn := b.newNode(name, n.src)
		sn.Shuffle = true
		b.setSRV(sn, srvByName[name])
	}
}

// setSRV sets the SRV records of n, with their weights, and notes n for addSRVExtras.
func (b *builder) setSRV(n *Node, rrs []dns.RR) {
	if len(rrs) == 0 {
		return
	}
	if len(n.records(kindSRV)) == 0 {
		b.srvOwners = append(b.srvOwners, n)
	}
	setWeights(rrs)
	n.set(&b.chunks, kindSRV, rrs)
}

// setWeights spreads a weight of 100 evenly over equal-priority SRV records.
func setWeights(rrs []dns.RR) {
	for _, rr := range rrs {
		rr.(*dns.SRV).Weight = uint16(100 / len(rrs))
	}
}

func uniquePorts(ports []model.Port) []model.Port {
	var out []model.Port
	seen := map[model.Port]bool{}
	for _, p := range ports {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
