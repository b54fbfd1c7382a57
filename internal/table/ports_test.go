package table

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/model"
)

// portSnapshot has ClusterIP services with named, unnamed, UDP and SCTP ports, one whose port
// name is not a single label, one with no named port, and ServiceEntries naming a service's
// host with ports of the same names (one exported to its own namespace only).
func portSnapshot() model.Snapshot {
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	return model.Snapshot{
		Services: []model.Service{
			{Meta: model.Meta{Namespace: "ns", Name: "web"}, ClusterIPs: []netip.Addr{ip("10.96.0.1"), ip("fd00::1")},
				Ports: []model.Port{{Name: "http", Protocol: "TCP", Number: 80}, {Number: 81},
					{Name: "dns", Protocol: "UDP", Number: 53}, {Name: "dns", Protocol: "TCP", Number: 5353},
					{Name: "Grpc", Protocol: "sctp", Number: 9}}},
			{Meta: model.Meta{Namespace: "ns", Name: "shared"}, ClusterIPs: []netip.Addr{ip("10.96.0.2")},
				Ports: []model.Port{{Name: "https", Protocol: "TCP", Number: 443}}},
			{Meta: model.Meta{Namespace: "ns", Name: "dotted"}, ClusterIPs: []netip.Addr{ip("10.96.0.3")},
				Ports: []model.Port{{Name: "a.b", Protocol: "TCP", Number: 1}}},
			{Meta: model.Meta{Namespace: "ns", Name: "unnamed"}, ClusterIPs: []netip.Addr{ip("10.96.0.4")},
				Ports: []model.Port{{Number: 1}}},
		},
		ServiceEntries: []model.ServiceEntry{
			{Meta: model.Meta{Namespace: "ns", Name: "se"}, Hosts: []string{"shared.ns.svc.cluster.local"},
				Addresses: []netip.Prefix{pfx("10.1.1.1/32")}, Resolution: model.ResolutionStatic,
				Ports: []model.Port{{Name: "https", Protocol: "TCP", Number: 8443}, {Name: "admin", Protocol: "TCP", Number: 1}}},
			{Meta: model.Meta{Namespace: "other", Name: "se"}, Hosts: []string{"web.ns.svc.cluster.local"},
				Addresses: []netip.Prefix{pfx("10.1.1.2/32")}, Resolution: model.ResolutionStatic,
				Ports: []model.Port{{Name: "http", Protocol: "TCP", Number: 8080}}, ExportTo: []string{"."}},
		},
	}
}

