package resolver_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/manifest"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/server"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	soa   = "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30"
	upSOA = "example.org. 60 IN SOA ns.example.org. hostmaster.example.org. 1 7200 1800 86400 60"
)

// fakeUpstream answers forwarded questions from a fixed zone and counts them; everything it
// does not know is NXDOMAIN.
type fakeUpstream struct {
	mu      sync.Mutex
	records map[string][]string // "name. TYPE" -> answers
	asked   []string
}

func (f *fakeUpstream) Forward(_ context.Context, req *dns.Msg, _ upstream.Via) (*dns.Msg, error) {
	q := req.Question[0]
	key := dnsname.Lower(q.Name) + " " + dns.TypeToString[q.Qtype]
	f.mu.Lock()
	f.asked = append(f.asked, key)
	f.mu.Unlock()
	if strings.HasPrefix(key, "unreachable.") {
		return nil, fmt.Errorf("upstream 192.0.2.53:53: i/o timeout")
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	rrs, ok := f.records[key]
	if !ok {
		m.Rcode = dns.RcodeNameError
		for k := range f.records {
			if strings.HasPrefix(k, dnsname.Lower(q.Name)+" ") {
				m.Rcode = dns.RcodeSuccess // the name exists: NODATA
			}
		}
		soa, _ := dns.NewRR(upSOA)
		m.Ns = []dns.RR{soa}
	}
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			return nil, err
		}
		rr.Header().Name = q.Name
		m.Answer = append(m.Answer, rr)
	}
	return m, nil
}

// questions returns what was forwarded so far.
func (f *fakeUpstream) questions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.asked)
}

func newUpstream() *fakeUpstream {
	return &fakeUpstream{records: map[string][]string{
		"db.legacy.example.com. A":       {"db.legacy.example.com. 60 IN A 192.0.2.200"},
		"resolved.example.com. A":        {"resolved.example.com. 60 IN A 192.0.2.201"},
		"example.org. A":                 {"example.org. 60 IN A 192.0.2.202"},
		"wild.example.com. A":            {"wild.example.com. 60 IN A 192.0.2.203"},
		"private.example.com. A":         {"private.example.com. 60 IN A 192.0.2.204"},
		"ghost.cluster.local. A":         {"ghost.cluster.local. 60 IN A 192.0.2.205"},
		"gone.prod.svc.cluster.local. A": {"gone.prod.svc.cluster.local. 60 IN A 192.0.2.206"},
		"version.bind. TXT":              {`version.bind. 0 CH TXT "x"`},
		"10.2.0.192.in-addr.arpa. PTR":   {"10.2.0.192.in-addr.arpa. 60 IN PTR host.example.org."},
	}}
}

func loadTable(t testing.TB, path string) *table.Table {
	return loadTableWith(t, path, table.Options{})
}

// loadTableWith builds the table of a manifest file with o (zone, TTL and generation set).
func loadTableWith(t testing.TB, path string, o table.Options) *table.Table {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := manifest.ParseFile(path, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Zone, o.TTL, o.Generation = "cluster.local", 30*time.Second, 1
	tb, err := table.Build(snap, o)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func search(ns string) []string {
	if ns == "" {
		return nil
	}
	return []string{ns + ".svc.cluster.local.", "svc.cluster.local.", "cluster.local."}
}

// startServer serves res on loopback for a client in namespace ns.
func startServer(t testing.TB, res server.Resolver, ns string) string {
	t.Helper()
	srv := server.New(res, server.Options{Listen: []string{"127.0.0.1:0"},
		Client: resolver.Client{Namespace: ns, Search: search(ns)}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv.Addrs()[0]
}

func exchange(t testing.TB, addr, network string, req *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 4096}
	resp, _, err := c.Exchange(req, addr)
	if err != nil {
		t.Fatalf("%s %v: %v", network, req.Question, err)
	}
	return resp
}

// normalize turns records into dig-like one-space strings, sorted (address order of
// headless services is random by design).
func normalize(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

type answerCase struct {
	name      string
	ns        string // client namespace; "prod" when empty, "-" for unknown
	qname     string
	qtype     uint16
	rcode     int
	answer    []string
	authority []string
	extra     []string
	forwarded bool // the upstream must have been asked
}

func (tc answerCase) check(t *testing.T, resp *dns.Msg, up *fakeUpstream, askedBefore int) {
	t.Helper()
	if resp.Rcode != tc.rcode {
		t.Errorf("rcode = %s, want %s\n%v", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode], resp)
	}
	if got, want := normalize(resp.Answer), sorted(tc.answer); !slices.Equal(got, want) {
		t.Errorf("answer:\n got %q\nwant %q", got, want)
	}
	if got, want := normalize(resp.Ns), sorted(tc.authority); !slices.Equal(got, want) {
		t.Errorf("authority:\n got %q\nwant %q", got, want)
	}
	if got, want := normalize(resp.Extra), sorted(tc.extra); !slices.Equal(got, want) {
		t.Errorf("additional:\n got %q\nwant %q", got, want)
	}
	if resp.Question[0].Name != tc.qname {
		t.Errorf("question = %q, want %q", resp.Question[0].Name, tc.qname)
	}
	up.mu.Lock()
	forwarded := len(up.asked) > askedBefore
	up.mu.Unlock()
	if forwarded != tc.forwarded {
		t.Errorf("forwarded = %v, want %v", forwarded, tc.forwarded)
	}
	if !tc.forwarded && tc.rcode != dns.RcodeServerFailure && !resp.Authoritative {
		t.Errorf("local answer without AA")
	}
}

// runCases runs every case over UDP and TCP.
func runCases(t *testing.T, opts resolver.Options, tb *table.Table, cases []answerCase) {
	up := newUpstream()
	opts.Forwarder = up
	opts.Zone = "cluster.local"
	res := resolver.New(opts)
	if tb != nil {
		res.SetTable(tb)
	}
	addrs := map[string]string{}
	for _, tc := range cases {
		ns := tc.ns
		switch ns {
		case "":
			ns = "prod"
		case "-":
			ns = ""
		}
		if _, ok := addrs[ns]; !ok {
			addrs[ns] = startServer(t, res, ns)
		}
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				req := new(dns.Msg)
				req.SetQuestion(tc.qname, tc.qtype)
				up.mu.Lock()
				before := len(up.asked)
				up.mu.Unlock()
				tc.check(t, exchange(t, addrs[ns], network, req), up, before)
			})
		}
	}
}

