package table

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/vip"
)

func (b *builder) addServiceEntry(se *model.ServiceEntry) {
	exportTo := normalizeExportTo(se.ExportTo)
	var specAddrs []netip.Addr
	for _, p := range se.Addresses {
		// A CIDR stands for many hosts and cannot be answered as an address.
		if p.IsSingleIP() {
			specAddrs = append(specAddrs, p.Addr().Unmap())
		}
	}
	var endpoints []netip.Addr
	if se.Resolution == model.ResolutionStatic || se.Resolution == model.ResolutionNone {
		endpoints = b.workloadAddrs(se)
	}
	for _, h := range se.Hosts {
		host := dnsname.Host(h) // the model's spelling, which keys leases and status addresses
		if host == "" || host == "*" {
			continue
		}
		name := dnsname.Canonical(host)
		wildcard := strings.HasPrefix(host, "*.")
		addrs, leases := specAddrs, []vip.Lease(nil)
		if len(se.Addresses) == 0 {
			addrs, leases = b.virtualAddrs(se, host, name)
			b.addVIPTargets(se, name, addrs, endpoints)
			if len(addrs) == 0 {
				addrs = endpoints
			}
		}
		if len(addrs) > 0 {
			n := b.seNode(se, host, name, exportTo)
			b.addAddrs(n, addrs)
			if len(n.VIPs()) == 0 && len(leases) > 0 { // several ServiceEntries of a namespace may name the host
				n.info().vips = leases
			}
		}
		if !wildcard {
			b.addSEPorts(se, name, exportTo)
		}
	}
}

// virtualAddrs returns the VIPs of a host (named name in the table) without spec.addresses: those the allocator leases
// it, else those recorded in status.addresses. VIPs belong to the host alone, so their reverse
// names are ours to answer (spec addresses may be real external IPs with PTRs of their own).
//
// With StatusFirst (Kubernetes: status is what one elected writer, or Istio, recorded for the
// whole cluster), an address in status wins over this process's own lease of the same family,
// unless another host holds it here: replicas then answer alike even where their allocators,
// started from different states, chose differently.
func (b *builder) virtualAddrs(se *model.ServiceEntry, host, name string) ([]netip.Addr, []vip.Lease) {
	key := vip.Key{Namespace: se.Namespace, Host: host}
	leases := b.vips[key]
	var addrs []netip.Addr
	for _, l := range leases {
		addrs = append(addrs, l.Addr)
	}
	status := statusAddrs(se, host)
	switch {
	case len(addrs) == 0:
		addrs = status
	case b.statusFirst:
		for i, a := range addrs {
			for _, s := range status {
				if s.Is4() == a.Is4() && b.leasedTo(s, key) {
					addrs[i] = s
					break
				}
			}
		}
	}
	if !strings.HasPrefix(host, "*.") && len(addrs) > 0 {
		src := b.origin(b.names.concat(false, "ServiceEntry ", se.Namespace, "/", se.Name, " VIP"), se.Namespace)
		for _, ip := range addrs {
			b.addPTR(ip, name, src)
		}
	}
	return addrs, leases
}

// leasedTo reports whether ip is held by no host but key in this process's allocator.
func (b *builder) leasedTo(ip netip.Addr, key vip.Key) bool {
	if b.leased == nil {
		b.leased = map[netip.Addr]vip.Key{}
		for k, ls := range b.vips {
			for _, l := range ls {
				b.leased[l.Addr] = k
			}
		}
	}
	owner, held := b.leased[ip]
	return !held || owner == key
}

// seOrigin returns the origin of se's nodes, one for all of them.
func (b *builder) seOrigin(se *model.ServiceEntry) *origin {
	if b.lastSE != se {
		b.lastSE, b.lastSEOrigin = se, b.origin(b.names.concat(false, "ServiceEntry ", se.Namespace, "/", se.Name), se.Namespace)
	}
	return b.lastSEOrigin
}

