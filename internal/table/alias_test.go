package table

import (
	"slices"
	"testing"

	"github.com/meshdns/meshdns/internal/model"
)

// endpointSnapshot has a headless service with a named endpoint and one named by its address,
// a ClusterIP service with an endpoint, and a service "web" in namespace "pod1" whose short
// name "web.pod1." is also the shape of an endpoint short name.
func endpointSnapshot() model.Snapshot {
	port := []model.Port{{Name: "http", Protocol: "TCP", Number: 80}}
	slice := func(ns, svc string, eps ...model.Endpoint) model.EndpointSlice {
		return model.EndpointSlice{Meta: model.Meta{Namespace: ns, Name: svc + "-x"}, ServiceName: svc, Ports: port, Endpoints: eps}
	}
	return model.Snapshot{
		Services: []model.Service{
			{Meta: model.Meta{Namespace: "ns", Name: "headless-svc"}, Headless: true, Ports: port},
			{Meta: model.Meta{Namespace: "ns", Name: "api"}, ClusterIPs: ips("10.96.0.5"), Ports: port},
			{Meta: model.Meta{Namespace: "pod1", Name: "web"}, ClusterIPs: ips("10.96.0.6")},
			{Meta: model.Meta{Namespace: "ns", Name: "pod1"}, Headless: true, Ports: port},
		},
		EndpointSlices: []model.EndpointSlice{
			slice("ns", "headless-svc",
				model.Endpoint{Hostname: "pod1", Addresses: ips("10.0.0.1"), Ready: true},
				model.Endpoint{Addresses: ips("10.0.0.2"), Ready: true}),
			slice("ns", "api", model.Endpoint{Hostname: "api-0", Addresses: ips("10.0.0.3"), Ready: true}),
			slice("ns", "pod1", model.Endpoint{Hostname: "web", Addresses: ips("10.0.0.4"), Ready: true}),
		},
	}
}

// TestEndpointShortNames: an endpoint name answers by its short forms ep.svc.ns.,
// ep.svc.ns.svc. and, for clients of its namespace, ep.svc., as a CNAME to its FQDN, as a
// service's svc.ns. does (Istio's sidecar and ztunnel expand the same forms).
func TestEndpointShortNames(t *testing.T) {
	tb := build(t, endpointSnapshot())
	const fqdn = "pod1.headless-svc.ns.svc.cluster.local."
	for _, tc := range []struct {
		qname, ns, want string // want: the FQDN answered, "" for no match
	}{
		{"pod1.headless-svc.ns.", "other", fqdn},
		{"pod1.headless-svc.ns.", "", fqdn},
		{"pod1.headless-svc.ns.svc.", "other", fqdn},
		{"pod1.headless-svc.", "ns", fqdn},
		{"pod1.headless-svc.", "other", ""},
		{"pod1.headless-svc.", "", ""},
		{"10-0-0-2.headless-svc.ns.", "other", "10-0-0-2.headless-svc.ns.svc.cluster.local."},
		{"api-0.api.ns.svc.", "other", "api-0.api.ns.svc.cluster.local."},
		// Not endpoints: names under a service that are no endpoint, unknown names, longer forms.
		{"_tcp.headless-svc.ns.", "other", ""},
		{"nope.headless-svc.ns.", "other", ""},
		{"pod1.nope.ns.", "other", ""},
		{"pod1.headless-svc.ns.svc.cluster.", "other", ""},
		{"pod1.headless-svc.ns.nope.", "other", ""},
		// A service's short name comes first: web.pod1. is service web of namespace pod1, not
		// endpoint web of service pod1 in the client's namespace.
		{"web.pod1.", "ns", "web.pod1.svc.cluster.local."},
		{"headless-svc.ns.", "other", "headless-svc.ns.svc.cluster.local."},
	} {
		m, ok := tb.Lookup(tc.qname, tc.ns)
		got := ""
		if ok {
			got = m.Node.Name
			if m.Kind != Alias {
				t.Errorf("%s from %q: kind %d, want Alias (answered with a CNAME)", tc.qname, tc.ns, m.Kind)
			}
		}
		if got != tc.want {
			t.Errorf("%s from %q: %q, want %q", tc.qname, tc.ns, got, tc.want)
		}
	}
}

// TestEndpointShortNamesInDump: /debug/table lists an endpoint's short names with it.
func TestEndpointShortNamesInDump(t *testing.T) {
	for _, e := range build(t, endpointSnapshot()).Dump() {
		if e.Name != "pod1.headless-svc.ns.svc.cluster.local." {
			continue
		}
		want := []string{"pod1.headless-svc. (namespace ns)", "pod1.headless-svc.ns.", "pod1.headless-svc.ns.svc."}
		if !slices.Equal(e.Aliases, want) {
			t.Errorf("aliases = %q, want %q", e.Aliases, want)
		}
		return
	}
	t.Fatal("endpoint missing from dump")
}

// BenchmarkLookupEndpointShortName: resolving an endpoint's short name through the service
// index costs no allocation.
func BenchmarkLookupEndpointShortName(b *testing.B) {
	tb, err := Build(endpointSnapshot(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := tb.Lookup("pod1.headless-svc.ns.", "other"); !ok {
			b.Fatal("no match")
		}
	}
}

func TestEndpointShortNameAllocations(t *testing.T) {
	tb := build(t, endpointSnapshot())
	for _, q := range []string{"pod1.headless-svc.ns.", "pod1.headless-svc.", "headless-svc.ns.", "headless-svc.", "www.example.com."} {
		if n := testing.AllocsPerRun(100, func() { tb.Lookup(q, "ns") }); n != 0 {
			t.Errorf("Lookup(%s) allocates %.0f times", q, n)
		}
	}
}