func TestAnswers(t *testing.T) {
	tb := loadTable(t, "testdata/registry.yaml")
	const (
		A, AAAA, SRV, PTR, CNAME, TXT, SOA, ANY = dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR,
			dns.TypeCNAME, dns.TypeTXT, dns.TypeSOA, dns.TypeANY
		ok, nx = dns.RcodeSuccess, dns.RcodeNameError
	)
	cases := []answerCase{
		// Services.
		{name: "clusterIP A", qname: "reviews.prod.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"reviews.prod.svc.cluster.local. 30 IN A 10.96.0.12"}},
		{name: "dual-stack AAAA", qname: "reviews.prod.svc.cluster.local.", qtype: AAAA, rcode: ok,
			answer: []string{"reviews.prod.svc.cluster.local. 30 IN AAAA fd00::12"}},
		{name: "v4-only AAAA is NODATA", qname: "ratings.prod.svc.cluster.local.", qtype: AAAA, rcode: ok,
			authority: []string{soa}},
		{name: "TXT of a service is NODATA", qname: "ratings.prod.svc.cluster.local.", qtype: TXT, rcode: ok,
			authority: []string{soa}},
		{name: "0x20 case kept", qname: "ReViEwS.PrOd.svc.Cluster.Local.", qtype: A, rcode: ok,
			answer: []string{"ReViEwS.PrOd.svc.Cluster.Local. 30 IN A 10.96.0.12"}},
		{name: "headless: ready endpoints, deduplicated", qname: "db.store.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"db.store.svc.cluster.local. 30 IN A 10.0.0.1", "db.store.svc.cluster.local. 30 IN A 10.0.0.2",
				"db.store.svc.cluster.local. 30 IN A 10.0.0.3"}},
		{name: "headless: publishNotReadyAddresses", qname: "warm.store.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"warm.store.svc.cluster.local. 30 IN A 10.0.1.1"}},
		{name: "endpoint hostname", qname: "db-0.db.store.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"db-0.db.store.svc.cluster.local. 30 IN A 10.0.0.1"}},
		{name: "endpoint name from pod hostname+subdomain", qname: "db-1.db.store.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"db-1.db.store.svc.cluster.local. 30 IN A 10.0.0.2"}},
		{name: "endpoint without hostname: dashed address", qname: "10-0-0-3.db.store.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"10-0-0-3.db.store.svc.cluster.local. 30 IN A 10.0.0.3"}},
		{name: "not-ready endpoint hostname unknown", qname: "db-3.db.store.svc.cluster.local.", qtype: A, rcode: nx,
			authority: []string{soa}},
		{name: "SRV of a named port", qname: "_http._tcp.ratings.prod.svc.cluster.local.", qtype: SRV, rcode: ok,
			answer: []string{"_http._tcp.ratings.prod.svc.cluster.local. 30 IN SRV 0 100 9080 ratings.prod.svc.cluster.local."},
			extra:  []string{"ratings.prod.svc.cluster.local. 30 IN A 10.96.0.13"}},
		{name: "SRV of the service lists every port", qname: "ratings.prod.svc.cluster.local.", qtype: SRV, rcode: ok,
			answer: []string{"ratings.prod.svc.cluster.local. 30 IN SRV 0 50 9080 ratings.prod.svc.cluster.local.",
				"ratings.prod.svc.cluster.local. 30 IN SRV 0 50 9090 ratings.prod.svc.cluster.local."},
			extra: []string{"ratings.prod.svc.cluster.local. 30 IN A 10.96.0.13"}},
		{name: "SRV headless: one per endpoint", qname: "_mysql._tcp.db.store.svc.cluster.local.", qtype: SRV, rcode: ok,
			answer: []string{
				"_mysql._tcp.db.store.svc.cluster.local. 30 IN SRV 0 33 3306 10-0-0-3.db.store.svc.cluster.local.",
				"_mysql._tcp.db.store.svc.cluster.local. 30 IN SRV 0 33 3306 db-0.db.store.svc.cluster.local.",
				"_mysql._tcp.db.store.svc.cluster.local. 30 IN SRV 0 33 3306 db-1.db.store.svc.cluster.local."},
			extra: []string{"10-0-0-3.db.store.svc.cluster.local. 30 IN A 10.0.0.3",
				"db-0.db.store.svc.cluster.local. 30 IN A 10.0.0.1", "db-1.db.store.svc.cluster.local. 30 IN A 10.0.0.2"}},
		{name: "SRV of an unnamed port is unknown", qname: "_9090._tcp.ratings.prod.svc.cluster.local.", qtype: SRV, rcode: nx, forwarded: true,
			authority: []string{soa}},
		{name: "ExternalName chased upstream", qname: "legacy.prod.svc.cluster.local.", qtype: A, rcode: ok, forwarded: true,
			answer: []string{"legacy.prod.svc.cluster.local. 30 IN CNAME db.legacy.example.com.",
				"db.legacy.example.com. 60 IN A 192.0.2.200"}},
		{name: "ExternalName CNAME query", qname: "legacy.prod.svc.cluster.local.", qtype: CNAME, rcode: ok,
			answer: []string{"legacy.prod.svc.cluster.local. 30 IN CNAME db.legacy.example.com."}},
		{name: "ExternalName ANY: the CNAME alone owns the name", qname: "legacy.prod.svc.cluster.local.", qtype: ANY, rcode: ok,
			answer: []string{"legacy.prod.svc.cluster.local. 30 IN CNAME db.legacy.example.com."}},
		{name: "ExternalName chased in the table", qname: "alias.prod.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"alias.prod.svc.cluster.local. 30 IN CNAME ratings.prod.svc.cluster.local.",
				"ratings.prod.svc.cluster.local. 30 IN A 10.96.0.13"}},
		{name: "ExternalName to a missing zone name", qname: "dangling.prod.svc.cluster.local.", qtype: A, rcode: nx,
			answer:    []string{"dangling.prod.svc.cluster.local. 30 IN CNAME gone.prod.svc.cluster.local."},
			authority: []string{soa}},
		{name: "ExternalName loop is SERVFAIL", qname: "loop-a.prod.svc.cluster.local.", qtype: A, rcode: dns.RcodeServerFailure},
		{name: "PTR of a cluster IP", qname: "12.0.96.10.in-addr.arpa.", qtype: PTR, rcode: ok,
			answer: []string{"12.0.96.10.in-addr.arpa. 30 IN PTR reviews.prod.svc.cluster.local."}},
		{name: "PTR of a v6 cluster IP", qname: "2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", qtype: PTR, rcode: ok,
			answer: []string{"2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 30 IN PTR reviews.prod.svc.cluster.local."}},
		{name: "PTR of an endpoint", qname: "1.0.0.10.in-addr.arpa.", qtype: PTR, rcode: ok,
			answer: []string{"1.0.0.10.in-addr.arpa. 30 IN PTR db-0.db.store.svc.cluster.local."}},
		{name: "PTR of an unknown address is forwarded", qname: "10.2.0.192.in-addr.arpa.", qtype: PTR, rcode: ok, forwarded: true,
			answer: []string{"10.2.0.192.in-addr.arpa. 60 IN PTR host.example.org."}},
		// Pods.
		{name: "pod A", qname: "10-244-1-7.prod.pod.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"10-244-1-7.prod.pod.cluster.local. 30 IN A 10.244.1.7"}},
		{name: "pod AAAA", qname: "fd00--7.prod.pod.cluster.local.", qtype: AAAA, rcode: ok,
			answer: []string{"fd00--7.prod.pod.cluster.local. 30 IN AAAA fd00::7"}},
		{name: "pod A of a v6 name is NODATA", qname: "fd00--7.prod.pod.cluster.local.", qtype: A, rcode: ok,
			authority: []string{soa}},
		{name: "pod in an unknown namespace", qname: "10-244-1-7.nope.pod.cluster.local.", qtype: A, rcode: nx,
			authority: []string{soa}},
		{name: "pod name that is no address", qname: "10-244-1.prod.pod.cluster.local.", qtype: A, rcode: nx,
			authority: []string{soa}},
		// ServiceEntries.
		{name: "ServiceEntry address (CIDR skipped)", qname: "api.example.com.", qtype: A, rcode: ok,
			answer: []string{"api.example.com. 30 IN A 203.0.113.10"}},
		{name: "ServiceEntry NODATA has the host's SOA", qname: "api.example.com.", qtype: AAAA, rcode: ok,
			authority: []string{"api.example.com. 30 IN SOA ns.dns.api.example.com. hostmaster.api.example.com. 1 7200 1800 86400 30"}},
		{name: "ServiceEntry SRV", qname: "_https._tcp.api.example.com.", qtype: SRV, rcode: ok,
			answer: []string{"_https._tcp.api.example.com. 30 IN SRV 0 100 443 api.example.com."},
			extra:  []string{"api.example.com. 30 IN A 203.0.113.10"}},
		{name: "ServiceEntry without address (DNS) is forwarded", qname: "resolved.example.com.", qtype: A, rcode: ok, forwarded: true,
			answer: []string{"resolved.example.com. 60 IN A 192.0.2.201"}},
		{name: "ServiceEntry VIP from status.addresses", qname: "orders.corp.example.net.", qtype: A, rcode: ok,
			answer: []string{"orders.corp.example.net. 30 IN A 240.240.0.5"}},
		{name: "PTR of a ServiceEntry VIP", qname: "5.0.240.240.in-addr.arpa.", qtype: PTR, rcode: ok,
			answer: []string{"5.0.240.240.in-addr.arpa. 30 IN PTR orders.corp.example.net."}},
		{name: "no PTR for a ServiceEntry's own addresses", qname: "10.113.0.203.in-addr.arpa.", qtype: PTR, rcode: nx, forwarded: true, authority: []string{upSOA}},
		{name: "ServiceEntry STATIC endpoints", qname: "static.example.com.", qtype: A, rcode: ok,
			answer: []string{"static.example.com. 30 IN A 192.0.2.1", "static.example.com. 30 IN A 192.0.2.2"}},
		{name: "wildcard answers with the query name", qname: "a.b.Wild.example.com.", qtype: AAAA, rcode: ok,
			answer: []string{"a.b.Wild.example.com. 30 IN AAAA 2001:db8::7"}},
		{name: "wildcard NODATA", qname: "x.wild.example.com.", qtype: A, rcode: ok,
			authority: []string{"wild.example.com. 30 IN SOA ns.dns.wild.example.com. hostmaster.wild.example.com. 1 7200 1800 86400 30"}},
		{name: "wildcard does not cover its base", qname: "wild.example.com.", qtype: A, rcode: ok, forwarded: true,
			answer: []string{"wild.example.com. 60 IN A 192.0.2.203"}},
		{name: "workloadSelector picks WorkloadEntries (exported to prod)", qname: "vm.example.com.", qtype: A, rcode: ok,
			answer: []string{"vm.example.com. 30 IN A 192.0.2.50"}},
		{name: "exportTo hides from other namespaces", ns: "store", qname: "vm.example.com.", qtype: A, rcode: nx, forwarded: true, authority: []string{upSOA}},
		{name: "exportTo . hides from prod", qname: "private.example.com.", qtype: A, rcode: ok, forwarded: true,
			answer: []string{"private.example.com. 60 IN A 192.0.2.204"}},
		{name: "exportTo . visible in its namespace", ns: "vms", qname: "private.example.com.", qtype: A, rcode: ok,
			answer: []string{"private.example.com. 30 IN A 192.0.2.99"}},
		{name: "unknown namespace sees only public entries", ns: "-", qname: "vm.example.com.", qtype: A, rcode: nx, forwarded: true, authority: []string{upSOA}},
		// Short names and structure.
		{name: "short name svc", qname: "reviews.", qtype: A, rcode: ok,
			answer: []string{"reviews. 30 IN CNAME reviews.prod.svc.cluster.local.", "reviews.prod.svc.cluster.local. 30 IN A 10.96.0.12"}},
		{name: "short name svc.ns", ns: "store", qname: "reviews.prod.", qtype: A, rcode: ok,
			answer: []string{"reviews.prod. 30 IN CNAME reviews.prod.svc.cluster.local.", "reviews.prod.svc.cluster.local. 30 IN A 10.96.0.12"}},
		{name: "short name svc.ns.svc", qname: "db.store.svc.", qtype: SRV, rcode: ok,
			answer: []string{"db.store.svc. 30 IN CNAME db.store.svc.cluster.local.",
				"db.store.svc.cluster.local. 30 IN SRV 0 33 3306 10-0-0-3.db.store.svc.cluster.local.",
				"db.store.svc.cluster.local. 30 IN SRV 0 33 3306 db-0.db.store.svc.cluster.local.",
				"db.store.svc.cluster.local. 30 IN SRV 0 33 3306 db-1.db.store.svc.cluster.local."},
			extra: []string{"10-0-0-3.db.store.svc.cluster.local. 30 IN A 10.0.0.3",
				"db-0.db.store.svc.cluster.local. 30 IN A 10.0.0.1", "db-1.db.store.svc.cluster.local. 30 IN A 10.0.0.2"}},
		{name: "bare short name of another namespace is not ours", ns: "store", qname: "reviews.", qtype: A, rcode: nx, forwarded: true, authority: []string{upSOA}},
		{name: "endpoint short name ep.svc.ns", qname: "db-0.db.store.", qtype: A, rcode: ok,
			answer: []string{"db-0.db.store. 30 IN CNAME db-0.db.store.svc.cluster.local.", "db-0.db.store.svc.cluster.local. 30 IN A 10.0.0.1"}},
		{name: "endpoint short name ep.svc.ns.svc", qname: "DB-1.db.store.svc.", qtype: A, rcode: ok,
			answer: []string{"DB-1.db.store.svc. 30 IN CNAME db-1.db.store.svc.cluster.local.", "db-1.db.store.svc.cluster.local. 30 IN A 10.0.0.2"}},
		{name: "endpoint short name ep.svc from its namespace", ns: "store", qname: "10-0-0-3.db.", qtype: A, rcode: ok,
			answer: []string{"10-0-0-3.db. 30 IN CNAME 10-0-0-3.db.store.svc.cluster.local.", "10-0-0-3.db.store.svc.cluster.local. 30 IN A 10.0.0.3"}},
		{name: "endpoint short name AAAA: CNAME and NODATA", qname: "db-0.db.store.", qtype: AAAA, rcode: ok,
			answer: []string{"db-0.db.store. 30 IN CNAME db-0.db.store.svc.cluster.local."}, authority: []string{soa}},
		{name: "endpoint short name ep.svc of another namespace is not ours", qname: "db-0.db.", qtype: A, rcode: nx, forwarded: true,
			authority: []string{upSOA}},
		{name: "short name of a not-ready endpoint is not ours", qname: "db-3.db.store.", qtype: A, rcode: nx, forwarded: true,
			authority: []string{upSOA}},
		{name: "namespace is an empty non-terminal", qname: "prod.svc.cluster.local.", qtype: A, rcode: ok, authority: []string{soa}},
		{name: "svc is an empty non-terminal", qname: "svc.cluster.local.", qtype: A, rcode: ok, authority: []string{soa}},
		{name: "zone SOA", qname: "cluster.local.", qtype: SOA, rcode: ok, answer: []string{soa}},
		{name: "ANY lists every record", qname: "reviews.prod.svc.cluster.local.", qtype: ANY, rcode: ok,
			answer: []string{"reviews.prod.svc.cluster.local. 30 IN A 10.96.0.12", "reviews.prod.svc.cluster.local. 30 IN AAAA fd00::12",
				"reviews.prod.svc.cluster.local. 30 IN SRV 0 100 9080 reviews.prod.svc.cluster.local."}},
		{name: "unknown zone name outside the first search domain: NXDOMAIN at once", qname: "nope.store.svc.cluster.local.", qtype: A,
			rcode: nx, authority: []string{soa}},
		{name: "unknown zone name is NXDOMAIN", qname: "nope.prod.svc.cluster.local.", qtype: A, rcode: nx, forwarded: true, authority: []string{soa}},
		{name: "name outside the zone is forwarded", qname: "example.org.", qtype: A, rcode: ok, forwarded: true,
			answer: []string{"example.org. 60 IN A 192.0.2.202"}},
		{name: "upstream failure is SERVFAIL", qname: "unreachable.example.org.", qtype: A, rcode: dns.RcodeServerFailure, forwarded: true},
		// Autopath.
		{name: "external autopath", qname: "example.org.prod.svc.cluster.local.", qtype: A, rcode: ok, forwarded: true,
			answer: []string{"example.org.prod.svc.cluster.local. 30 IN CNAME example.org.", "example.org. 60 IN A 192.0.2.202"}},
		{name: "external autopath AAAA of an existing name: CNAME and NODATA", qname: "Example.org.prod.svc.cluster.local.", qtype: AAAA,
			rcode: ok, forwarded: true,
			answer:    []string{"Example.org.prod.svc.cluster.local. 30 IN CNAME example.org."},
			authority: []string{upSOA}},
		{name: "external autopath miss: NXDOMAIN", qname: "nowhere.example.org.prod.svc.cluster.local.", qtype: A, rcode: nx,
			forwarded: true, authority: []string{soa}},
		{name: "external autopath undecided (upstream down): NXDOMAIN as without autopath", qname: "unreachable.prod.svc.cluster.local.",
			qtype: A, rcode: nx, forwarded: true, authority: []string{soa}},
		{name: "autopath to a ServiceEntry host", qname: "api.example.com.prod.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"api.example.com.prod.svc.cluster.local. 30 IN CNAME api.example.com.", "api.example.com. 30 IN A 203.0.113.10"}},
		{name: "autopath AAAA of the same name is NOERROR too", qname: "api.example.com.prod.svc.cluster.local.", qtype: AAAA, rcode: ok,
			answer:    []string{"api.example.com.prod.svc.cluster.local. 30 IN CNAME api.example.com."},
			authority: []string{"api.example.com. 30 IN SOA ns.dns.api.example.com. hostmaster.api.example.com. 1 7200 1800 86400 30"}},
		{name: "autopath svc.ns from the first search domain", qname: "db.store.prod.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"db.store.prod.svc.cluster.local. 30 IN CNAME db.store.svc.cluster.local.",
				"db.store.svc.cluster.local. 30 IN A 10.0.0.1", "db.store.svc.cluster.local. 30 IN A 10.0.0.2",
				"db.store.svc.cluster.local. 30 IN A 10.0.0.3"}},
		{name: "autopath to an endpoint name (glibc's first query for db-0.db.store)", qname: "db-0.db.store.prod.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"db-0.db.store.prod.svc.cluster.local. 30 IN CNAME db-0.db.store.svc.cluster.local.",
				"db-0.db.store.svc.cluster.local. 30 IN A 10.0.0.1"}},
		{name: "autopath to an endpoint name, AAAA: CNAME and NODATA", qname: "db-0.db.store.prod.svc.cluster.local.", qtype: AAAA, rcode: ok,
			answer: []string{"db-0.db.store.prod.svc.cluster.local. 30 IN CNAME db-0.db.store.svc.cluster.local."}, authority: []string{soa}},
		{name: "endpoint name from its namespace: glibc's first query is the FQDN", ns: "store", qname: "db-1.db.store.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"db-1.db.store.svc.cluster.local. 30 IN A 10.0.0.2"}},
		{name: "autopath keeps the question's case", qname: "API.example.com.Prod.svc.cluster.local.", qtype: A, rcode: ok,
			answer: []string{"API.example.com.Prod.svc.cluster.local. 30 IN CNAME api.example.com.", "api.example.com. 30 IN A 203.0.113.10"}},
		{name: "autopath wildcard", qname: "x.wild.example.com.prod.svc.cluster.local.", qtype: AAAA, rcode: ok,
			answer: []string{"x.wild.example.com.prod.svc.cluster.local. 30 IN CNAME x.wild.example.com.", "x.wild.example.com. 30 IN AAAA 2001:db8::7"}},
		{name: "autopath miss: NXDOMAIN as without autopath", qname: "nothing.prod.svc.cluster.local.", qtype: A, rcode: nx, forwarded: true,
			authority: []string{soa}},
		{name: "no autopath below a later search domain (as CoreDNS)", qname: "reviews.svc.cluster.local.", qtype: A, rcode: nx,
			authority: []string{soa}},
		{name: "autopath skips a name without records (a namespace)", qname: "store.prod.svc.cluster.local.", qtype: A, rcode: nx, forwarded: true,
			authority: []string{soa}},
		{name: "autopath never for an invisible host", ns: "store", qname: "vm.example.com.store.svc.cluster.local.", qtype: A, rcode: nx, forwarded: true,
			authority: []string{soa}},
	}
	runCases(t, resolver.Options{}, tb, cases)
}

func TestNotReady(t *testing.T) {
	runCases(t, resolver.Options{}, nil, []answerCase{
		{name: "zone name before the first table", qname: "reviews.prod.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "other names are forwarded", qname: "example.org.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, forwarded: true,
			answer: []string{"example.org. 60 IN A 192.0.2.202"}},
	})
}

// TestPartialTable: while a source is not ready yet, the table of the ready ones answers the
// names it has; other names of the zone stay not ready (never NXDOMAIN, nor an autopath walk
// that a later source could change), other names are forwarded as before the first table.
func TestPartialTable(t *testing.T) {
	partial := loadTableWith(t, "testdata/registry.yaml", table.Options{Partial: true})
	runCases(t, resolver.Options{ForwardUnknownClusterNames: true}, partial, []answerCase{
		{name: "zone name of a ready source", qname: "ratings.prod.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeSuccess,
			answer: []string{"ratings.prod.svc.cluster.local. 30 IN A 10.96.0.13"}},
		{name: "ServiceEntry host of a ready source", qname: "api.example.com.", qtype: dns.TypeA, rcode: dns.RcodeSuccess,
			answer: []string{"api.example.com. 30 IN A 203.0.113.10"}},
		{name: "unknown zone name is not ready", qname: "ghost.prod.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "search-list name is not ready", qname: "ratings.prod.svc.cluster.local.prod.svc.cluster.local.", qtype: dns.TypeA,
			rcode: dns.RcodeServerFailure},
		{name: "unknown name outside the zone is forwarded", qname: "example.org.", qtype: dns.TypeA, rcode: dns.RcodeSuccess,
			forwarded: true, answer: []string{"example.org. 60 IN A 192.0.2.202"}},
	})
}

func TestForwardUnknownClusterNames(t *testing.T) {
	tb := loadTable(t, "testdata/registry.yaml")
	runCases(t, resolver.Options{ForwardUnknownClusterNames: true}, tb, []answerCase{
		{name: "unknown zone name forwarded", qname: "ghost.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, forwarded: true,
			answer: []string{"ghost.cluster.local. 60 IN A 192.0.2.205"}},
		{name: "known names still local", qname: "ratings.prod.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeSuccess,
			answer: []string{"ratings.prod.svc.cluster.local. 30 IN A 10.96.0.13"}},
		{name: "CNAME to an unknown zone name is followed upstream", qname: "dangling.prod.svc.cluster.local.", qtype: dns.TypeA,
			rcode: dns.RcodeSuccess, forwarded: true,
			answer: []string{"dangling.prod.svc.cluster.local. 30 IN CNAME gone.prod.svc.cluster.local.",
				"gone.prod.svc.cluster.local. 60 IN A 192.0.2.206"}},
	})
}

func TestRejects(t *testing.T) {
	up := newUpstream()
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up})
	res.SetTable(loadTable(t, "testdata/registry.yaml"))
	addr := startServer(t, res, "prod")
	two := new(dns.Msg)
	two.SetQuestion("reviews.prod.svc.cluster.local.", dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "ratings.prod.svc.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	none := new(dns.Msg)
	none.Id = dns.Id()
	notify := new(dns.Msg)
	notify.SetNotify("cluster.local.")
	update := new(dns.Msg)
	update.SetUpdate("cluster.local.")
	axfr := new(dns.Msg)
	axfr.SetAxfr("cluster.local.")
	ixfr := new(dns.Msg)
	ixfr.SetQuestion("example.org.", dns.TypeIXFR)
	chaos := new(dns.Msg)
	chaos.SetQuestion("version.cluster.local.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	ask := func(name string, qtype, qclass uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.Question[0].Qclass = qclass
		return m
	}
	for _, tc := range []struct {
		name  string
		req   *dns.Msg
		rcode int
	}{
		{"two questions", two, dns.RcodeFormatError},
		{"no question", none, dns.RcodeFormatError},
		{"NOTIFY", notify, dns.RcodeNotImplemented},
		{"UPDATE", update, dns.RcodeNotImplemented},
		{"CHAOS class in the zone", chaos, dns.RcodeRefused},
		{"AXFR", axfr, dns.RcodeRefused},
		{"IXFR", ixfr, dns.RcodeRefused},
		{"qtype 0", ask("example.org.", 0, dns.ClassINET), dns.RcodeFormatError},
		{"qtype OPT", ask("example.org.", dns.TypeOPT, dns.ClassINET), dns.RcodeFormatError},
		{"qtype TSIG", ask("example.org.", dns.TypeTSIG, dns.ClassINET), dns.RcodeFormatError},
		{"qtype of the unassigned meta range", ask("example.org.", 200, dns.ClassINET), dns.RcodeFormatError},
		{"qtype TKEY", ask("example.org.", dns.TypeTKEY, dns.ClassINET), dns.RcodeNotImplemented},
		{"qtype MAILA", ask("example.org.", dns.TypeMAILA, dns.ClassINET), dns.RcodeNotImplemented},
		{"qtype MAILB", ask("example.org.", dns.TypeMAILB, dns.ClassINET), dns.RcodeNotImplemented},
		{"CHAOS version.bind without --chaos-version", ask("version.bind.", dns.TypeTXT, dns.ClassCHAOS), dns.RcodeRefused},
		{"CHAOS id.server without --chaos-id", ask("id.server.", dns.TypeTXT, dns.ClassCHAOS), dns.RcodeRefused},
		{"CHAOS, another name", ask("example.org.", dns.TypeTXT, dns.ClassCHAOS), dns.RcodeRefused},
		{"HESIOD class", ask("example.org.", dns.TypeTXT, dns.ClassHESIOD), dns.RcodeRefused},
		{"class NONE", ask("example.org.", dns.TypeA, dns.ClassNONE), dns.RcodeRefused},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, network), func(t *testing.T) {
				before := len(up.questions())
				resp := exchange(t, addr, network, tc.req)
				if resp.Rcode != tc.rcode || len(resp.Answer) != 0 {
					t.Errorf("rcode %s with %d answers, want %s and none", dns.RcodeToString[resp.Rcode], len(resp.Answer), dns.RcodeToString[tc.rcode])
				}
				if asked := up.questions(); len(asked) != before {
					t.Errorf("forwarded: %v", asked[before:])
				}
			})
		}
	}
}

