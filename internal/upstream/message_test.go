package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/miekg/dns"
)

func TestForwardTruncated(t *testing.T) {
	tcAndTCP := func(network string, q *dns.Msg) []packet {
		if network == "udp" {
			m := replyA(q, dns.RcodeSuccess, "")
			m.Truncated = true
			return []packet{{msg: m}}
		}
		return []packet{{msg: replyA(q, dns.RcodeSuccess, "192.0.2.99")}}
	}
	tcAndNoTCP := func(network string, q *dns.Msg) []packet {
		if network == "tcp" {
			return nil // close without answering
		}
		return tcAndTCP(network, q)
	}
	tests := []struct {
		name      string
		handle    handler
		tcp       bool
		truncated bool
		answer    []string
		queries   []string // networks the fake saw, in order
	}{
		{name: "TC over UDP retried over TCP", handle: tcAndTCP,
			answer: []string{"a.test. 60 in a 192.0.2.99"}, queries: []string{"udp", "tcp"}},
		{name: "TCP client goes straight to TCP", handle: tcAndTCP, tcp: true,
			answer: []string{"a.test. 60 in a 192.0.2.99"}, queries: []string{"tcp"}},
		{name: "TCP retry fails: truncated reply returned", handle: tcAndNoTCP,
			truncated: true, queries: []string{"udp", "tcp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t, tc.handle)
			req := newRequest("a.test.", dns.TypeA)
			resp, err := New([]netip.AddrPort{fake.addr}, fastOpts).Forward(context.Background(), req, Via{TCP: tc.tcp})
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			checkReply(t, req, resp)
			if resp.Truncated != tc.truncated {
				t.Errorf("tc = %v, want %v", resp.Truncated, tc.truncated)
			}
			if got := rrStrings(resp.Answer); !slices.Equal(got, tc.answer) {
				t.Errorf("answer %q, want %q", got, tc.answer)
			}
			if seen := fake.Networks(); !slices.Equal(seen, tc.queries) {
				t.Errorf("upstream saw queries over %v, want %v", seen, tc.queries)
			}
		})
	}
}

// TestForwardQuery checks the query meshdns sends: its own ID and OPT, the client's question,
// RD, CD and DO, none of the client's EDNS options.
func TestForwardQuery(t *testing.T) {
	tests := []struct {
		name   string
		edns   bool
		do, rd bool
		cd     bool
	}{
		{name: "client EDNS with DO", edns: true, do: true, rd: true},
		{name: "client EDNS without DO", edns: true, rd: true, cd: true},
		{name: "client without EDNS", rd: true},
		{name: "RD clear", edns: true},
	}
	for _, tc := range tests {
		for _, network := range networks {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				fake := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.99"))
				req := clientRequest(tc.edns, tc.do, tc.rd, tc.cd)
				f := New([]netip.AddrPort{fake.addr}, fastOpts)
				f.newID = func() uint16 { return 0x5EED }
				resp, err := f.Forward(context.Background(), req, Via{TCP: network == "tcp"})
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				checkReply(t, req, resp)
				queries := fake.Queries()
				if len(queries) != 1 {
					t.Fatalf("upstream saw %d queries, want 1", len(queries))
				}
				checkQuery(t, queries[0], req, tc.do)
			})
		}
	}
}

func clientRequest(edns, do, rd, cd bool) *dns.Msg {
	req := new(dns.Msg).SetQuestion("MiXeD.a.TEST.", dns.TypeA)
	req.Id, req.RecursionDesired, req.CheckingDisabled = clientID, rd, cd
	if edns {
		req.SetEdns0(1232, do)
		opt := req.IsEdns0()
		opt.Option = append(opt.Option,
			&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
			&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(198, 51, 100, 0)})
	}
	return req
}

func checkQuery(t *testing.T, q, req *dns.Msg, do bool) {
	t.Helper()
	if q.Id != 0x5EED {
		t.Errorf("query id %#x, want the forwarder's 0x5eed", q.Id)
	}
	if !reflect.DeepEqual(q.Question, req.Question) {
		t.Errorf("query question %v, want %v", q.Question, req.Question)
	}
	if q.RecursionDesired != req.RecursionDesired || q.CheckingDisabled != req.CheckingDisabled || q.Response {
		t.Errorf("query rd %v cd %v qr %v, want rd %v cd %v qr false", q.RecursionDesired, q.CheckingDisabled,
			q.Response, req.RecursionDesired, req.CheckingDisabled)
	}
	opt := q.IsEdns0()
	if opt == nil || len(q.Extra) != 1 {
		t.Fatalf("query additional %v, want exactly our OPT", q.Extra)
	}
	if opt.UDPSize() != DefaultUDPSize || opt.Do() != do || len(opt.Option) != 0 {
		t.Errorf("query OPT size %d do %v options %v, want size %d do %v no options",
			opt.UDPSize(), opt.Do(), opt.Option, DefaultUDPSize, do)
	}
}

