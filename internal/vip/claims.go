package vip

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/model"
)

// OptOutLabel turns auto-allocation off for a ServiceEntry when its value is "false".
const OptOutLabel = "networking.istio.io/enable-autoallocate-ip"

// Claims returns the hosts of s that are eligible for a VIP (docs/vips.md), one per (namespace,
// host), sorted by key. A host is eligible in a ServiceEntry that has no spec.addresses,
// a resolution other than NONE (unset means NONE, as in the API), is not opted out by
// OptOutLabel, and names it without a wildcard unless the resolution is DYNAMIC_DNS.
// Several ServiceEntries of one namespace naming a host make one claim: Created is the
// oldest of them, Existing their status.addresses for the host, oldest entry first.
func Claims(s model.Snapshot) []Claim {
	ses := make([]*model.ServiceEntry, 0, len(s.ServiceEntries))
	for i := range s.ServiceEntries {
		if se := &s.ServiceEntries[i]; seEligible(se) {
			ses = append(ses, se)
		}
	}
	// Oldest first, so Created is the first seen and Existing lists the oldest record first.
	slices.SortStableFunc(ses, func(x, y *model.ServiceEntry) int { return model.CompareAge(&x.Meta, &y.Meta) })
	idx := map[Key]int{}
	var out []Claim
	for _, se := range ses {
		for _, h := range se.Hosts {
			h, ok := eligibleHost(h, se.Resolution)
			if !ok {
				continue
			}
			k := Key{Namespace: se.Namespace, Host: h}
			i, seen := idx[k]
			if !seen {
				i = len(out)
				idx[k] = i
				out = append(out, Claim{Key: k, Created: se.Created})
			}
			out[i].Existing = appendStatus(out[i].Existing, se.StatusAddresses, h)
		}
	}
	slices.SortFunc(out, func(x, y Claim) int { return compareKeys(x.Key, y.Key) })
	return out
}

func seEligible(se *model.ServiceEntry) bool {
	return len(se.Addresses) == 0 &&
		se.Resolution != model.ResolutionNone && se.Resolution != "" &&
		se.Labels[OptOutLabel] != "false"
}

// eligibleHost normalises h as the table does and reports whether it may hold a VIP.
func eligibleHost(h string, r model.Resolution) (string, bool) {
	h = dnsname.Host(h)
	if h == "" || h == "*" {
		return "", false
	}
	if strings.HasPrefix(h, "*.") && r != model.ResolutionDynamicDNS {
		return "", false
	}
	return h, true
}

func appendStatus(dst []netip.Addr, status []model.HostAddress, host string) []netip.Addr {
	for _, ha := range status {
		if dnsname.Host(ha.Host) != host || !ha.Address.IsValid() {
			continue
		}
		if a := ha.Address.Unmap(); !slices.Contains(dst, a) {
			dst = append(dst, a)
		}
	}
	return dst
}
