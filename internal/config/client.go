package config

import (
	"net/netip"
	"strings"

	"github.com/meshdns/meshdns/internal/dnsname"
)

// ClientContext derives the client's namespace and search list: flags first, then the
// resolv.conf search list (lower-case FQDNs), whose first "<ns>.svc.<zone>" domain names the
// namespace. With --namespace alone, the list is the kubelet's: the three cluster domains of
// the namespace, then resolv.conf's domains outside the cluster zone (the node's own search
// domains).
func (s *Settings) ClientContext(resolvSearch []string) (ns string, search []string) {
	zone := s.ClusterDomain.String()
	ns = s.Namespace
	switch {
	case len(s.Search) > 0:
		for _, d := range s.Search {
			search = append(search, d.String())
		}
	case ns != "":
		search = []string{ns + ".svc." + zone, "svc." + zone, zone}
		for _, d := range resolvSearch {
			if !dnsname.InDomain(d, zone) {
				search = append(search, d)
			}
		}
	default:
		search = resolvSearch
	}
	if ns == "" {
		for _, d := range search {
			if rest, ok := strings.CutSuffix(d, ".svc."+zone); ok && !strings.Contains(rest, ".") && rest != "" {
				return rest, search
			}
		}
	}
	return ns, search
}

// IsSelf reports whether upstream is one of the listen addresses, so that forwarding to it
// would loop back into meshdns (a VM whose resolv.conf names the local meshdns). A listen
// address on all interfaces (":53", "0.0.0.0:53") covers every address isLocal accepts.
func IsSelf(upstream netip.AddrPort, listen []netip.AddrPort, isLocal func(netip.Addr) bool) bool {
	for _, l := range listen {
		switch {
		case l.Port() != upstream.Port():
		case l.Addr().IsUnspecified():
			if isLocal(upstream.Addr()) {
				return true
			}
		case l.Addr().Unmap() == upstream.Addr().Unmap():
			return true
		}
	}
	return false
}
