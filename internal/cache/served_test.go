package cache_test

import (
	"slices"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
)

func TestServedHeader(t *testing.T) {
	tests := []struct {
		name     string
		put, get *dns.Msg
		upstream func(*dns.Msg)
		wantAD   bool
	}{
		{name: "plain", put: query("www.example.com.", A), get: query("www.example.com.", A)},
		{name: "RD clear", put: query("www.example.com.", A), get: func() *dns.Msg {
			m := query("www.example.com.", A)
			m.RecursionDesired = false
			return m
		}()},
		{name: "CD set", put: withCD(query("www.example.com.", A)), get: withCD(query("www.example.com.", A))},
		{name: "upstream AA cleared", put: query("www.example.com.", A), get: query("www.example.com.", A),
			upstream: func(m *dns.Msg) { m.Authoritative = true }},
		{name: "upstream OPT dropped", put: withDO(query("www.example.com.", A)), get: withDO(query("www.example.com.", A)),
			upstream: func(m *dns.Msg) { m.SetEdns0(1232, true) }},
		{name: "AD kept for DO client", put: withDO(query("www.example.com.", A)), get: withDO(query("www.example.com.", A)),
			upstream: func(m *dns.Msg) { m.AuthenticatedData = true }, wantAD: true},
		{name: "AD kept for AD client", put: query("www.example.com.", A), get: func() *dns.Msg {
			m := query("www.example.com.", A)
			m.AuthenticatedData = true
			return m
		}(), upstream: func(m *dns.Msg) { m.AuthenticatedData = true }, wantAD: true},
		{name: "AD not given to other clients", put: func() *dns.Msg {
			m := query("www.example.com.", A)
			m.AuthenticatedData = true
			return m
		}(), get: query("www.example.com.", A), upstream: func(m *dns.Msg) { m.AuthenticatedData = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New(cache.Options{})
			up := reply(t, tc.put, NOERROR, []string{www}, nil)
			if tc.upstream != nil {
				tc.upstream(up)
			}
			c.Put(tc.put, up)
			tc.get.Id = tc.put.Id + 1
			tc.get.Question[0].Name = "WWW.example.COM."
			resp, st, _ := c.Get(tc.get)
			if st != cache.Hit {
				t.Fatalf("Get = %v, want Hit", st)
			}
			want := dns.MsgHdr{Id: tc.get.Id, Response: true, Opcode: dns.OpcodeQuery,
				RecursionDesired: tc.get.RecursionDesired, CheckingDisabled: tc.get.CheckingDisabled,
				RecursionAvailable: true, AuthenticatedData: tc.wantAD, Rcode: NOERROR}
			if resp.MsgHdr != want {
				t.Errorf("header\n got %+v\nwant %+v", resp.MsgHdr, want)
			}
			if !slices.Equal(resp.Question, tc.get.Question) {
				t.Errorf("question %v, want %v", resp.Question, tc.get.Question)
			}
			if opt := resp.IsEdns0(); opt != nil {
				t.Errorf("served an OPT record: %v", opt)
			}
		})
	}
}

