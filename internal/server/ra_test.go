package server

import (
	"net/netip"
	"testing"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/miekg/dns"
)

// startNoRecursionUpstream serves, on loopback UDP and TCP, a server that answers every A
// question with one record and RA clear, as an authoritative-only upstream does.
func startNoRecursionUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, l, err := testutil.ListenBoth()
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.RecursionAvailable = false
		rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A 192.0.2.7")
		m.Answer = []dns.RR{rr}
		w.WriteMsg(m)
	})
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// TestRecursionAvailableOnEveryReply: meshdns offers recursion to its clients, so every reply
// has RA set whatever the RD bit, as BIND sets it whenever recursion is allowed to the client:
// the first (forwarded) answer from an upstream that clears RA, its cached repeats (fast path
// and general path), the not-ready SERVFAIL, a table answer and a rejection.
func TestRecursionAvailableOnEveryReply(t *testing.T) {
	fwd := upstream.New([]netip.AddrPort{startNoRecursionUpstream(t)}, upstream.Options{})
	t.Cleanup(fwd.Close)
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: fwd, Cache: cache.New(cache.Options{})})
	t.Cleanup(res.Close)
	addr := startWith(t, res, Options{})
	ask := func(t *testing.T, network, name string, rd bool, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.RecursionDesired = rd
		return exchange(t, network, addr, m)
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, rd := range []bool{true, false} {
			name := network + map[bool]string{true: ".rd", false: ".nord"}[rd] + ".example.net."
			t.Run(name, func(t *testing.T) {
				// Before the first table: a zone name is SERVFAIL, others are forwarded.
				check(t, "not ready", ask(t, network, "web.prod.svc.cluster.local.", rd, dns.TypeA), dns.RcodeServerFailure)
				for _, step := range []string{"forwarded", "cached", "cached again"} {
					check(t, step, ask(t, network, name, rd, dns.TypeA), dns.RcodeSuccess)
				}
				check(t, "rejected", ask(t, network, name, rd, dns.TypeAXFR), dns.RcodeRefused)
			})
		}
	}
	res.SetTable(buildTable(t, "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: prod}\nspec: {clusterIP: 10.96.0.1}\n", 1))
	for _, network := range []string{"udp", "tcp"} {
		for range 3 {
			check(t, network+" table answer", ask(t, network, "web.prod.svc.cluster.local.", false, dns.TypeA), dns.RcodeSuccess)
		}
	}
}

func check(t *testing.T, step string, resp *dns.Msg, rcode int) {
	t.Helper()
	if resp.Rcode != rcode || !resp.RecursionAvailable {
		t.Errorf("%s: rcode %s, RA %v; want %s with RA", step, dns.RcodeToString[resp.Rcode], resp.RecursionAvailable, dns.RcodeToString[rcode])
	}
}
