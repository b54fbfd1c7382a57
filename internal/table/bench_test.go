package table

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
)

// BenchmarkBuild builds the table of 10k and 100k services (+ as many endpoints) and reports
// the live heap the table holds per name (runtime.MemStats after a GC, snapshot excluded).
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk services", n/1000), func(b *testing.B) {
			snap := testutil.ServicesSnapshot(n)
			o := Options{Zone: "cluster.local", TTL: 30 * time.Second, Generation: 1}
			b.ReportAllocs()
			var t *Table
			for b.Loop() {
				t, _ = Build(snap, o)
			}
			held, inuse := heldBytes(snap, o)
			b.ReportMetric(float64(held)/float64(t.Len()), "B/name")
			b.ReportMetric(float64(inuse)/float64(t.Len()), "inuse-B/name")
			b.ReportMetric(float64(t.Len()), "names")
		})
	}
}

// heldBytes is the heap growth that one more table keeps alive: its objects, and the heap's
// spans in use once the build's garbage is collected (what the process keeps of the heap).
func heldBytes(snap model.Snapshot, o Options) (held, inuse uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t, _ := Build(snap, o)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(t)
	return after.HeapAlloc - before.HeapAlloc, after.HeapInuse - before.HeapInuse
}

// workloadSnapshot has n ServiceEntries with workload selectors (STATIC, no addresses) and 10
// pods and one WorkloadEntry per ServiceEntry, over 100 namespaces: every ServiceEntry selects
// its 10 pods and its WorkloadEntry among the pods of its namespace.
func workloadSnapshot(n int) model.Snapshot {
	var s model.Snapshot
	for i := range n {
		ns := fmt.Sprintf("ns-%d", i%100)
		app := map[string]string{"app": fmt.Sprintf("app-%d", i)}
		s.ServiceEntries = append(s.ServiceEntries, model.ServiceEntry{
			Meta: model.Meta{Namespace: ns, Name: fmt.Sprintf("se-%d", i)}, Hosts: []string{fmt.Sprintf("se-%d.example.com", i)},
			Resolution: model.ResolutionStatic, WorkloadSelector: app})
		s.WorkloadEntries = append(s.WorkloadEntries, model.WorkloadEntry{
			Meta:             model.Meta{Namespace: ns, Name: fmt.Sprintf("vm-%d", i)},
			WorkloadEndpoint: model.WorkloadEndpoint{Address: netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}).String(), Labels: app}})
		for j := range 10 {
			k := i*10 + j
			labels := map[string]string{"app": app["app"], "pod-template-hash": fmt.Sprintf("%x", k), "version": "v1"}
			s.Pods = append(s.Pods, model.Pod{Meta: model.Meta{Namespace: ns, Name: fmt.Sprintf("pod-%d", k), Labels: labels},
				IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(k >> 8), byte(k)})}})
		}
	}
	return s
}

// BenchmarkBuildWorkloads builds the table of 1,000 ServiceEntries selecting among 10,000
// pods and 1,000 WorkloadEntries: the cost of workload selection at scale.
func BenchmarkBuildWorkloads(b *testing.B) {
	snap := workloadSnapshot(1000)
	o := Options{Zone: "cluster.local", TTL: 30 * time.Second, Generation: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(snap, o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupReverse looks up the reverse name of a service's cluster IP and of an
// endpoint's address in the table of 100k services: a search of the sorted address index,
// and the PTR node made for the answer.
func BenchmarkLookupReverse(b *testing.B) {
	snap := testutil.ServicesSnapshot(100_000)
	t, err := Build(snap, Options{Zone: "cluster.local", TTL: 30 * time.Second, Generation: 1})
	if err != nil {
		b.Fatal(err)
	}
	svc, ep := snap.Services[54_321].ClusterIPs[0], snap.EndpointSlices[12_345].Endpoints[0].Addresses[0]
	for _, ip := range []netip.Addr{svc, ep} {
		name := reverseName(ip)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if m, ok := t.Lookup(name, "ns-1"); !ok || len(m.Node.Records(dns.TypePTR)) == 0 {
					b.Fatalf("%s: no PTR", name)
				}
			}
		})
	}
}

// BenchmarkLookupPortName looks up a service's named port, _http._tcp.<service>, and the
// _tcp.<service> above it, in the table of 100k services: the service's node found in the
// index, and the node made for the answer.
func BenchmarkLookupPortName(b *testing.B) {
	t, err := Build(testutil.ServicesSnapshot(100_000), Options{Zone: "cluster.local", TTL: 30 * time.Second, Generation: 1})
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"_http._tcp.svc-54321.ns-21.svc.cluster.local.", "_tcp.svc-54321.ns-21.svc.cluster.local."} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := t.Lookup(name, "ns-1"); !ok {
					b.Fatalf("%s: not found", name)
				}
			}
		})
	}
}
