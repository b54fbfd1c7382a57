package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil/dnsmasq"
)

// soa is the cluster zone's SOA as dig prints it, serial masked (see normalizeRR).
const soa = "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. N 7200 1800 86400 30"

// upstreamArgs make dnsmasq the authority of example.com: the names below answer, every
// other name under example.com is NXDOMAIN, and nothing is forwarded further.
var upstreamArgs = []string{
	"--local=/example.com/", "--local-ttl=60",
	"--host-record=db.legacy.example.com,192.0.2.200",
	"--host-record=www.example.com,192.0.2.80",
}

// TestExampleRecords serves examples/registry to a client in namespace bookinfo (from
// examples/resolv.conf) and checks one case per kind of record of docs/records.md (Records),
// plus its Answer rules, autopath (Client context and autopath) and exportTo (Visibility).
func TestExampleRecords(t *testing.T) {
	need(t, "dig")
	up := dnsmasq.Start(t, upstreamArgs...)
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), up.String())})
	const apiSOA = "api.payments.example.com. 30 IN SOA ns.dns.api.payments.example.com. hostmaster.api.payments.example.com. N 7200 1800 86400 30"
	runCases(t, srv.dnsPort, []dnsCase{
		// Services.
		{name: "ClusterIP A", qname: "reviews.bookinfo.svc.cluster.local.", qtype: "A", rcode: "NOERROR", kdig: true,
			answer: []string{"reviews.bookinfo.svc.cluster.local. 30 IN A 10.96.10.20"}},
		{name: "dual-stack AAAA", qname: "reviews.bookinfo.svc.cluster.local.", qtype: "AAAA", rcode: "NOERROR",
			answer: []string{"reviews.bookinfo.svc.cluster.local. 30 IN AAAA fd00:10:96::20"}},
		{name: "headless: ready endpoints only", qname: "mysql.data.svc.cluster.local.", qtype: "A", rcode: "NOERROR", kdig: true,
			answer: []string{"mysql.data.svc.cluster.local. 30 IN A 10.244.1.21", "mysql.data.svc.cluster.local. 30 IN A 10.244.2.22",
				"mysql.data.svc.cluster.local. 30 IN A 10.244.3.23"}},
		{name: "endpoint hostname", qname: "mysql-0.mysql.data.svc.cluster.local.", qtype: "A", rcode: "NOERROR",
			answer: []string{"mysql-0.mysql.data.svc.cluster.local. 30 IN A 10.244.1.21"}},
		{name: "endpoint name from pod hostname and subdomain", qname: "mysql-2.mysql.data.svc.cluster.local.", qtype: "A", rcode: "NOERROR",
			answer: []string{"mysql-2.mysql.data.svc.cluster.local. 30 IN A 10.244.3.23"}},
		{name: "not-ready endpoint hostname is unknown", qname: "mysql-3.mysql.data.svc.cluster.local.", qtype: "A", rcode: "NXDOMAIN",
			authority: []string{soa}},
		{name: "ExternalName to an external name, chased upstream", qname: "legacy-db.data.svc.cluster.local.", qtype: "A", rcode: "NOERROR",
			forwarded: true,
			answer: []string{"legacy-db.data.svc.cluster.local. 30 IN CNAME db.legacy.example.com.",
				"db.legacy.example.com. 60 IN A 192.0.2.200"}},
		{name: "ExternalName to an in-cluster name", qname: "cache.data.svc.cluster.local.", qtype: "A", rcode: "NOERROR",
			answer: []string{"cache.data.svc.cluster.local. 30 IN CNAME redis.data.svc.cluster.local.",
				"redis.data.svc.cluster.local. 30 IN A 10.96.20.30"}},
		{name: "SRV headless: one per ready endpoint", qname: "_mysql._tcp.mysql.data.svc.cluster.local.", qtype: "SRV", rcode: "NOERROR", kdig: true,
			answer: []string{
				"_mysql._tcp.mysql.data.svc.cluster.local. 30 IN SRV 0 33 3306 mysql-0.mysql.data.svc.cluster.local.",
				"_mysql._tcp.mysql.data.svc.cluster.local. 30 IN SRV 0 33 3306 mysql-1.mysql.data.svc.cluster.local.",
				"_mysql._tcp.mysql.data.svc.cluster.local. 30 IN SRV 0 33 3306 mysql-2.mysql.data.svc.cluster.local."},
			additional: []string{"mysql-0.mysql.data.svc.cluster.local. 30 IN A 10.244.1.21",
				"mysql-1.mysql.data.svc.cluster.local. 30 IN A 10.244.2.22", "mysql-2.mysql.data.svc.cluster.local. 30 IN A 10.244.3.23"}},
		{name: "SRV ClusterIP", qname: "_http._tcp.details.bookinfo.svc.cluster.local.", qtype: "SRV", rcode: "NOERROR",
			answer:     []string{"_http._tcp.details.bookinfo.svc.cluster.local. 30 IN SRV 0 100 9080 details.bookinfo.svc.cluster.local."},
			additional: []string{"details.bookinfo.svc.cluster.local. 30 IN A 10.96.10.40"}},
		{name: "PTR of a cluster IP", qname: "20.10.96.10.in-addr.arpa.", qtype: "PTR", rcode: "NOERROR",
			answer: []string{"20.10.96.10.in-addr.arpa. 30 IN PTR reviews.bookinfo.svc.cluster.local."}},
		{name: "PTR of a v6 cluster IP", qname: "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: "PTR", rcode: "NOERROR",
			answer: []string{"0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 30 IN PTR reviews.bookinfo.svc.cluster.local."}},
		{name: "PTR of an endpoint", qname: "21.1.244.10.in-addr.arpa.", qtype: "PTR", rcode: "NOERROR",
			answer: []string{"21.1.244.10.in-addr.arpa. 30 IN PTR mysql-0.mysql.data.svc.cluster.local."}},
		{name: "PTR of an endpoint of a ClusterIP service (as CoreDNS)", qname: "11.1.244.10.in-addr.arpa.", qtype: "PTR", rcode: "NOERROR",
			answer: []string{"11.1.244.10.in-addr.arpa. 30 IN PTR 10-244-1-11.reviews.bookinfo.svc.cluster.local."}},
		{name: "endpoint name of a ClusterIP service", qname: "10-244-1-11.reviews.bookinfo.svc.cluster.local.", qtype: "A", rcode: "NOERROR",
			answer: []string{"10-244-1-11.reviews.bookinfo.svc.cluster.local. 30 IN A 10.244.1.11"}},
		{name: "pod A", qname: "10-244-1-11.bookinfo.pod.cluster.local.", qtype: "A", rcode: "NOERROR",
			answer: []string{"10-244-1-11.bookinfo.pod.cluster.local. 30 IN A 10.244.1.11"}},
		// ServiceEntries and WorkloadEntries.
		{name: "ServiceEntry with address", qname: "api.payments.example.com.", qtype: "A", rcode: "NOERROR",
			answer: []string{"api.payments.example.com. 30 IN A 203.0.113.10"}},
		{name: "ServiceEntry STATIC endpoints", qname: "memcache.corp.example.com.", qtype: "A", rcode: "NOERROR",
			answer: []string{"memcache.corp.example.com. 30 IN A 192.0.2.60", "memcache.corp.example.com. 30 IN A 192.0.2.61"}},
		{name: "WorkloadEntries selected, exported to bookinfo", qname: "billing.vms.example.com.", qtype: "A", rcode: "NOERROR",
			answer: []string{"billing.vms.example.com. 30 IN A 192.0.2.50", "billing.vms.example.com. 30 IN A 192.0.2.51"}},
		{name: "exportTo hides: forwarded", qname: "admin.vms.example.com.", qtype: "A", rcode: "NXDOMAIN",
			forwarded: true, anyAuthority: true},
		{name: "wildcard owned by the query name", qname: "anything.internal.example.com.", qtype: "A", rcode: "NOERROR",
			answer: []string{"anything.internal.example.com. 30 IN A 198.51.100.7"}},
		{name: "wildcard deeper, case kept", qname: "a.B.Internal.example.com.", qtype: "A", rcode: "NOERROR",
			answer: []string{"a.B.Internal.example.com. 30 IN A 198.51.100.7"}},
		{name: "ServiceEntry SRV", qname: "_https._tcp.api.payments.example.com.", qtype: "SRV", rcode: "NOERROR",
			answer:     []string{"_https._tcp.api.payments.example.com. 30 IN SRV 0 100 443 api.payments.example.com."},
			additional: []string{"api.payments.example.com. 30 IN A 203.0.113.10"}},
		// Short names relative to the client's namespace.
		{name: "short name svc", qname: "reviews.", qtype: "A", rcode: "NOERROR",
			answer: []string{"reviews. 30 IN CNAME reviews.bookinfo.svc.cluster.local.",
				"reviews.bookinfo.svc.cluster.local. 30 IN A 10.96.10.20"}},
		{name: "short name svc.ns", qname: "mysql.data.", qtype: "A", rcode: "NOERROR",
			answer: []string{"mysql.data. 30 IN CNAME mysql.data.svc.cluster.local.",
				"mysql.data.svc.cluster.local. 30 IN A 10.244.1.21", "mysql.data.svc.cluster.local. 30 IN A 10.244.2.22",
				"mysql.data.svc.cluster.local. 30 IN A 10.244.3.23"}},
		// Answer rules.
		{name: "NODATA", qname: "ratings.bookinfo.svc.cluster.local.", qtype: "AAAA", rcode: "NOERROR",
			authority: []string{soa}},
		{name: "NXDOMAIN in the zone", qname: "nope.bookinfo.svc.cluster.local.", qtype: "A", rcode: "NXDOMAIN", kdig: true,
			authority: []string{soa}},
		{name: "autopath A", qname: "api.payments.example.com.bookinfo.svc.cluster.local.", qtype: "A", rcode: "NOERROR", kdig: true,
			answer: []string{"api.payments.example.com.bookinfo.svc.cluster.local. 30 IN CNAME api.payments.example.com.",
				"api.payments.example.com. 30 IN A 203.0.113.10"}},
		{name: "autopath AAAA", qname: "api.payments.example.com.bookinfo.svc.cluster.local.", qtype: "AAAA", rcode: "NOERROR",
			answer:    []string{"api.payments.example.com.bookinfo.svc.cluster.local. 30 IN CNAME api.payments.example.com."},
			authority: []string{apiSOA}},
		{name: "autopath svc.ns", qname: "mysql.data.bookinfo.svc.cluster.local.", qtype: "A", rcode: "NOERROR",
			answer: []string{"mysql.data.bookinfo.svc.cluster.local. 30 IN CNAME mysql.data.svc.cluster.local.",
				"mysql.data.svc.cluster.local. 30 IN A 10.244.1.21", "mysql.data.svc.cluster.local. 30 IN A 10.244.2.22",
				"mysql.data.svc.cluster.local. 30 IN A 10.244.3.23"}},
		{name: "0x20 case preserved", qname: "ReViEwS.BookInfo.svc.cluster.local.", qtype: "A", rcode: "NOERROR",
			answer: []string{"ReViEwS.BookInfo.svc.cluster.local. 30 IN A 10.96.10.20"}},
	})
}

