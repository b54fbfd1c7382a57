package resolver_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
)

// BenchmarkResolve measures Resolve alone (no sockets, no packing) for each kind of answer.
func BenchmarkResolve(b *testing.B) {
	up := &switchUpstream{addr: "192.0.2.80"}
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up,
		Cache: cache.New(cache.Options{ServeStale: time.Hour})})
	res.SetTable(loadTable(b, "testdata/registry.yaml"))
	client := resolver.Client{Namespace: "prod", Search: search("prod")}
	for _, bc := range []struct {
		name, qname string
		qtype       uint16
	}{
		{"table hit", "reviews.prod.svc.cluster.local.", dns.TypeA},
		{"headless", "db.store.svc.cluster.local.", dns.TypeA},
		{"autopath", "api.example.com.prod.svc.cluster.local.", dns.TypeA},
		{"NXDOMAIN", "nope.store.svc.cluster.local.", dns.TypeA},
		{"cache hit", "www.example.org.", dns.TypeA},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := new(dns.Msg)
			req.SetQuestion(bc.qname, bc.qtype)
			res.Resolve(context.Background(), req, client) // warm the cache
			b.ReportAllocs()
			for b.Loop() {
				res.Resolve(context.Background(), req, client)
			}
		})
	}
	if n := up.asked.Load(); n != 1 {
		b.Errorf("upstream asked %d times, want 1 (the warm-up)", n)
	}
}
