package table

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
)

// syntheticSnapshot has n ClusterIP services with one named port and n endpoints: services
// spread over 100 namespaces, each with an EndpointSlice of one ready endpoint.
func syntheticSnapshot(n int) model.Snapshot {
	var s model.Snapshot
	for i := range n {
		ns := fmt.Sprintf("ns-%d", i%100)
		name := fmt.Sprintf("svc-%d", i)
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

// BenchmarkBuild builds the table of 10k and 100k services (+ as many endpoints) and reports
// the live heap the table holds per name (runtime.MemStats after a GC, snapshot excluded).
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk services", n/1000), func(b *testing.B) {
			snap := syntheticSnapshot(n)
			o := Options{Zone: "cluster.local", TTL: 30 * time.Second, Generation: 1}
			b.ReportAllocs()
			var t *Table
			for b.Loop() {
				t, _ = Build(snap, o)
			}
			b.ReportMetric(float64(heldBytes(snap, o))/float64(t.Len()), "B/name")
			b.ReportMetric(float64(t.Len()), "names")
		})
	}
}

// heldBytes is the heap growth that one more table keeps alive.
func heldBytes(snap model.Snapshot, o Options) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t, _ := Build(snap, o)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(t)
	return after.HeapAlloc - before.HeapAlloc
}
