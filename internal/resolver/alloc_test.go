package resolver_test

import (
	"context"
	"testing"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
)

// TestAllocationBudget guards the allocations of a table hit in Resolve (the server's packing
// comes on top). The budget, one line per allocation:
//  1. the response message (new dns.Msg);
//  2. its question section (dns.Msg.SetReply makes a one-element slice);
//  3. the answer section's slice;
//  4. the copy of the A record that takes the question's spelling as owner.
//
// Repeated questions do not come here: the server's fast path answers them from the packed
// reply with no allocation at all (server.TestFastPathAllocations). This budget is for the
// first query of a question per table; a fifth allocation is a regression.
func TestAllocationBudget(t *testing.T) {
	res := resolver.New(resolver.Options{Zone: "cluster.local"})
	res.SetTable(loadTable(t, "testdata/registry.yaml"))
	req := new(dns.Msg)
	req.SetQuestion("reviews.prod.svc.cluster.local.", dns.TypeA)
	c := resolver.Client{Namespace: "prod", Search: search("prod")}
	allocs := testing.AllocsPerRun(1000, func() { res.Resolve(context.Background(), req, c) })
	if allocs > 4 {
		t.Errorf("a table hit allocates %.1f times, budget 4", allocs)
	}
}
