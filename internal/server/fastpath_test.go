package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/manifest"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// countingUpstream answers A questions below example.org. with one record of TTL 60, anything
// else NXDOMAIN, and counts questions.
type countingUpstream struct{ asked atomic.Int64 }

func (u *countingUpstream) Forward(_ context.Context, req *dns.Msg, _ upstream.Via) (*dns.Msg, error) {
	u.asked.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	q := req.Question[0]
	if !dns.IsSubDomain("example.org.", q.Name) {
		m.Rcode = dns.RcodeNameError
		soa, _ := dns.NewRR(". 60 IN SOA a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 60")
		m.Ns = []dns.RR{soa}
		return m, nil
	}
	rr, _ := dns.NewRR(q.Name + " 60 IN A 192.0.2.99")
	m.Answer = []dns.RR{rr}
	return m, nil
}

func buildTable(t testing.TB, manifests string, generation uint64) *table.Table {
	t.Helper()
	snap, err := manifest.ParseFile("registry.yaml", []byte(manifests), nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := table.Build(snap, table.Options{Zone: "cluster.local", TTL: 30 * time.Second, Generation: generation})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// testResolver is a real resolver over the resolver package's test registry, with a cache in
// front of a counting upstream.
func testResolver(t testing.TB, reg prometheus.Registerer) (*resolver.Resolver, *countingUpstream) {
	t.Helper()
	data, err := os.ReadFile("../resolver/testdata/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	up := &countingUpstream{}
	o := resolver.Options{Zone: "cluster.local", Forwarder: up, Cache: cache.New(cache.Options{})}
	if reg != nil {
		o.Cache = cache.New(cache.Options{Metrics: cache.NewMetrics(reg)})
	}
	res := resolver.New(o)
	res.SetTable(buildTable(t, string(data), 1))
	return res, up
}

var prodClient = resolver.Client{Namespace: "prod",
	Search: []string{"prod.svc.cluster.local.", "svc.cluster.local.", "cluster.local."}}

func startWith(t *testing.T, res Resolver, o Options) string {
	t.Helper()
	o.Listen = []string{"127.0.0.1:0"}
	o.Client = prodClient
	srv := New(res, o)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv.Addrs()[0]
}

// rawExchange sends pkt over UDP and returns the reply's bytes.
func rawExchange(t *testing.T, addr string, pkt []byte) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	return buf[:n]
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFastPathSameBytes asks a server with the fast path and one without it (every query
// logged takes the general path) the same queries, each three times: the replies must be the
// same bytes, and the fast path must actually have been taken.
func TestFastPathSameBytes(t *testing.T) {
	res, _ := testResolver(t, nil)
	// One secret and one clock: both servers make the same server cookies.
	secret, clock := CookieSecret{1, 2, 3}, func() time.Time { return time.Unix(1800000000, 0) }
	fastSrv := New(res, Options{Listen: []string{"127.0.0.1:0"}, Client: prodClient, CookieSecret: secret, Now: clock})
	if err := fastSrv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fastSrv.Shutdown(context.Background()) })
	fast := fastSrv.Addrs()[0]
	general := startWith(t, res, Options{LogQueries: true, Logger: slog.New(slog.DiscardHandler), CookieSecret: secret, Now: clock})

	type variant struct {
		name   string
		modify func(*dns.Msg)
	}
	variants := []variant{
		{"plain", func(*dns.Msg) {}},
		{"no RD", func(m *dns.Msg) { m.RecursionDesired = false }},
		{"CD", func(m *dns.Msg) { m.CheckingDisabled = true }},
		{"EDNS", func(m *dns.Msg) { m.SetEdns0(1232, false) }},
		{"EDNS DO", func(m *dns.Msg) { m.SetEdns0(4096, true) }},
		{"EDNS cookie", func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			opt := m.IsEdns0()
			opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}},
	}
	questions := []struct {
		name  string
		qtype uint16
		fast  bool // whether the reply must be stored for the fast path
	}{
		{"reviews.prod.svc.cluster.local.", dns.TypeA, true},
		{"ReViEwS.Prod.SVC.cluster.LOCAL.", dns.TypeA, true},
		{"reviews.prod.svc.cluster.local.", dns.TypeAAAA, true},
		{"reviews.prod.svc.cluster.local.", dns.TypeTXT, true},                      // NODATA with SOA
		{"_http._tcp.reviews.prod.svc.cluster.local.", dns.TypeSRV, true},           // with additional records
		{"12.0.96.10.in-addr.arpa.", dns.TypePTR, true},                             // PTR
		{"reviews.", dns.TypeA, true},                                               // short name: CNAME + A
		{"Ratings.Prod.Svc.Cluster.Local.Prod.Svc.Cluster.Local.", dns.TypeA, true}, // autopath
		{"alias.prod.svc.cluster.local.", dns.TypeA, true},                          // CNAME within the table
		{"nope.store.svc.cluster.local.", dns.TypeA, true},                          // NXDOMAIN
		{"nope.prod.svc.cluster.local.", dns.TypeA, false},                          // the autopath walk asked upstream
		{"api.example.com.", dns.TypeA, true},
		{"api.example.com.", dns.TypeAAAA, true},             // NODATA: SOA owned by the host itself
		{"API.Example.COM.", dns.TypeAAAA, true},             // served from the entry the line above made                                       // ServiceEntry
		{"db.store.svc.cluster.local.", dns.TypeA, false},    // shuffled: never stored
		{"legacy.prod.svc.cluster.local.", dns.TypeA, false}, // CNAME chased upstream
		{"ext.example.org.", dns.TypeA, true},                // cached upstream answer
	}
	for _, q := range questions {
		for _, v := range variants {
			m := new(dns.Msg)
			m.SetQuestion(q.name, q.qtype)
			v.modify(m)
			pkt := pack(t, m)
			for i := range 3 {
				got, want := rawExchange(t, fast, pkt), rawExchange(t, general, pkt)
				if q.name == "db.store.svc.cluster.local." {
					got, want = sortedAnswer(t, got), sortedAnswer(t, want)
				}
				// Compression may differ (the general path compresses into the question's
				// spelling); what a client reads, spelling of every name included, may not.
				if readable(t, got) != readable(t, want) {
					t.Errorf("%s %s (%s), query %d: fast path reply differs\nfast:    %x\ngeneral: %x",
						q.name, dns.TypeToString[q.qtype], v.name, i+1, got, want)
				}
			}
			var wq wireQuery
			if !parseQuery(pkt, make([]byte, 0, keyCap), &wq) {
				t.Fatalf("%s (%s): not a plain query", q.name, v.name)
			}
			if stored := fastSrv.fast.get(&wq, res.Epoch()) != nil; stored != q.fast {
				t.Errorf("%s %s (%s): stored for the fast path = %v, want %v", q.name, dns.TypeToString[q.qtype], v.name, stored, q.fast)
			}
		}
	}
}

// readable is the presentation form of a reply, names spelled as sent.
func readable(t *testing.T, b []byte) string {
	t.Helper()
	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return m.String()
}

// sortedAnswer repacks a reply with its answer records in a fixed order.
func sortedAnswer(t *testing.T, b []byte) []byte {
	t.Helper()
	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	for i := range m.Answer {
		for j := i + 1; j < len(m.Answer); j++ {
			if m.Answer[j].String() < m.Answer[i].String() {
				m.Answer[i], m.Answer[j] = m.Answer[j], m.Answer[i]
			}
		}
	}
	return pack(t, &m)
}

// TestFastPathEchoesQuery checks what a client compares: ID, question spelling (0x20), RD and
// CD as asked, EDNS echoed with DO.
func TestFastPathEchoesQuery(t *testing.T) {
	res, _ := testResolver(t, nil)
	addr := startWith(t, res, Options{})
	for i, name := range []string{"reviews.prod.svc.cluster.local.", "REVIEWS.prod.svc.cluster.local.", "rEvIeWs.PrOd.SvC.cLuStEr.LoCaL."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.Id = uint16(1000 + i)
		m.RecursionDesired = i%2 == 0
		m.CheckingDisabled = i == 1
		if i > 0 {
			m.SetEdns0(1232, i == 2)
		}
		var r dns.Msg
		if err := r.Unpack(rawExchange(t, addr, pack(t, m))); err != nil {
			t.Fatal(err)
		}
		if r.Id != m.Id || r.Question[0].Name != name || r.Answer[0].Header().Name != name ||
			r.RecursionDesired != m.RecursionDesired || r.CheckingDisabled != m.CheckingDisabled || !r.Authoritative {
			t.Errorf("query %d: reply %v does not echo the query %v", i, &r, m)
		}
		opt := r.IsEdns0()
		if (opt != nil) != (i > 0) || (opt != nil && (opt.Do() != (i == 2) || opt.UDPSize() != ednsSize)) {
			t.Errorf("query %d: OPT in reply = %v", i, opt)
		}
	}
}

// TestFastPathFollowsTable: a stored reply is not served once a new table is published.
func TestFastPathFollowsTable(t *testing.T) {
	const manifest = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
spec: {clusterIP: %s, ports: [{port: 80}]}
`
	res := resolver.New(resolver.Options{Zone: "cluster.local"})
	res.SetTable(buildTable(t, fmt.Sprintf(manifest, "10.96.0.1"), 1))
	addr := startWith(t, res, Options{})
	ask := func() string {
		m := new(dns.Msg)
		m.SetQuestion("web.prod.svc.cluster.local.", dns.TypeA)
		var r dns.Msg
		if err := r.Unpack(rawExchange(t, addr, pack(t, m))); err != nil {
			t.Fatal(err)
		}
		if len(r.Answer) != 1 {
			t.Fatalf("answer %v", r.Answer)
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	for range 3 {
		if got := ask(); got != "10.96.0.1" {
			t.Fatalf("got %s, want 10.96.0.1", got)
		}
	}
	// Same generation number on purpose: the resolver's epoch, not the table's, decides.
	res.SetTable(buildTable(t, fmt.Sprintf(manifest, "10.96.0.2"), 1))
	for range 3 {
		if got := ask(); got != "10.96.0.2" {
			t.Fatalf("after the update: got %s, want 10.96.0.2", got)
		}
	}
}

// TestFastPathCachedTTLCountsDown: a cached upstream answer served by the fast path has the
// TTL the cache would give, counting down, and upstream is asked once.
func TestFastPathCachedTTLCountsDown(t *testing.T) {
	res, up := testResolver(t, nil)
	addr := startWith(t, res, Options{})
	ttl := func() uint32 {
		m := new(dns.Msg)
		m.SetQuestion("ext.example.org.", dns.TypeA)
		var r dns.Msg
		if err := r.Unpack(rawExchange(t, addr, pack(t, m))); err != nil {
			t.Fatal(err)
		}
		return r.Answer[0].Header().Ttl
	}
	first := ttl()
	for range 10 {
		if got := ttl(); got > first || got+1 < first {
			t.Fatalf("TTL %d right after %d", got, first)
		}
	}
	time.Sleep(2100 * time.Millisecond)
	if got := ttl(); got > first-2 || got+3 < first {
		t.Errorf("TTL %d 2.1 s after %d: want it counted down by 2 or 3", got, first)
	}
	if n := up.asked.Load(); n != 1 {
		t.Errorf("upstream asked %d times, want 1", n)
	}
}

// TestFastPathCounts: queries answered by the fast path are counted as the general path
// counts them.
func TestFastPathCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	res, _ := testResolver(t, reg)
	addr := startWith(t, res, Options{Metrics: NewMetrics(reg)})
	const n = 5
	for _, name := range []string{"reviews.prod.svc.cluster.local.", "ratings.prod.svc.cluster.local.prod.svc.cluster.local.", "ext.example.org."} {
		for range n {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			rawExchange(t, addr, pack(t, m))
		}
	}
	for _, c := range []struct {
		metric string
		labels string // name=value,... in name order
		want   float64
	}{
		{"meshdns_queries_total", "protocol=udp,qtype=A,rcode=NOERROR,result=table", n},
		{"meshdns_queries_total", "protocol=udp,qtype=A,rcode=NOERROR,result=autopath", n},
		{"meshdns_queries_total", "protocol=udp,qtype=A,rcode=NOERROR,result=cache-hit", n - 1},
		{"meshdns_queries_total", "protocol=udp,qtype=A,rcode=NOERROR,result=upstream", 1},
		{"meshdns_autopath_answers_total", "kind=table", n},
		// The cache counts its own lookups: the first repeat looks it up, later ones are
		// served from the packed reply (and counted as cache-hit queries above).
		{"meshdns_cache_hits_total", "", 1},
	} {
		if got := counterValue(t, reg, c.metric, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
}

// TestAutopathCountedByKind: the server counts every autopath answer once, by where the walk
// found the name, over both transports and whichever path answered (UDP repeats of the table
// walk come from the fast path).
func TestAutopathCountedByKind(t *testing.T) {
	reg := prometheus.NewRegistry()
	res, _ := testResolver(t, reg)
	addr := startWith(t, res, Options{Metrics: NewMetrics(reg)})
	const n = 3
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{
			"ratings.prod.svc.cluster.local.prod.svc.cluster.local.", // found in the table
			"ext.example.org.prod.svc.cluster.local.",                // found upstream
		} {
			for range n {
				if resp := exchange(t, network, addr, query(name, 0)); len(resp.Answer) < 2 {
					t.Fatalf("%s %s: %v, want a CNAME and its records", network, name, resp)
				}
			}
		}
	}
	for _, c := range []struct {
		metric, labels string
		want           float64
	}{
		{"meshdns_autopath_answers_total", "kind=table", 2 * n},
		{"meshdns_autopath_answers_total", "kind=upstream", 2 * n},
		{"meshdns_queries_total", "protocol=udp,qtype=A,rcode=NOERROR,result=autopath", 2 * n},
		{"meshdns_queries_total", "protocol=tcp,qtype=A,rcode=NOERROR,result=autopath", 2 * n},
	} {
		if got := counterValue(t, reg, c.metric, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, labels string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, l := range m.GetLabel() {
				pairs = append(pairs, l.GetName()+"="+l.GetValue())
			}
			if strings.Join(pairs, ",") == labels {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestFastPathAllocations: a table hit and a cached upstream answer on the fast path allocate
// nothing, metrics and server cookies included.
func TestFastPathAllocations(t *testing.T) {
	t.Run("one client context", func(t *testing.T) { testFastPathAllocations(t, false) })
	// A node agent's: the context comes from the client's address.
	t.Run("views", func(t *testing.T) { testFastPathAllocations(t, true) })
}

func testFastPathAllocations(t *testing.T, withViews bool) {
	reg := prometheus.NewRegistry()
	res, _ := testResolver(t, reg)
	from := netip.MustParseAddr("192.0.2.7")
	o := Options{Client: prodClient, Metrics: NewMetrics(reg)}
	if withViews {
		o.Client = resolver.Client{}
		o.Views = NewViews()
		o.Views.Set(map[netip.Addr]resolver.Client{from: prodClient, netip.MustParseAddr("192.0.2.8"): clientOf("store")})
	}
	srv := New(res, o)
	key, out := make([]byte, 0, keyCap), make([]byte, 0, MaxUDPSizeLimit)
	for _, name := range []string{"reviews.prod.svc.cluster.local.", "ext.example.org."} {
		for _, cookie := range []string{"", "0102030405060708", "valid"} {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			m.SetEdns0(1232, false)
			if cookie == "valid" { // the client cookie and the server cookie the server made
				var buf [cookieReplyLen]byte
				cookie = hex.EncodeToString(srv.cookies.cookieAnswer(&buf, []byte("clientck"), from, time.Now()))
			}
			if cookie != "" {
				m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie}}
			}
			pkt := pack(t, m)
			for range 2 { // the second time, the upstream answer comes from the cache
				if srv.handle(pkt, from, false) == nil {
					t.Fatalf("%s: no reply", name)
				}
			}
			var q wireQuery
			if srv.fastReply(pkt, from, key, out, &q) == nil {
				t.Fatalf("%s (cookie %q): not answered by the fast path", name, cookie)
			}
			if n := testing.AllocsPerRun(1000, func() { srv.fastReply(pkt, from, key, out, &q) }); n != 0 {
				t.Errorf("%s (cookie %q): %.1f allocations per fast-path reply, want 0", name, cookie, n)
			}
		}
	}
}

// TestStoreBounds: the store keeps within its count and byte budget per shard, and replacing
// an entry evicts nothing else.
func TestStoreBounds(t *testing.T) {
	s := newStore()
	big := make([]byte, 3000)
	for i := range 200_000 {
		s.put([]byte(fmt.Sprintf("name-%d", i)), &packed{wire: big, epoch: 1})
	}
	for i := range s.shards {
		sh := &s.shards[i]
		if len(sh.m) > shardCapacity || sh.bytes > shardBytes {
			t.Errorf("shard %d: %d entries, %d bytes; budget %d, %d", i, len(sh.m), sh.bytes, shardCapacity, shardBytes)
		}
		total := 0
		for _, p := range sh.m {
			total += len(p.wire)
		}
		if total != sh.bytes {
			t.Errorf("shard %d counts %d bytes, holds %d", i, sh.bytes, total)
		}
	}
	key := []byte("name-199999")
	sh := s.shard(key)
	before := len(sh.m)
	s.put(key, &packed{wire: big, epoch: 1})
	if len(sh.m) != before {
		t.Errorf("replacing an entry changed the shard from %d to %d entries", before, len(sh.m))
	}
}

// TestParseQuery: what the fast path takes, and what it leaves to the general path.
func TestParseQuery(t *testing.T) {
	base := func() *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("Web-1.prod.svc.cluster.local.", dns.TypeA)
		m.Id = 0xbeef
		return m
	}
	edit := func(f func(b []byte) []byte) []byte { return f(pack(t, base())) }
	with := func(f func(m *dns.Msg)) []byte {
		m := base()
		f(m)
		return pack(t, m)
	}
	for _, c := range []struct {
		name string
		pkt  []byte
		ok   bool
	}{
		{"plain", pack(t, base()), true},
		{"EDNS with cookie", with(func(m *dns.Msg) {
			m.SetEdns0(1232, true)
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
		}), true},
		{"cookie of 7 bytes (FORMERR)", with(func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "01020304050607"}}
		}), false},
		{"qtype OPT (FORMERR)", with(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeOPT }), false},
		{"class CHAOS", with(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false},
		{"response", with(func(m *dns.Msg) { m.Response = true }), false},
		{"NOTIFY", with(func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), false},
		{"truncated", with(func(m *dns.Msg) { m.Truncated = true }), false},
		{"two questions", with(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), false},
		{"an answer", with(func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
		}), false},
		{"EDNS version 1", with(func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), false},
		{"EDNS client subnet", with(func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 0, 0, 0)}}
		}), false},
		{"two OPT", with(func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, m.Extra[0]) }), false},
		{"escaped dot in a label", with(func(m *dns.Msg) { m.Question[0].Name = `a\.b.cluster.local.` }), false},
		{"space in a label", with(func(m *dns.Msg) { m.Question[0].Name = `a\032b.cluster.local.` }), false},
		{"trailing byte", edit(func(b []byte) []byte { return append(b, 0) }), false},
		{"cut short", edit(func(b []byte) []byte { return b[:len(b)-1] }), false},
		{"compression pointer", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, false},
	} {
		var q wireQuery
		ok := parseQuery(c.pkt, make([]byte, 0, keyCap), &q)
		if ok != c.ok {
			t.Errorf("%s: parseQuery = %v, want %v", c.name, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if q.id != 0xbeef || string(q.qname[1:6]) != "Web-1" {
			t.Errorf("%s: id %x, qname %q", c.name, q.id, q.qname)
		}
		want := append([]byte("\x05web-1\x04prod\x03svc\x07cluster\x05local\x00"), 0, 1, 0, 1, flagBits(t, c.pkt))
		if !bytes.Equal(q.key, want) {
			t.Errorf("%s: key %q, want %q", c.name, q.key, want)
		}
	}
}

// TestTriage: each rule of the header triage, on an otherwise plain query.
func TestTriage(t *testing.T) {
	plain := pack(t, query("web.", 0))
	header := func(off int, v uint16) []byte {
		b := append([]byte(nil), plain...)
		binary.BigEndian.PutUint16(b[off:], v)
		return b
	}
	flags := binary.BigEndian.Uint16(plain[2:])
	for _, c := range []struct {
		name string
		pkt  []byte
		ok   bool
	}{
		{"plain", plain, true},
		{"shorter than header and root question", plain[:headerLen+4], false},
		{"response", header(2, flags|bitQR), false},
		{"opcode NOTIFY", header(2, flags|dns.OpcodeNotify<<11), false},
		{"truncated", header(2, flags|bitTC), false},
		{"no question", header(4, 0), false},
		{"two questions", header(4, 2), false},
		{"an answer record", header(6, 1), false},
		{"an authority record", header(8, 1), false},
		{"one additional record", header(10, 1), true},
		{"two additional records", header(10, 2), false},
	} {
		if _, ok := triage(c.pkt); ok != c.ok {
			t.Errorf("%s: triage = %v, want %v", c.name, ok, c.ok)
		}
	}
}

// FuzzParseQuery: whatever parseQuery takes, miekg/dns reads the same way and the general
// path's rules (the server's packet rules, the resolver's triage, class IN) accept, so the
// fast path never answers a packet the general path would drop, reject or read differently.
func FuzzParseQuery(f *testing.F) {
	for _, m := range seedQueries() {
		f.Add(pack(f, m))
	}
	m := query("a-b.Example.ORG.", 1232)
	f.Add(pack(f, m))
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708010000005cf79f111f8130c3eee29480"}}
	f.Add(pack(f, m))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var q wireQuery
		if !parseQuery(pkt, make([]byte, 0, keyCap), &q) {
			return
		}
		var m dns.Msg
		if err := m.Unpack(pkt); err != nil {
			t.Fatalf("parseQuery took a packet miekg/dns rejects: %v", err)
		}
		if rcode := packetRcode(pkt, &m); rcode != dns.RcodeSuccess {
			t.Fatalf("parseQuery took a packet the server rejects with %s", dns.RcodeToString[rcode])
		}
		if rcode := resolver.Triage(&m); rcode != dns.RcodeSuccess || m.Question[0].Qclass != dns.ClassINET {
			t.Fatalf("parseQuery took a question the resolver rejects (%s) or of class %d", dns.RcodeToString[rcode], m.Question[0].Qclass)
		}
		if m.Response || m.Opcode != dns.OpcodeQuery || len(m.Question) != 1 || m.Id != q.id ||
			m.RecursionDesired != (q.flags&bitRD != 0) || m.CheckingDisabled != (q.flags&bitCD != 0) ||
			m.AuthenticatedData != q.ad {
			t.Fatalf("header read differently: %v", &m)
		}
		qq := m.Question[0]
		wire := make([]byte, 256)
		n, err := dns.PackDomainName(dnsname.Lower(qq.Name), wire, 0, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		want := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(wire[:n], qq.Qtype), qq.Qclass)
		want = append(want, flagBits(t, pkt))
		if !bytes.Equal(q.key, want) {
			t.Fatalf("key %q for question %v, want %q", q.key, qq, want)
		}
		opt := m.IsEdns0()
		if (opt != nil) != q.edns || (opt != nil && (opt.Do() != q.do || opt.UDPSize() != q.udpSize || opt.Version() != 0)) {
			t.Fatalf("EDNS read differently: %v", opt)
		}
		if !bytes.Equal(q.cookie, queryCookie(&m)) {
			t.Fatalf("cookie %x, miekg/dns reads %x", q.cookie, queryCookie(&m))
		}
	})
}

// flagBits is the last byte of a query's key: DO, CD and AD, as miekg/dns reads them.
func flagBits(t testing.TB, pkt []byte) byte {
	var m dns.Msg
	if err := m.Unpack(pkt); err != nil {
		t.Fatal(err)
	}
	var b byte
	if opt := m.IsEdns0(); opt != nil && opt.Do() {
		b |= 4
	}
	if m.CheckingDisabled {
		b |= 2
	}
	if m.AuthenticatedData {
		b |= 1
	}
	return b
}

// BenchmarkReply measures one reply without sockets: the general path (unpack, resolve,
// pack) against the fast path (copy and patch a stored reply), for a table hit and a cached
// upstream answer.
func BenchmarkReply(b *testing.B) {
	res, _ := testResolver(b, prometheus.NewRegistry())
	for _, name := range []string{"reviews.prod.svc.cluster.local.", "ext.example.org."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		pkt := pack(b, m)
		b.Run(name+"/general", func(b *testing.B) {
			srv := New(res, Options{Client: prodClient, Metrics: NewMetrics(prometheus.NewRegistry())})
			srv.fast = nil
			srv.handle(pkt, netip.Addr{}, false) // fills the cache
			b.ReportAllocs()
			for b.Loop() {
				srv.handle(pkt, netip.Addr{}, false)
			}
		})
		fast := func(b *testing.B, o Options, from netip.Addr) {
			srv := New(res, o)
			srv.handle(pkt, from, false)
			srv.handle(pkt, from, false)
			key, out := make([]byte, 0, keyCap), make([]byte, 0, MaxUDPSizeLimit)
			var q wireQuery
			b.ReportAllocs()
			for b.Loop() {
				if srv.fastReply(pkt, from, key, out, &q) == nil {
					srv.handle(pkt, from, false) // as the server does: a cached answer is re-stored each second
				}
			}
		}
		b.Run(name+"/fast", func(b *testing.B) {
			fast(b, Options{Client: prodClient, Metrics: NewMetrics(prometheus.NewRegistry())}, netip.Addr{})
		})
		// A node agent's: the client's context looked up among 110 pods (the kubelet's
		// default maximum) by its address.
		b.Run(name+"/fast-views", func(b *testing.B) {
			views := NewViews()
			pods := map[netip.Addr]resolver.Client{}
			for i := range 110 {
				ns := "prod"
				if i%4 != 0 {
					ns = fmt.Sprintf("team-%d", i%7)
				}
				pods[netip.AddrFrom4([4]byte{10, 244, 1, byte(i + 2)})] = clientOf(ns)
			}
			views.Set(pods)
			fast(b, Options{Views: views, Metrics: NewMetrics(prometheus.NewRegistry())}, netip.AddrFrom4([4]byte{10, 244, 1, 2}))
		})
	}
}