// TestForwardReplyFields checks what is taken from the upstream's reply and what from the
// client's request.
func TestForwardReplyFields(t *testing.T) {
	fake := startFake(t, func(_ string, q *dns.Msg) []packet {
		m := replyA(q, dns.RcodeSuccess, "192.0.2.99")
		m.Authoritative, m.AuthenticatedData, m.RecursionDesired = true, true, false
		m.Ns = []dns.RR{mustRR("test. 60 IN NS ns.test.")}
		m.Extra = []dns.RR{mustRR("ns.test. 60 IN A 192.0.2.53")}
		m.SetEdns0(1232, true)
		return []packet{{msg: m}}
	})
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			req := clientRequest(true, true, true, true)
			resp, err := New([]netip.AddrPort{fake.addr}, fastOpts).Forward(context.Background(), req, Via{TCP: network == "tcp"})
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			checkReply(t, req, resp)
			// AA is the upstream's to say of itself, not of meshdns relaying it.
			if resp.Authoritative || !resp.AuthenticatedData || !resp.RecursionAvailable {
				t.Errorf("aa %v ad %v ra %v, want aa false and the upstream's ad and ra, true true",
					resp.Authoritative, resp.AuthenticatedData, resp.RecursionAvailable)
			}
			if got, want := rrStrings(resp.Ns), []string{"test. 60 in ns ns.test."}; !slices.Equal(got, want) {
				t.Errorf("authority %q, want %q", got, want)
			}
			if got, want := rrStrings(resp.Extra), []string{"ns.test. 60 in a 192.0.2.53"}; !slices.Equal(got, want) {
				t.Errorf("additional %q, want %q (no OPT)", got, want)
			}
		})
	}
}

// TestForwardOwnerSpelling checks that an upstream answering in lowercase, not echoing the
// query's case, still yields records owned by the client's spelling; other owners are kept.
func TestForwardOwnerSpelling(t *testing.T) {
	fake := startFake(t, func(_ string, q *dns.Msg) []packet {
		name := dnsname.Lower(q.Question[0].Name)
		m := replyA(q, dns.RcodeSuccess, "192.0.2.99")
		m.Question[0].Name = name
		m.Answer[0].Header().Name = name
		m.Answer = append(m.Answer, mustRR("target.test. 60 IN A 192.0.2.98"))
		m.Ns = []dns.RR{mustRR("test. 60 IN NS ns.test.")}
		m.Extra = []dns.RR{mustRR(name + ` 60 IN TXT "extra"`)}
		return []packet{{msg: m}}
	})
	owners := func(rrs []dns.RR) []string {
		var out []string
		for _, rr := range rrs {
			out = append(out, rr.Header().Name)
		}
		return out
	}
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			req := clientRequest(true, false, true, false)
			f := newForwarder(t, []netip.AddrPort{fake.addr}, fastOpts, 0)
			resp, err := f.Forward(context.Background(), req, Via{TCP: network == "tcp"})
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			checkReply(t, req, resp)
			qname := req.Question[0].Name
			for _, sec := range []struct {
				name      string
				got, want []string
			}{
				{"answer", owners(resp.Answer), []string{qname, "target.test."}},
				{"authority", owners(resp.Ns), []string{"test."}},
				{"additional", owners(resp.Extra), []string{qname}},
			} {
				if !slices.Equal(sec.got, sec.want) {
					t.Errorf("%s owners %q, want %q", sec.name, sec.got, sec.want)
				}
			}
		})
	}
}

// TestReplyAD checks that the upstream's AD bit reaches only a caller who set AD or DO
// (RFC 6840 5.7).
func TestReplyAD(t *testing.T) {
	tests := []struct {
		name         string
		ad, do, upAD bool
		want         bool
	}{
		{name: "neither AD nor DO", upAD: true},
		{name: "AD set", ad: true, upAD: true, want: true},
		{name: "DO set", do: true, upAD: true, want: true},
		{name: "asked, upstream without AD", ad: true, do: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest("a.test.", dns.TypeA)
			req.AuthenticatedData = tc.ad
			if tc.do {
				req.IsEdns0().SetDo()
			}
			up := replyA(req, dns.RcodeSuccess, "192.0.2.1")
			up.AuthenticatedData = tc.upAD
			if got := reply(req, up).AuthenticatedData; got != tc.want {
				t.Errorf("ad = %v, want %v", got, tc.want)
			}
		})
	}
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