// TestOrder checks what sorting in TestAnswers hides: a CNAME comes before the records it
// points at, and headless addresses are shuffled per answer.
func TestOrder(t *testing.T) {
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: newUpstream()})
	res.SetTable(loadTable(t, "testdata/registry.yaml"))
	addr := startServer(t, res, "prod")
	for _, qname := range []string{"reviews.", "api.example.com.prod.svc.cluster.local.", "alias.prod.svc.cluster.local."} {
		req := new(dns.Msg)
		req.SetQuestion(qname, dns.TypeA)
		resp := exchange(t, addr, "udp", req)
		if len(resp.Answer) != 2 || resp.Answer[0].Header().Rrtype != dns.TypeCNAME || resp.Answer[0].Header().Name != qname {
			t.Errorf("%s: want CNAME first, owned by the question: %v", qname, resp.Answer)
		}
	}
	firsts := map[string]bool{}
	for range 50 {
		req := new(dns.Msg)
		req.SetQuestion("db.store.svc.cluster.local.", dns.TypeA)
		resp := exchange(t, addr, "udp", req)
		firsts[resp.Answer[0].(*dns.A).A.String()] = true
	}
	if len(firsts) < 2 {
		t.Errorf("headless answers not shuffled: first address always %v over 50 answers", firsts)
	}
}

