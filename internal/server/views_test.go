package server

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/internal/resolver"
)

const viewsRegistry = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec: {clusterIP: 10.96.1.1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: b}
spec: {clusterIP: 10.96.1.2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: a}
spec:
  hosts: [private.example.com]
  addresses: [192.0.2.9]
  resolution: STATIC
  endpoints: [{address: 192.0.2.9}]
  exportTo: ["."]
`

func clientOf(ns string) resolver.Client {
	return resolver.Client{Namespace: ns, Search: []string{ns + ".svc.cluster.local.", "svc.cluster.local.", "cluster.local."}}
}

// answers asks name from src, and returns the rcode and the A records' addresses.
func answers(t *testing.T, src, addr, name string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	resp, _ := exchangeFrom(t, "udp", src, addr, m)
	var out []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return dns.RcodeToString[resp.Rcode] + " " + strings.Join(out, ",")
}

// TestViewsByClientAddress: with Views, each source address is answered in its own context,
// and a reply packed for one context is never sent to another (asked twice, so that the
// second answer comes from the fast path).
func TestViewsByClientAddress(t *testing.T) {
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: &countingUpstream{}})
	res.SetTable(buildTable(t, viewsRegistry, 1))
	views := NewViews()
	views.Set(map[netip.Addr]resolver.Client{
		netip.MustParseAddr("127.0.0.2"): clientOf("a"),
		netip.MustParseAddr("127.0.0.3"): clientOf("b"),
		netip.MustParseAddr("127.0.0.4"): clientOf("a"),
	})
	reg := prometheus.NewRegistry()
	srv := New(res, Options{Listen: []string{"127.0.0.1:0"}, Views: views, Metrics: NewMetrics(reg)})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	addr := srv.Addrs()[0]
	for _, tc := range []struct{ src, name, want string }{
		{"127.0.0.2", "web.", "NOERROR 10.96.1.1"},
		{"127.0.0.3", "web.", "NOERROR 10.96.1.2"},
		{"127.0.0.4", "web.", "NOERROR 10.96.1.1"},
		{"127.0.0.2", "private.example.com.", "NOERROR 192.0.2.9"},
		{"127.0.0.3", "private.example.com.", "NXDOMAIN "},
		// No view: the server's Client, here of no namespace: no short names.
		{"127.0.0.1", "private.example.com.", "NXDOMAIN "},
	} {
		for i := range 3 {
			if got := answers(t, tc.src, addr, tc.name); got != tc.want {
				t.Errorf("%s from %s (time %d): %s, want %s", tc.name, tc.src, i+1, got, tc.want)
			}
		}
	}
	// A pod's address moving to another namespace's pod: its answers follow at once.
	views.Set(map[netip.Addr]resolver.Client{netip.MustParseAddr("127.0.0.2"): clientOf("b")})
	if got := answers(t, "127.0.0.2", addr, "web."); got != "NOERROR 10.96.1.2" {
		t.Errorf("after the address moved to namespace b: %s", got)
	}
	if got := answers(t, "127.0.0.2", addr, "private.example.com."); got != "NXDOMAIN " {
		t.Errorf("after the address moved to namespace b, a's private entry: %s", got)
	}
	if fast := counterValue(t, reg, "meshdns_queries_total", "protocol=udp,qtype=A,rcode=NOERROR,result=table"); fast < 6 {
		t.Errorf("%v table answers counted; the fast path may not have been taken", fast)
	}
}

func TestViewsShareNumbersByContext(t *testing.T) {
	v := NewViews()
	v.Set(map[netip.Addr]resolver.Client{
		netip.MustParseAddr("10.0.0.1"):        clientOf("a"),
		netip.MustParseAddr("10.0.0.2"):        clientOf("a"),
		netip.MustParseAddr("::ffff:10.0.0.3"): clientOf("b"),
	})
	a1, a2, b := v.lookup(netip.MustParseAddr("10.0.0.1")), v.lookup(netip.MustParseAddr("10.0.0.2")), v.lookup(netip.MustParseAddr("10.0.0.3"))
	if a1 == nil || a2 == nil || b == nil {
		t.Fatalf("lookups: %v %v %v (a mapped address must be found by its IPv4 form)", a1, a2, b)
	}
	if a1.id != a2.id || a1.id == b.id || a1.id == 0 || b.id == 0 {
		t.Errorf("view numbers a %d, a %d, b %d: one per context, never 0", a1.id, a2.id, b.id)
	}
	v.Set(map[netip.Addr]resolver.Client{netip.MustParseAddr("10.0.0.9"): clientOf("b")})
	if got := v.lookup(netip.MustParseAddr("10.0.0.9")); got.id != b.id {
		t.Errorf("context b renumbered from %d to %d: the fast path's entries would be lost", b.id, got.id)
	}
	if v.lookup(netip.MustParseAddr("10.0.0.1")) != nil {
		t.Error("an address dropped from the views still has one")
	}
}
