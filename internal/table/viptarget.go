package table

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/meshdns/meshdns/internal/model"
)

// VIPTarget is where a TCP connection to a ServiceEntry host's VIP goes (docs/vips.md,
// Forwarding): the host itself, resolved upstream, or, for STATIC and NONE resolution, the
// entry's endpoints; on one of the entry's ports. The VIPs of one host share one target.
type VIPTarget struct {
	// Host is the lowercase FQDN the VIP was allocated to.
	Host string
	// Origin names the ServiceEntry, as Node.Origin.
	Origin string
	// Ports are the entry's port numbers; a connection to any other port is refused.
	Ports []uint16
	// Static says the addresses to dial are Endpoints, not the upstream answer for Host.
	Static    bool
	Endpoints []netip.Addr
}

// HasPort reports whether port is one of the target's ports.
func (v *VIPTarget) HasPort(port uint16) bool { return slices.Contains(v.Ports, port) }

// VIPTarget returns the target of a VIP (IPv4-mapped addresses are unmapped), or false
// when ip is no VIP of a host of this table.
func (t *Table) VIPTarget(ip netip.Addr) (*VIPTarget, bool) {
	v, ok := t.vipTargets[ip.Unmap()]
	return v, ok
}

// addVIPTargets records the target of the VIPs of se's host (named name in the table). A
// wildcard host has no single name to dial, so its VIPs have no target; a VIP already
// recorded (status addresses naming it twice) keeps its first, oldest, target.
func (b *builder) addVIPTargets(se *model.ServiceEntry, name string, vips, endpoints []netip.Addr) {
	if len(vips) == 0 || strings.HasPrefix(name, "*.") {
		return
	}
	v := &VIPTarget{Host: name, Origin: "ServiceEntry " + se.Key(), Endpoints: endpoints,
		Static: se.Resolution == model.ResolutionStatic || se.Resolution == model.ResolutionNone}
	for _, p := range se.Ports {
		v.Ports = append(v.Ports, p.Number)
	}
	if b.t.vipTargets == nil {
		b.t.vipTargets = map[netip.Addr]*VIPTarget{}
	}
	for _, ip := range vips {
		if _, taken := b.t.vipTargets[ip]; !taken {
			b.t.vipTargets[ip] = v
		}
	}
}