// TestCNAMEChainCap: a chain of 8 ExternalName CNAMEs is followed, a ninth is SERVFAIL.
func TestCNAMEChainCap(t *testing.T) {
	chain := func(n int) model.Snapshot {
		var s model.Snapshot
		for i := range n {
			s.Services = append(s.Services, model.Service{Meta: model.Meta{Namespace: "c", Name: fmt.Sprintf("c%d", i)},
				Type: model.ServiceTypeExternalName, ExternalName: fmt.Sprintf("c%d.c.svc.cluster.local", i+1)})
		}
		s.Services = append(s.Services, model.Service{Meta: model.Meta{Namespace: "c", Name: fmt.Sprintf("c%d", n)},
			ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.7.7")}})
		return s
	}
	for n, rcode := range map[int]int{8: dns.RcodeSuccess, 9: dns.RcodeServerFailure} {
		tb, err := table.Build(chain(n), table.Options{Zone: "cluster.local", TTL: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		res := resolver.New(resolver.Options{Zone: "cluster.local"})
		res.SetTable(tb)
		req := new(dns.Msg)
		req.SetQuestion("c0.c.svc.cluster.local.", dns.TypeA)
		resp, _ := res.Resolve(context.Background(), req, resolver.Client{})
		if resp.Rcode != rcode || (rcode == dns.RcodeSuccess && len(resp.Answer) != n+1) {
			t.Errorf("chain of %d CNAMEs: %s with %d records, want %s", n, dns.RcodeToString[resp.Rcode], len(resp.Answer), dns.RcodeToString[rcode])
		}
	}
}

// TestNameCaseIsASCIIOnly: a qname matches a table name without ASCII case only (RFC 4343);
// the Kelvin sign, which Unicode lower-cases to 'k', is another name.
func TestNameCaseIsASCIIOnly(t *testing.T) {
	snap := model.Snapshot{Services: []model.Service{{Meta: model.Meta{Namespace: "c", Name: "kube"},
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.7.8")}}}}
	tb, err := table.Build(snap, table.Options{Zone: "cluster.local", TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := resolver.New(resolver.Options{Zone: "cluster.local"})
	res.SetTable(tb)
	for qname, rcode := range map[string]int{
		"KUBE.c.svc.Cluster.Local.":      dns.RcodeSuccess,
		"\u212aube.c.svc.cluster.local.": dns.RcodeNameError,
	} {
		req := new(dns.Msg)
		req.SetQuestion(qname, dns.TypeA)
		if resp, _ := res.Resolve(context.Background(), req, resolver.Client{}); resp.Rcode != rcode {
			t.Errorf("%q: %s, want %s", qname, dns.RcodeToString[resp.Rcode], dns.RcodeToString[rcode])
		}
	}
}

// recordingUpstream is fakeUpstream that keeps every request it is sent.
type recordingUpstream struct {
	*fakeUpstream
	mu   sync.Mutex
	reqs []*dns.Msg
	vias []upstream.Via
}

func (u *recordingUpstream) Forward(ctx context.Context, req *dns.Msg, via upstream.Via) (*dns.Msg, error) {
	u.mu.Lock()
	u.reqs = append(u.reqs, req.Copy())
	u.vias = append(u.vias, via)
	u.mu.Unlock()
	return u.fakeUpstream.Forward(ctx, req, via)
}

// TestSubQueriesInheritCDAndDO: the queries meshdns sends upstream on a client's behalf (a
// CNAME chain leaving the table, an autopath step) carry the client's CD and DO bits, as its
// own forwarded query would.
func TestSubQueriesInheritCDAndDO(t *testing.T) {
	tb := loadTable(t, "testdata/registry.yaml")
	for _, tc := range []struct{ name, qname, sub string }{
		{name: "CNAME chase", qname: "legacy.prod.svc.cluster.local.", sub: "db.legacy.example.com."},
		{name: "autopath step", qname: "example.org.prod.svc.cluster.local.", sub: "example.org."},
	} {
		for _, bits := range []struct{ cd, do bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			t.Run(fmt.Sprintf("%s/cd=%v,do=%v", tc.name, bits.cd, bits.do), func(t *testing.T) {
				up := &recordingUpstream{fakeUpstream: newUpstream()}
				res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up})
				res.SetTable(tb)
				req := new(dns.Msg)
				req.SetQuestion(tc.qname, dns.TypeA)
				req.CheckingDisabled = bits.cd
				req.SetEdns0(1232, bits.do)
				resp, _ := res.Resolve(context.Background(), req, resolver.Client{Namespace: "prod", Search: search("prod")})
				if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 2 {
					t.Fatalf("answer %s with %d records, want NOERROR with CNAME and A", dns.RcodeToString[resp.Rcode], len(resp.Answer))
				}
				up.mu.Lock()
				defer up.mu.Unlock()
				if len(up.reqs) != 1 || up.reqs[0].Question[0].Name != tc.sub {
					t.Fatalf("upstream asked %v, want %s once", up.reqs, tc.sub)
				}
				sub := up.reqs[0]
				do := sub.IsEdns0() != nil && sub.IsEdns0().Do()
				if sub.CheckingDisabled != bits.cd || do != bits.do {
					t.Errorf("sub-query CD=%v DO=%v, want CD=%v DO=%v", sub.CheckingDisabled, do, bits.cd, bits.do)
				}
			})
		}
	}
}

// TestForwardCarriesClient: every question asked upstream for a client, its own or a
// sub-query, goes over the client's transport and counts against the client's address.
func TestForwardCarriesClient(t *testing.T) {
	client := resolver.Client{Namespace: "prod", Search: search("prod"), TCP: true, Addr: netip.MustParseAddr("10.1.2.3")}
	want := upstream.Via{TCP: true, Source: upstream.AddrSource(client.Addr)}
	for _, qname := range []string{"example.org.", "legacy.prod.svc.cluster.local.", "example.org.prod.svc.cluster.local."} {
		t.Run(qname, func(t *testing.T) {
			up := &recordingUpstream{fakeUpstream: newUpstream()}
			res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up})
			res.SetTable(loadTable(t, "testdata/registry.yaml"))
			res.Resolve(context.Background(), new(dns.Msg).SetQuestion(qname, dns.TypeA), client)
			up.mu.Lock()
			defer up.mu.Unlock()
			if len(up.vias) == 0 {
				t.Fatal("nothing asked upstream")
			}
			for i, via := range up.vias {
				if via != want {
					t.Errorf("upstream question %d (%s) via %+v, want %+v", i, up.reqs[i].Question[0].Name, via, want)
				}
			}
		})
	}
}

// TestChaosIdentity: with --chaos-version and --chaos-id, the CHAOS names asking a server for
// its version or identity are answered locally (TXT; other types NODATA), never forwarded.
func TestChaosIdentity(t *testing.T) {
	up := newUpstream()
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: up, ChaosVersion: "meshdns 1.2", ChaosID: "node-a"})
	addr := startServer(t, res, "prod")
	for _, tc := range []struct {
		qname  string
		qtype  uint16
		answer []string
	}{
		{"version.bind.", dns.TypeTXT, []string{`version.bind. 0 CH TXT "meshdns 1.2"`}},
		{"VERSION.Server.", dns.TypeTXT, []string{`VERSION.Server. 0 CH TXT "meshdns 1.2"`}},
		{"hostname.bind.", dns.TypeANY, []string{`hostname.bind. 0 CH TXT "node-a"`}},
		{"id.server.", dns.TypeTXT, []string{`id.server. 0 CH TXT "node-a"`}},
		{"id.server.", dns.TypeA, nil},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.qname+dns.TypeToString[tc.qtype]+"/"+network, func(t *testing.T) {
				req := new(dns.Msg)
				req.SetQuestion(tc.qname, tc.qtype)
				req.Question[0].Qclass = dns.ClassCHAOS
				resp := exchange(t, addr, network, req)
				var got []string
				for _, rr := range resp.Answer {
					got = append(got, strings.ReplaceAll(rr.String(), "\t", " "))
				}
				if resp.Rcode != dns.RcodeSuccess || !slices.Equal(got, tc.answer) {
					t.Errorf("rcode %s, answer %q; want NOERROR, %q", dns.RcodeToString[resp.Rcode], got, tc.answer)
				}
				if asked := up.questions(); len(asked) != 0 {
					t.Errorf("forwarded: %v", asked)
				}
			})
		}
	}
}