// TestServicePortNames: the names of a ClusterIP service's named ports answer as CoreDNS's
// do (an SRV record to the service, its addresses in Additional; _proto.<service> exists with
// no records), next to the same names of ServiceEntries, and the dump and Len list them.
func TestServicePortNames(t *testing.T) {
	tb := build(t, portSnapshot())
	const web = "web.ns.svc.cluster.local."
	owned := func(qname, ns string) []string {
		m, ok := tb.Lookup(qname, ns)
		if !ok {
			return nil
		}
		out := []string{m.Node.Origin()}
		for _, rr := range slices.Concat(m.Node.owned(), m.Node.Extra()) {
			out = append(out, strings.Join(strings.Fields(rr.String()), " "))
		}
		return out
	}
	for _, tc := range []struct {
		qname, ns string
		want      []string // origin, then records and Additional records; nil: no such name
	}{
		{"_http._tcp." + web, "ns", []string{"Service ns/web", "_http._tcp." + web + " 30 IN SRV 0 100 80 " + web,
			web + " 30 IN A 10.96.0.1", web + " 30 IN AAAA fd00::1"}},
		{"_dns._udp." + web, "", []string{"Service ns/web", "_dns._udp." + web + " 30 IN SRV 0 100 53 " + web,
			web + " 30 IN A 10.96.0.1", web + " 30 IN AAAA fd00::1"}},
		{"_dns._tcp." + web, "", []string{"Service ns/web", "_dns._tcp." + web + " 30 IN SRV 0 100 5353 " + web,
			web + " 30 IN A 10.96.0.1", web + " 30 IN AAAA fd00::1"}},
		{"_grpc._sctp." + web, "", []string{"Service ns/web", "_grpc._sctp." + web + " 30 IN SRV 0 100 9 " + web,
			web + " 30 IN A 10.96.0.1", web + " 30 IN AAAA fd00::1"}},
		{"_tcp." + web, "", []string{""}},
		{"_udp." + web, "", []string{""}},
		{"_sctp." + web, "", []string{""}},
		{"_81._tcp." + web, "", nil},
		{"_https._tcp." + web, "", nil},
		{"_http._udp." + web, "", nil},
		{"_http." + web, "", nil},
		{"x._http._tcp." + web, "", nil},
		{"_tcp.unnamed.ns.svc.cluster.local.", "", nil},
		// A ServiceEntry of the client's namespace names the port too and wins, as for the host.
		{"_http._tcp." + web, "other", []string{"ServiceEntry other/se",
			"_http._tcp." + web + " 30 IN SRV 0 100 8080 " + web, web + " 30 IN A 10.1.1.2"}},
		{"_https._tcp.shared.ns.svc.cluster.local.", "ns", []string{"Service ns/shared",
			"_https._tcp.shared.ns.svc.cluster.local. 30 IN SRV 0 100 443 shared.ns.svc.cluster.local.",
			"shared.ns.svc.cluster.local. 30 IN A 10.96.0.2"}},
		{"_admin._tcp.shared.ns.svc.cluster.local.", "ns", []string{"ServiceEntry ns/se",
			"_admin._tcp.shared.ns.svc.cluster.local. 30 IN SRV 0 100 1 shared.ns.svc.cluster.local.",
			"shared.ns.svc.cluster.local. 30 IN A 10.96.0.2"}},
		// A port name of more than one label is a name of its own, as it always was.
		{"_a.b._tcp.dotted.ns.svc.cluster.local.", "", []string{"Service ns/dotted",
			"_a.b._tcp.dotted.ns.svc.cluster.local. 30 IN SRV 0 100 1 dotted.ns.svc.cluster.local.",
			"dotted.ns.svc.cluster.local. 30 IN A 10.96.0.3"}},
	} {
		if got := owned(tc.qname, tc.ns); !slices.Equal(got, tc.want) {
			t.Errorf("Lookup(%s) for namespace %q:\n got %q\nwant %q", tc.qname, tc.ns, got, tc.want)
		}
	}

	// The dump lists each name once per object defining it, and Len counts the names.
	var names []string
	variants := map[string][]string{}
	for _, e := range tb.Dump() {
		if len(names) == 0 || names[len(names)-1] != e.Name {
			names = append(names, e.Name)
		}
		variants[e.Name] = append(variants[e.Name], e.Origin)
	}
	if tb.Len() != len(names) {
		t.Errorf("Len() = %d, the dump lists %d names", tb.Len(), len(names))
	}
	for name, want := range map[string][]string{
		"_http._tcp." + web:  {"Service ns/web", "ServiceEntry other/se"},
		"_dns._udp." + web:   {"Service ns/web"},
		"_dns._tcp." + web:   {"Service ns/web"},
		"_grpc._sctp." + web: {"Service ns/web"},
		"_tcp." + web:        {""},
		"_udp." + web:        {""},
		"_sctp." + web:       {""},
		"_81._tcp." + web:    nil,
		"_https._tcp.shared.ns.svc.cluster.local.": {"Service ns/shared", "ServiceEntry ns/se"},
		"_admin._tcp.shared.ns.svc.cluster.local.": {"ServiceEntry ns/se"},
		"_tcp.shared.ns.svc.cluster.local.":        {""},
		"_a.b._tcp.dotted.ns.svc.cluster.local.":   {"Service ns/dotted"},
		"b._tcp.dotted.ns.svc.cluster.local.":      {""},
		"_tcp.dotted.ns.svc.cluster.local.":        {""},
		"_tcp.unnamed.ns.svc.cluster.local.":       nil,
	} {
		if got := variants[name]; !slices.Equal(got, want) {
			t.Errorf("the dump lists %s from %q, want %q", name, got, want)
		}
	}
}
