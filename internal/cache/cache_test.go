package cache_test

import (
	"slices"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
)

const www = "www.example.com. 60 IN A 192.0.2.1"

func TestKey(t *testing.T) {
	q := func() *dns.Msg { return query("www.example.com.", A) }
	chaos := q()
	chaos.Question[0].Qclass = dns.ClassCHAOS
	tests := []struct {
		name     string
		put, get *dns.Msg
		want     cache.Status
	}{
		{name: "same question", put: q(), get: q(), want: cache.Hit},
		{name: "qname case differs", put: q(), get: query("WwW.ExAmPlE.cOm.", A), want: cache.Hit},
		{name: "qname differs", put: q(), get: query("www.example.org.", A), want: cache.Miss},
		{name: "qtype differs", put: q(), get: query("www.example.com.", AAAA), want: cache.Miss},
		{name: "qclass differs", put: q(), get: chaos, want: cache.Miss},
		{name: "DO only when stored", put: withDO(q()), get: q(), want: cache.Miss},
		{name: "DO only when asked", put: q(), get: withDO(q()), want: cache.Miss},
		{name: "DO both times", put: withDO(q()), get: withDO(q()), want: cache.Hit},
		{name: "EDNS without DO is no DO", put: q().SetEdns0(4096, false), get: q(), want: cache.Hit},
		{name: "CD only when stored", put: withCD(q()), get: q(), want: cache.Miss},
		{name: "CD only when asked", put: q(), get: withCD(q()), want: cache.Miss},
		{name: "CD both times", put: withCD(q()), get: withCD(q()), want: cache.Hit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New(cache.Options{})
			c.Put(tc.put, reply(t, tc.put, NOERROR, []string{www}, nil))
			if _, st, _ := c.Get(tc.get); st != tc.want {
				t.Errorf("Get = %v, want %v", st, tc.want)
			}
		})
	}
}

func TestCacheable(t *testing.T) {
	positive := func(t *testing.T, req *dns.Msg) *dns.Msg { return reply(t, req, NOERROR, []string{www}, nil) }
	tests := []struct {
		name   string
		opts   cache.Options
		req    func() *dns.Msg
		resp   func(t *testing.T, req *dns.Msg) *dns.Msg // positive if nil
		stored bool
	}{
		{name: "positive answer", stored: true},
		{name: "two questions", req: func() *dns.Msg {
			m := query("www.example.com.", A)
			m.Question = append(m.Question, dns.Question{Name: "x.example.com.", Qtype: A, Qclass: dns.ClassINET})
			return m
		}},
		{name: "no question", req: func() *dns.Msg { m := query("www.example.com.", A); m.Question = nil; return m }},
		{name: "opcode NOTIFY", req: func() *dns.Msg { m := query("www.example.com.", A); m.Opcode = dns.OpcodeNotify; return m }},
		{name: "opcode UPDATE", req: func() *dns.Msg { m := query("www.example.com.", A); m.Opcode = dns.OpcodeUpdate; return m }},
		{name: "no response", resp: func(*testing.T, *dns.Msg) *dns.Msg { return nil }},
		{name: "response without question", resp: func(t *testing.T, req *dns.Msg) *dns.Msg {
			m := positive(t, req)
			m.Question = nil
			return m
		}},
		{name: "response for another name", resp: func(t *testing.T, req *dns.Msg) *dns.Msg {
			return positive(t, query("www.example.org.", A))
		}},
		{name: "response for another type", resp: func(t *testing.T, req *dns.Msg) *dns.Msg {
			return positive(t, query("www.example.com.", AAAA))
		}},
		{name: "response question in other case", stored: true, resp: func(t *testing.T, req *dns.Msg) *dns.Msg {
			return positive(t, query("WWW.EXAMPLE.COM.", A))
		}},
		{name: "truncated", resp: func(t *testing.T, req *dns.Msg) *dns.Msg {
			m := positive(t, req)
			m.Truncated = true
			return m
		}},
		{name: "caching disabled", opts: cache.Options{Size: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New(tc.opts)
			req := query("www.example.com.", A)
			if tc.req != nil {
				req = tc.req()
			}
			resp := positive
			if tc.resp != nil {
				resp = tc.resp
			}
			c.Put(req, resp(t, req))
			pos, neg := c.Len()
			_, st, _ := c.Get(query("www.example.com.", A))
			if got := pos+neg == 1 && st == cache.Hit; got != tc.stored || pos+neg > 1 {
				t.Errorf("stored = %v (Len %d, %d; Get %v), want %v", got, pos, neg, st, tc.stored)
			}
		})
	}
}