func TestForwardErrors(t *testing.T) {
	silent := silentServer(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	shortCtx, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	twoQuestions := newRequest("a.test.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	slow := Options{TryTimeout: time.Minute, Deadline: time.Minute}
	tests := []struct {
		name    string
		servers []netip.AddrPort
		ctx     context.Context
		req     *dns.Msg
		want    error
	}{
		{name: "nil request", servers: []netip.AddrPort{silent}, req: nil, want: errNilRequest},
		{name: "no question", servers: []netip.AddrPort{silent}, req: new(dns.Msg), want: errQuestion},
		{name: "two questions", servers: []netip.AddrPort{silent}, req: twoQuestions, want: errQuestion},
		{name: "no servers", req: newRequest("a.test.", dns.TypeA), want: errNoServers},
		{name: "cancelled context", servers: []netip.AddrPort{silent}, ctx: cancelled,
			req: newRequest("a.test.", dns.TypeA), want: context.Canceled},
		{name: "context deadline before try timeout", servers: []netip.AddrPort{silent}, ctx: shortCtx,
			req: newRequest("a.test.", dns.TypeA), want: context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			resp, err := New(tc.servers, slow).Forward(ctx, tc.req, Via{})
			if !errors.Is(err, tc.want) {
				t.Errorf("Forward = %v, %v; want error %v", resp, err, tc.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	servers := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53"), netip.MustParseAddrPort("[fe80::1%eth0]:53")}
	defaults := Options{TryTimeout: 2 * time.Second, Deadline: 5 * time.Second, UDPSize: 4096,
		FailThreshold: 3, MaxOutstanding: 1000}
	tests := []struct {
		name    string
		servers []netip.AddrPort
		opts    Options
		want    Options
	}{
		{name: "defaults", want: defaults},
		{name: "kept", opts: Options{TryTimeout: time.Second, Deadline: 3 * time.Second, UDPSize: 1232,
			Policy: Parallel, FailThreshold: 1, MaxOutstanding: 10},
			want: Options{TryTimeout: time.Second, Deadline: 3 * time.Second, UDPSize: 1232,
				Policy: Parallel, FailThreshold: 1, MaxOutstanding: 10}},
		{name: "UDP size raised to 512", opts: Options{UDPSize: 100},
			want: Options{TryTimeout: 2 * time.Second, Deadline: 5 * time.Second, UDPSize: 512,
				FailThreshold: 3, MaxOutstanding: 1000}},
		{name: "duplicate servers dropped", servers: append(slices.Clone(servers), servers[1], servers[0]),
			want: defaults},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.servers
			if in == nil {
				in = servers
			}
			f := New(in, tc.opts)
			opts := f.opts
			if opts.Now == nil || opts.Logger == nil {
				t.Errorf("options Now set %v, Logger set %v; want both defaulted", opts.Now != nil, opts.Logger != nil)
			}
			opts.Now, opts.Logger = nil, nil
			if !reflect.DeepEqual(opts, tc.want) {
				t.Errorf("options %+v, want %+v", opts, tc.want)
			}
			got := f.Servers()
			if !slices.Equal(got, servers) {
				t.Errorf("Servers() = %v, want %v", got, servers)
			}
			got[0] = netip.AddrPort{}
			if f.Servers()[0] != servers[0] {
				t.Error("Servers() returned the Forwarder's own slice")
			}
		})
	}
}

// TestAnswersFoldsASCIIOnly: a reply's question matches the query's name without ASCII case
// (RFC 4343) and nothing more.
func TestAnswersFoldsASCIIOnly(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a.test.", "A.TeSt.", true},
		{"a.test.", "a.test", false},
		{"a-b.test.", "a\x0db.test.", false}, // '-'|0x20 == '\r'|0x20 would match a naive fold
		{"\xc3\xa9.test.", "\xc3\x89.test.", false},
		{"", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.a+"~"+tc.b, func(t *testing.T) {
			q := &dns.Msg{Question: []dns.Question{{Name: tc.a, Qtype: dns.TypeA, Qclass: dns.ClassINET}}}
			resp := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true},
				Question: []dns.Question{{Name: tc.b, Qtype: dns.TypeA, Qclass: dns.ClassINET}}}
			if got := answers(resp, q); got != tc.want {
				t.Errorf("answers(reply for %q, query for %q) = %v, want %v", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

// FuzzParseReply feeds arbitrary upstream packets to the reply check: it never panics, and
// whatever it accepts answers the query.
func FuzzParseReply(f *testing.F) {
	q := New(nil, Options{}).query(newRequest("a.test.", dns.TypeA))
	good := replyA(q, dns.RcodeSuccess, "192.0.2.1")
	f.Add(mustPack(good))
	good.Truncated = true
	f.Add(mustPack(good)[:40])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := parseReply(b, q)
		if resp != nil && !answers(resp, q) {
			t.Errorf("accepted a reply that does not answer the query: %v", resp)
		}
	})
}