// bigTXT is a TXT record of 8 strings of 121 bytes: about 1000 bytes, over the 512 bytes of a
// UDP reply without EDNS.
var bigTXT = func() []string {
	var s []string
	for i := range 8 {
		s = append(s, fmt.Sprintf("%d%s", i, strings.Repeat("x", 120)))
	}
	return s
}()

// TestForwarding checks names meshdns does not own against a real dnsmasq upstream: rcode
// passthrough, a forwarded answer, and a reply too big for 512 bytes.
func TestForwarding(t *testing.T) {
	need(t, "dig")
	args := append([]string{}, upstreamArgs...)
	args = append(args, "--txt-record=big.example.com,"+strings.Join(bigTXT, ","))
	up := dnsmasq.Start(t, args...)
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), up.String())})

	runCases(t, srv.dnsPort, []dnsCase{
		{name: "NXDOMAIN passthrough", qname: "nothere.example.com.", qtype: "A", rcode: "NXDOMAIN",
			forwarded: true, anyAuthority: true, kdig: true},
		{name: "A forwarded", qname: "www.example.com.", qtype: "A", rcode: "NOERROR", forwarded: true, kdig: true,
			answer: []string{"www.example.com. 60 IN A 192.0.2.80"}},
	})

	wantTXT := `big.example.com. TTL IN TXT "` + strings.Join(bigTXT, `" "`) + `"`
	for _, tc := range []struct {
		name  string
		c     client
		extra []string
		tc    bool // truncated, no records
	}{
		{"no EDNS: truncated", digUDP, []string{"+noedns", "+ignore"}, true},
		{"EDNS 4096: whole", digUDP, []string{"+edns=0", "+bufsize=4096", "+ignore"}, false},
		{"TCP: whole", digTCP, nil, false},
		{"kdig EDNS 4096: whole", kdigUDP, []string{"+edns=0", "+bufsize=4096", "+ignore"}, false},
		{"kdig TCP: whole", kdigTCP, nil, false},
	} {
		t.Run("big TXT/"+tc.name, func(t *testing.T) {
			r := ask(t, tc.c, srv.dnsPort, "big.example.com.", "TXT", tc.extra...)
			if r.status != "NOERROR" {
				t.Errorf("status %s, want NOERROR\n%s", r.status, r.output)
			}
			if r.flags["tc"] != tc.tc {
				t.Errorf("tc flag = %v, want %v\n%s", r.flags["tc"], tc.tc, r.output)
			}
			if tc.tc {
				return // what part of the record a truncated reply holds is up to the server
			}
			if got := anyTTL(r.answer); !slices.Equal(got, []string{wantTXT}) {
				t.Errorf("answer:\n got %q\nwant %q", got, []string{wantTXT})
			}
		})
	}
}