func TestPositiveTTL(t *testing.T) {
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}} // TTL field 0
	tests := []struct {
		name       string
		opts       cache.Options
		answer, ns []string
		extra      []dns.RR
		want       uint32 // entry TTL; 0: not cached
		served     []uint32
	}{
		{name: "one record", answer: []string{www}, want: 60, served: []uint32{60}},
		{name: "minimum of the answer", want: 30, served: []uint32{30, 30},
			answer: []string{www, "www.example.com. 30 IN A 192.0.2.2"}},
		{name: "authority counts", want: 20, served: []uint32{20, 20},
			answer: []string{www}, ns: []string{"example.com. 20 IN NS ns.example.com."}},
		{name: "CNAME chain", want: 60, served: []uint32{60, 60},
			answer: []string{"www.example.com. 300 IN CNAME web.example.net.", "web.example.net. 60 IN A 192.0.2.3"}},
		{name: "OPT ignored", answer: []string{www}, extra: []dns.RR{opt}, want: 60, served: []uint32{60}},
		{name: "MaxTTL default", answer: []string{"www.example.com. 86400 IN A 192.0.2.1"}, want: 3600, served: []uint32{3600}},
		{name: "MaxTTL set", opts: cache.Options{MaxTTL: 10 * time.Minute},
			answer: []string{"www.example.com. 86400 IN A 192.0.2.1"}, want: 600, served: []uint32{600}},
		{name: "MinTTL raises", opts: cache.Options{MinTTL: 30 * time.Second},
			answer: []string{"www.example.com. 5 IN A 192.0.2.1"}, want: 30, served: []uint32{30}},
		{name: "MaxTTL wins over MinTTL", opts: cache.Options{MinTTL: time.Hour, MaxTTL: time.Minute},
			answer: []string{www}, want: 60, served: []uint32{60}},
		{name: "TTL 0 not cached", answer: []string{"www.example.com. 0 IN A 192.0.2.1"}},
		{name: "TTL 0 in authority not cached", answer: []string{www}, ns: []string{"example.com. 0 IN NS ns.example.com."}},
		{name: "TTL 0 raised by MinTTL", opts: cache.Options{MinTTL: 10 * time.Second},
			answer: []string{"www.example.com. 0 IN A 192.0.2.1"}, want: 10, served: []uint32{10}},
		{name: "TTL with top bit means 0", answer: []string{"www.example.com. 2147483648 IN A 192.0.2.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			tc.opts.Now = clk.Now
			c := cache.New(tc.opts)
			req := query("www.example.com.", A)
			resp := reply(t, req, NOERROR, tc.answer, tc.ns)
			resp.Ns = append(resp.Ns, tc.extra...) // malformed there, but must not set the TTL either
			resp.Extra = append(resp.Extra, tc.extra...)
			c.Put(req, resp)
			checkLifetime(t, c, clk, req, tc.want, tc.served, [2]int{1, 0})
		})
	}
}

