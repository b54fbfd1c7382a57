package resolver_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
)

// sharedHostDocs name shared.example.com in three namespaces, and give hosts of two
// namespaces one VIP in status.addresses. team-a's entries are the oldest.
var sharedHostDocs = []string{`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shared, namespace: team-b, creationTimestamp: "2026-01-02T00:00:00Z"}
spec: {hosts: [shared.example.com], addresses: [192.0.2.12], resolution: STATIC}
`, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shared, namespace: team-a, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {hosts: [shared.example.com], addresses: [192.0.2.11], resolution: STATIC}
`, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shared, namespace: team-c, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {hosts: [shared.example.com], addresses: [192.0.2.13], resolution: STATIC}
`, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vip, namespace: team-b, creationTimestamp: "2026-01-02T00:00:00Z"}
spec: {hosts: [b.vip.example.com], resolution: DNS}
status: {addresses: [{value: 240.240.0.20, host: b.vip.example.com}]}
`, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vip, namespace: team-a, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {hosts: [a.vip.example.com], resolution: DNS}
status: {addresses: [{value: 240.240.0.20, host: a.vip.example.com}]}
`}

// writeRegistry writes docs as one multi-document registry file.
func writeRegistry(t *testing.T, docs []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServiceEntryPrecedenceFileOrder: a registry file answers a host shared by several
// namespaces, and the PTR of a shared VIP, alike in document order and reversed: the client's
// own namespace first, else the oldest entry, then namespace order.
func TestServiceEntryPrecedenceFileOrder(t *testing.T) {
	const A, ok = dns.TypeA, dns.RcodeSuccess
	cases := []answerCase{
		{name: "own namespace", ns: "team-b", qname: "shared.example.com.", qtype: A, rcode: ok,
			answer: []string{"shared.example.com. 30 IN A 192.0.2.12"}},
		{name: "another namespace: the oldest", ns: "prod", qname: "shared.example.com.", qtype: A, rcode: ok,
			answer: []string{"shared.example.com. 30 IN A 192.0.2.11"}},
		{name: "unknown namespace: the oldest", ns: "-", qname: "shared.example.com.", qtype: A, rcode: ok,
			answer: []string{"shared.example.com. 30 IN A 192.0.2.11"}},
	}
	reversed := slices.Clone(sharedHostDocs)
	slices.Reverse(reversed)
	for name, docs := range map[string][]string{"document order": sharedHostDocs, "reversed": reversed} {
		t.Run(name, func(t *testing.T) {
			tb := loadTable(t, writeRegistry(t, docs))
			runCases(t, resolver.Options{}, tb, cases)
			res := resolver.New(resolver.Options{Forwarder: newUpstream(), Zone: "cluster.local"})
			res.SetTable(tb)
			addr := startServer(t, res, "prod")
			for _, network := range []string{"udp", "tcp"} {
				req := new(dns.Msg)
				req.SetQuestion("20.0.240.240.in-addr.arpa.", dns.TypePTR)
				resp := exchange(t, addr, network, req)
				if len(resp.Answer) != 2 || resp.Answer[0].(*dns.PTR).Ptr != "a.vip.example.com." {
					t.Errorf("%s: PTR of the shared VIP = %v, want the oldest entry's host first", network, resp.Answer)
				}
			}
		})
	}
}
