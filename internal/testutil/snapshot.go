package testutil

import (
	"fmt"
	"net/netip"

	"github.com/meshdns/meshdns/internal/model"
)

// ServicesSnapshot has n ClusterIP services with one named port, spread over 100
// namespaces, each with an EndpointSlice of one ready endpoint: the shape of the table
// benchmarks and of the tests that need a large table.
func ServicesSnapshot(n int) model.Snapshot {
	var s model.Snapshot
	for i := range n {
		ns, name := fmt.Sprintf("ns-%d", i%100), fmt.Sprintf("svc-%d", i)
		ip := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})
		ep := netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)})
		port := model.Port{Name: "http", Protocol: "TCP", Number: 8080}
		s.Services = append(s.Services, model.Service{Meta: model.Meta{Namespace: ns, Name: name},
			Type: model.ServiceTypeClusterIP, ClusterIPs: []netip.Addr{ip}, Ports: []model.Port{port}})
		s.EndpointSlices = append(s.EndpointSlices, model.EndpointSlice{
			Meta: model.Meta{Namespace: ns, Name: name + "-abcde"}, ServiceName: name,
			Ports: []model.Port{port}, Endpoints: []model.Endpoint{{Addresses: []netip.Addr{ep}, Ready: true}}})
	}
	return s
}