// checkLifetime asserts the entry for req lives exactly want seconds in store (positive,
// negative), serving TTLs served right after Put; ServeStale must be 0.
func checkLifetime(t *testing.T, c *cache.Cache, clk *testutil.Clock, req *dns.Msg, want uint32, served []uint32, store [2]int) {
	t.Helper()
	resp, st, _ := c.Get(req)
	if want == 0 {
		if pos, neg := c.Len(); st != cache.Miss || pos+neg != 0 {
			t.Fatalf("not cacheable, but Get = %v and Len = %d, %d", st, pos, neg)
		}
		return
	}
	if pos, neg := c.Len(); st != cache.Hit || [2]int{pos, neg} != store {
		t.Fatalf("Get = %v, Len = %d, %d; want Hit and %v", st, pos, neg, store)
	}
	if got := ttls(resp); !slices.Equal(got, served) {
		t.Errorf("served TTLs %v, want %v", got, served)
	}
	life := time.Duration(want) * time.Second
	clk.Advance(life - time.Millisecond)
	if _, st, _ := c.Get(req); st != cache.Hit {
		t.Errorf("Get %v after Put = %v, want Hit", life-time.Millisecond, st)
	}
	clk.Advance(time.Millisecond)
	if _, st, _ := c.Get(req); st != cache.Miss {
		t.Errorf("Get %v after Put = %v, want Miss", life, st)
	}
}

func TestNegativeTTL(t *testing.T) {
	tests := []struct {
		name       string
		opts       cache.Options
		rcode      int
		answer, ns []string
		want       uint32
		served     []uint32
	}{
		{name: "NXDOMAIN uses SOA MINIMUM", rcode: NXDOMAIN, ns: []string{soa}, want: 60, served: []uint32{60}},
		{name: "NXDOMAIN uses SOA TTL when lower", rcode: NXDOMAIN, want: 20, served: []uint32{20},
			ns: []string{"example.com. 20 IN SOA ns.example.com. hostmaster.example.com. 1 7200 1800 86400 60"}},
		{name: "NODATA", rcode: NOERROR, ns: []string{soa}, want: 60, served: []uint32{60}},
		{name: "NXDOMAIN after CNAME", rcode: NXDOMAIN, want: 60, served: []uint32{60, 60},
			answer: []string{"www.example.com. 300 IN CNAME gone.example.com."}, ns: []string{soa}},
		{name: "NODATA after CNAME", rcode: NOERROR, want: 60, served: []uint32{60, 60},
			answer: []string{"www.example.com. 300 IN CNAME edge.example.net."}, ns: []string{soa}},
		{name: "NODATA after a shorter CNAME", rcode: NOERROR, want: 30, served: []uint32{30, 30},
			answer: []string{"www.example.com. 30 IN CNAME edge.example.net."}, ns: []string{soa}},
		{name: "NODATA after CNAME without SOA", rcode: NOERROR,
			answer: []string{"www.example.com. 300 IN CNAME edge.example.net."}},
		{name: "NXDOMAIN without SOA", rcode: NXDOMAIN},
		{name: "NODATA without SOA", rcode: NOERROR, ns: []string{"example.com. 300 IN NS ns.example.com."}},
		{name: "SOA MINIMUM 0", rcode: NXDOMAIN,
			ns: []string{"example.com. 300 IN SOA ns.example.com. hostmaster.example.com. 1 7200 1800 86400 0"}},
		{name: "clamped to MaxTTL", rcode: NXDOMAIN, opts: cache.Options{MaxTTL: 30 * time.Second},
			ns: []string{soa}, want: 30, served: []uint32{30}},
		{name: "clamped to default MaxTTL", rcode: NXDOMAIN, want: 3600, served: []uint32{3600},
			ns: []string{"example.com. 86400 IN SOA ns.example.com. hostmaster.example.com. 1 7200 1800 86400 86400"}},
		{name: "MinTTL not applied", rcode: NXDOMAIN, opts: cache.Options{MinTTL: 5 * time.Minute},
			ns: []string{soa}, want: 60, served: []uint32{60}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			tc.opts.Now = clk.Now
			c := cache.New(tc.opts)
			req := query("www.example.com.", A)
			c.Put(req, reply(t, req, tc.rcode, tc.answer, tc.ns))
			checkLifetime(t, c, clk, req, tc.want, tc.served, [2]int{0, 1})
		})
	}
}

