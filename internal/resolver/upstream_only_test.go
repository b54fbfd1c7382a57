package resolver_test

import (
	"context"
	"testing"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
)

// TestUpstreamSkipsTable checks that Upstream answers a ServiceEntry host from upstream (the
// real address the VIP forwarder dials), where Query answers it from the table, and that the
// answer is cached like any other.
func TestUpstreamSkipsTable(t *testing.T) {
	up := newUpstream()
	up.records["api.example.com. A"] = []string{"api.example.com. 60 IN A 192.0.2.201"}
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up,
		Cache: cache.New(cache.Options{Size: 100})})
	defer res.Close()
	res.SetTable(loadTable(t, "testdata/registry.yaml"))
	req := new(dns.Msg)
	req.SetQuestion("api.example.com.", dns.TypeA)
	fromTable := res.Query(context.Background(), req.Copy(), resolver.Client{})
	if fromTable.Result != resolver.ResultTable {
		t.Fatalf("Query: result %s, want table", fromTable.Result)
	}
	for _, want := range []resolver.Result{resolver.ResultUpstream, resolver.ResultCacheHit} {
		rep := res.Upstream(context.Background(), req.Copy(), resolver.Client{})
		if rep.Result != want || len(rep.Msg.Answer) != 1 || rep.Msg.Answer[0].(*dns.A).A.String() != "192.0.2.201" {
			t.Errorf("Upstream: %s %v, want %s with 192.0.2.201", rep.Result, rep.Msg.Answer, want)
		}
	}
	if got := up.questions(); len(got) != 1 {
		t.Errorf("forwarded %v, want one question", got)
	}
}