// seNode returns the node of host (named name in the table) in se's namespace; ServiceEntries
// of one namespace naming the same host share it (their addresses are merged, as Istio merges
// them).
func (b *builder) seNode(se *model.ServiceEntry, host, name string, exportTo []string) *Node {
	key := se.Namespace + "/" + host
	if n := b.seHost[key]; n != nil {
		return n
	}
	src := b.seOrigin(se)
	var n *Node
	if base, wildcard := strings.CutPrefix(name, "*."); wildcard {
		n = b.node(name, src)
		b.t.wildcards[base] = appendVariant(b.t.wildcards[base], n)
	} else {
		n = b.newNode(name, src)
	}
	n.setExportTo(exportTo)
	b.seHost[key] = n
	return n
}

func (b *builder) addSEPorts(se *model.ServiceEntry, fqdn string, exportTo []string) {
	for _, p := range se.Ports {
		name := b.srvName(p, fqdn)
		if name == "" {
			continue
		}
		n := b.seHost[se.Namespace+"/"+name]
		if n == nil {
			n = b.newNode(name, b.seOrigin(se))
			n.setExportTo(exportTo)
			b.seHost[se.Namespace+"/"+name] = n
		}
		b.setSRV(n, append(n.records(kindSRV), b.srvRR(name, p.Number, 100, fqdn)))
	}
}

// workloadAddrs lists the IP endpoints of a ServiceEntry: inline endpoints, and the
// WorkloadEntries and pods of its namespace that its workloadSelector matches, in snapshot
// order.
func (b *builder) workloadAddrs(se *model.ServiceEntry) []netip.Addr {
	var out []netip.Addr
	for _, ep := range se.Endpoints {
		if ip, ok := ep.IP(); ok {
			out = append(out, ip)
		}
	}
	if len(se.WorkloadSelector) == 0 {
		return out
	}
	w := b.workloadsIn(se.Namespace)
	for _, we := range w.entries {
		if model.Selects(se.WorkloadSelector, we.Meta.Labels, we.WorkloadEndpoint.Labels) {
			if ip, ok := we.IP(); ok {
				out = append(out, ip)
			}
		}
	}
	for _, p := range w.pods {
		if model.Selects(se.WorkloadSelector, p.Labels, nil) {
			out = append(out, p.IPs...)
		}
	}
	return out
}

// workloads are the candidates of the workload selectors of one namespace's ServiceEntries,
// in snapshot order.
type workloads struct {
	entries []*model.WorkloadEntry
	pods    []*model.Pod
}

// workloadsIn returns the WorkloadEntries and pods of namespace ns. They are grouped by
// namespace once per build, on first use, so that selection does not scan the whole snapshot
// for every ServiceEntry.
func (b *builder) workloadsIn(ns string) workloads {
	if b.workloads == nil {
		b.workloads = map[string]workloads{}
		for i := range b.snap.WorkloadEntries {
			we := &b.snap.WorkloadEntries[i]
			w := b.workloads[we.Namespace]
			w.entries = append(w.entries, we)
			b.workloads[we.Namespace] = w
		}
		for i := range b.snap.Pods {
			p := &b.snap.Pods[i]
			w := b.workloads[p.Namespace]
			w.pods = append(w.pods, p)
			b.workloads[p.Namespace] = w
		}
	}
	return b.workloads[ns]
}

func statusAddrs(se *model.ServiceEntry, host string) []netip.Addr {
	var out []netip.Addr
	for _, ha := range se.StatusAddresses {
		if dnsname.Host(ha.Host) == host {
			out = append(out, ha.Address)
		}
	}
	return out
}

// normalizeExportTo returns nil when the entry is visible everywhere.
func normalizeExportTo(exportTo []string) []string {
	if len(exportTo) == 0 || slices.Contains(exportTo, "*") {
		return nil
	}
	return exportTo
}
