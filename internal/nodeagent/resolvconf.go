package nodeagent

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/resolver"
)

// The kubelet's bounds on a pod's search list (validation.MaxDNSSearchPaths and
// MaxDNSSearchListChars since Kubernetes 1.28): beyond them it drops the last domains.
const (
	maxSearchPaths = 32
	maxSearchChars = 2048
)

// ClientOf is the context in which the node agent answers a pod: its namespace and the search
// list of the resolv.conf the kubelet writes for it, given the cluster domain and the node's own
// search list (the kubelet's --resolv-conf). ok is false for a pod whose queries the agent
// cannot tell apart by address: one on the host network shares the node's addresses.
func ClientOf(pod *corev1.Pod, zone string, nodeSearch []string) (c resolver.Client, ok bool) {
	if pod.Spec.HostNetwork {
		return resolver.Client{}, false
	}
	zone = strings.TrimSuffix(dnsname.Canonical(zone), ".")
	var search []string
	switch pod.Spec.DNSPolicy {
	case corev1.DNSDefault:
		search = slices.Clone(nodeSearch)
	case corev1.DNSNone:
	default: // ClusterFirst (the default when empty) and ClusterFirstWithHostNet
		ns := pod.Namespace
		search = append([]string{ns + ".svc." + zone, "svc." + zone, zone}, nodeSearch...)
	}
	if cfg := pod.Spec.DNSConfig; cfg != nil {
		search = append(search, cfg.Searches...)
	}
	return resolver.Client{Namespace: pod.Namespace, Search: searchList(search)}, true
}

// searchList spells the domains as the resolver takes them (lowercase, fully qualified), drops
// empty ones and repeats, and keeps within the kubelet's bounds.
func searchList(domains []string) []string {
	var out []string
	chars := 0
	for _, d := range domains {
		d = strings.TrimSuffix(strings.TrimSpace(d), ".")
		if d == "" {
			continue
		}
		fqdn := dnsname.Canonical(d + ".")
		if slices.Contains(out, fqdn) {
			continue
		}
		if len(out) == maxSearchPaths || chars+len(d)+1 > maxSearchChars {
			break
		}
		chars += len(d) + 1
		out = append(out, fqdn)
	}
	return out
}