func TestCountdown(t *testing.T) {
	tests := []struct {
		name       string
		opts       cache.Options
		rcode      int
		answer, ns []string
		extra      []string
		wait       time.Duration
		want       []uint32
	}{
		{name: "at Put", answer: []string{www, www}, want: []uint32{60, 60}},
		{name: "whole seconds", answer: []string{www}, wait: 10*time.Second + 900*time.Millisecond, want: []uint32{50}},
		{name: "last moment", answer: []string{www}, wait: time.Minute - time.Millisecond, want: []uint32{1}},
		{name: "clock steps back", answer: []string{www}, wait: -30 * time.Second, want: []uint32{60}},
		{name: "raised by MinTTL", opts: cache.Options{MinTTL: 30 * time.Second},
			answer: []string{"www.example.com. 5 IN A 192.0.2.1"}, wait: 10 * time.Second, want: []uint32{20}},
		{name: "capped by MaxTTL", opts: cache.Options{MaxTTL: 100 * time.Second},
			answer: []string{"www.example.com. 7200 IN A 192.0.2.1"}, wait: time.Second, want: []uint32{99}},
		{name: "shorter additional record stops at 0", answer: []string{www},
			extra: []string{"ns.example.com. 20 IN A 192.0.2.53"}, wait: 30 * time.Second, want: []uint32{30, 0}},
		{name: "negative SOA", rcode: NXDOMAIN, ns: []string{soa}, wait: 15 * time.Second, want: []uint32{45}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			tc.opts.Now = clk.Now
			c := cache.New(tc.opts)
			req := query("www.example.com.", A)
			up := reply(t, req, tc.rcode, tc.answer, tc.ns)
			up.Extra = mustRRs(t, tc.extra)
			c.Put(req, up)
			clk.Advance(tc.wait)
			resp, st, _ := c.Get(req)
			if st != cache.Hit {
				t.Fatalf("Get = %v, want Hit", st)
			}
			if got := ttls(resp); !slices.Equal(got, tc.want) {
				t.Errorf("TTLs %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOwnerSpelling(t *testing.T) {
	tests := []struct {
		name     string
		put, get string // qnames
		rcode    int
		answer   []string
		ns       []string
		want     []string // owner names, all sections
	}{
		{name: "owner takes the asker's case", put: "www.example.com.", get: "WwW.eXample.COM.",
			answer: []string{www}, want: []string{"WwW.eXample.COM."}},
		{name: "stored case is not served", put: "WWW.EXAMPLE.COM.", get: "www.example.com.",
			answer: []string{"WWW.EXAMPLE.COM. 60 IN A 192.0.2.1"}, want: []string{"www.example.com."}},
		{name: "CNAME target keeps its name", put: "www.example.com.", get: "WWW.example.com.",
			answer: []string{"www.example.com. 60 IN CNAME web.example.net.", "web.example.net. 60 IN A 192.0.2.3"},
			want:   []string{"WWW.example.com.", "web.example.net."}},
		{name: "SOA owner kept", put: "www.example.com.", get: "WWW.example.com.", rcode: NXDOMAIN,
			ns: []string{soa}, want: []string{"example.com."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New(cache.Options{})
			put := query(tc.put, A)
			c.Put(put, reply(t, put, tc.rcode, tc.answer, tc.ns))
			get := query(tc.get, A)
			resp, st, _ := c.Get(get)
			if st != cache.Hit {
				t.Fatalf("Get = %v, want Hit", st)
			}
			var owners []string
			for _, rr := range append(slices.Clone(resp.Answer), resp.Ns...) {
				owners = append(owners, rr.Header().Name)
			}
			if !slices.Equal(owners, tc.want) {
				t.Errorf("owners %q, want %q", owners, tc.want)
			}
			if resp.Question[0] != get.Question[0] {
				t.Errorf("question %v, want %v", resp.Question[0], get.Question[0])
			}
		})
	}
}

func TestIndependentCopies(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(stored, served *dns.Msg)
	}{
		{name: "caller changes its response after Put", mutate: func(stored, _ *dns.Msg) {
			stored.Answer[0].(*dns.A).A[3] = 99
			stored.Answer[0].Header().Ttl = 1
			stored.Answer[0].Header().Name = "evil.example."
			stored.Rcode = REFUSED
		}},
		{name: "caller changes a served response", mutate: func(_, served *dns.Msg) {
			served.Answer[0].(*dns.A).A[3] = 99
			served.Answer[0].Header().Ttl = 1
			served.Answer[0].Header().Name = "evil.example."
			served.Answer = append(served.Answer, served.Answer[0])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New(cache.Options{})
			req := query("www.example.com.", A)
			up := reply(t, req, NOERROR, []string{www}, nil)
			c.Put(req, up)
			first, _, _ := c.Get(req)
			tc.mutate(up, first)
			resp, _, _ := c.Get(req)
			if len(resp.Answer) != 1 || resp.Answer[0].String() != mustRR(t, www).String() || resp.Rcode != NOERROR {
				t.Errorf("served %v, want %q", resp.Answer, www)
			}
		})
	}
}

func TestStale(t *testing.T) {
	tests := []struct {
		name       string
		serveStale time.Duration
		rcode      int
		wait       time.Duration
		want       cache.Status
		wantTTL    uint32 // of every record
		wantLen    int
	}{
		{name: "fresh", serveStale: time.Hour, wait: 59 * time.Second, want: cache.Hit, wantTTL: 1, wantLen: 1},
		{name: "just expired", serveStale: time.Hour, wait: time.Minute, want: cache.Stale, wantTTL: cache.StaleTTL, wantLen: 1},
		{name: "end of window", serveStale: time.Hour, wait: time.Minute + time.Hour - time.Nanosecond,
			want: cache.Stale, wantTTL: cache.StaleTTL, wantLen: 1},
		{name: "past window dropped", serveStale: time.Hour, wait: time.Minute + time.Hour, want: cache.Miss},
		{name: "short window", serveStale: 10 * time.Second, wait: 69 * time.Second, want: cache.Stale,
			wantTTL: cache.StaleTTL, wantLen: 1},
		{name: "past short window dropped", serveStale: 10 * time.Second, wait: 70 * time.Second, want: cache.Miss},
		{name: "disabled", wait: time.Minute, want: cache.Miss},
		{name: "negative", serveStale: time.Hour, rcode: NXDOMAIN, wait: 2 * time.Minute, want: cache.Stale,
			wantTTL: cache.StaleTTL, wantLen: 1},
		{name: "negative past window dropped", serveStale: time.Minute, rcode: NXDOMAIN, wait: 2 * time.Minute,
			want: cache.Miss},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			c := cache.New(cache.Options{ServeStale: tc.serveStale, Now: clk.Now})
			req := query("www.example.com.", A)
			if tc.rcode == NXDOMAIN {
				c.Put(req, reply(t, req, NXDOMAIN, nil, []string{soa}))
			} else {
				c.Put(req, reply(t, req, NOERROR, []string{www, "www.example.com. 300 IN A 192.0.2.2"}, nil))
			}
			clk.Advance(tc.wait)
			resp, st, prefetch := c.Get(req)
			if st != tc.want || prefetch {
				t.Fatalf("Get = %v, prefetch %v; want %v, false", st, prefetch, tc.want)
			}
			if pos, neg := c.Len(); pos+neg != tc.wantLen {
				t.Errorf("Len = %d, %d; want %d entry", pos, neg, tc.wantLen)
			}
			if resp == nil {
				return
			}
			for _, ttl := range ttls(resp) {
				if ttl != tc.wantTTL {
					t.Errorf("TTLs %v, want all %d", ttls(resp), tc.wantTTL)
					break
				}
			}
		})
	}
}
