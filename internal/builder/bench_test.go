package builder

import (
	"context"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// BenchmarkUpdateToAnswer measures the time from a source signalling a change to a table that
// answers with it being published, debounce (DefaultDebounce) included, and reports the p99.
func BenchmarkUpdateToAnswer(b *testing.B) {
	src := &fakeSource{ch: make(chan struct{}, 1)}
	src.snap = model.Snapshot{Services: []model.Service{{Meta: model.Meta{Namespace: "ns", Name: "svc"},
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.0.0.0")}}}}
	published := make(chan *table.Table, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(Options{Table: table.Options{Zone: "cluster.local", TTL: time.Second}, Snapshot: src.Snapshot,
			Changed: src.ch, Publish: func(t *table.Table) { published <- t }}).Run(ctx)
	}()
	<-published
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		start := time.Now()
		src.set(ip.String())
		for t := <-published; ; t = <-published {
			if m, ok := t.Lookup("svc.ns.svc.cluster.local.", ""); ok && rrIP(m.Node) == ip {
				break
			}
		}
		took = append(took, time.Since(start))
	}
	cancel()
	<-done
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

func rrIP(n *table.Node) netip.Addr {
	ip, _ := netip.AddrFromSlice(n.Records(dns.TypeA)[0].(*dns.A).A.To4())
	return ip
}