func TestUncachedRcodes(t *testing.T) {
	for _, rcode := range []int{dns.RcodeRefused, dns.RcodeNotImplemented, dns.RcodeFormatError,
		dns.RcodeYXDomain, dns.RcodeNotAuth, dns.RcodeBadCookie} {
		t.Run(dns.RcodeToString[rcode], func(t *testing.T) {
			c := cache.New(cache.Options{})
			req := query("www.example.com.", A)
			c.Put(req, reply(t, req, rcode, []string{www}, []string{soa}))
			if pos, neg := c.Len(); pos+neg != 0 {
				t.Errorf("Len = %d, %d; want nothing cached", pos, neg)
			}
		})
	}
}

func TestServfail(t *testing.T) {
	tests := []struct {
		name      string
		opts      cache.Options // ServeStale 1h unless set; -1 disables it
		before    int           // rcode stored first: NOERROR, NXDOMAIN, SERVFAIL, or -1 for none
		wait      time.Duration
		after     time.Duration // between the SERVFAIL Put and Get
		want      cache.Status
		wantRcode int
	}{
		{name: "cached when nothing is", before: -1, want: cache.Hit, wantRcode: SERVFAIL},
		{name: "cached for 5s", before: -1, after: 5*time.Second - time.Millisecond, want: cache.Hit, wantRcode: SERVFAIL},
		{name: "gone after 5s, never stale", before: -1, after: 5 * time.Second, want: cache.Miss},
		{name: "fresh positive kept", before: NOERROR, wait: 10 * time.Second, want: cache.Hit, wantRcode: NOERROR},
		{name: "stale positive kept", before: NOERROR, wait: 2 * time.Minute, want: cache.Stale, wantRcode: NOERROR},
		{name: "stale positive still kept later", before: NOERROR, wait: 2 * time.Minute, after: 10 * time.Second,
			want: cache.Stale, wantRcode: NOERROR},
		{name: "stale negative kept", before: NXDOMAIN, wait: 2 * time.Minute, want: cache.Stale, wantRcode: NXDOMAIN},
		{name: "positive past serve-stale replaced", before: NOERROR, wait: time.Minute + time.Hour,
			want: cache.Hit, wantRcode: SERVFAIL},
		{name: "fresh positive kept without serve-stale", opts: cache.Options{ServeStale: -1}, before: NOERROR,
			wait: 10 * time.Second, want: cache.Hit, wantRcode: NOERROR},
		{name: "expired positive replaced without serve-stale", opts: cache.Options{ServeStale: -1}, before: NOERROR,
			wait: time.Minute, want: cache.Hit, wantRcode: SERVFAIL},
		{name: "servfail refreshed", before: SERVFAIL, wait: 4 * time.Second, after: 4 * time.Second,
			want: cache.Hit, wantRcode: SERVFAIL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			tc.opts.Now = clk.Now
			if tc.opts.ServeStale == 0 {
				tc.opts.ServeStale = time.Hour
			}
			c := cache.New(tc.opts)
			req := query("www.example.com.", A)
			switch tc.before {
			case NOERROR:
				c.Put(req, reply(t, req, NOERROR, []string{www}, nil))
			case NXDOMAIN, SERVFAIL:
				c.Put(req, reply(t, req, tc.before, nil, []string{soa}))
			}
			clk.Advance(tc.wait)
			c.Put(req, reply(t, req, SERVFAIL, nil, nil))
			clk.Advance(tc.after)
			resp, st, _ := c.Get(req)
			if st != tc.want {
				t.Fatalf("Get = %v, want %v", st, tc.want)
			}
			if resp != nil && resp.Rcode != tc.wantRcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.wantRcode])
			}
		})
	}
}
