package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil/dnsmasq"
	"github.com/miekg/dns"
)

const clientID = 0xABCD

var networks = []string{"udp", "tcp"}

// Small timeouts keep failing cases short; nothing asserts on durations.
var fastOpts = Options{TryTimeout: 300 * time.Millisecond, Deadline: 3 * time.Second}

// bigTXT is a TXT record of five 210-byte strings: a ~1100-byte reply, over 512 and under
// dnsmasq's default EDNS maximum of 1232.
var bigTXT = func() []string {
	var s []string
	for _, c := range "abcde" {
		s = append(s, strings.Repeat(string(c), 210))
	}
	return s
}()

func startDnsmasq(t *testing.T) netip.AddrPort {
	t.Helper()
	return dnsmasq.Start(t,
		"--local=/test/",
		"--local-ttl=30",
		"--host-record=a.test,192.0.2.10", // exact name: AAAA is NODATA (--address gives NXDOMAIN)
		"--txt-record=big.test,"+strings.Join(bigTXT, ","),
	)
}

// newRequest is what a client would send: RD set, EDNS with a cookie we must not forward.
func newRequest(qname string, qtype uint16) *dns.Msg {
	req := new(dns.Msg).SetQuestion(qname, qtype)
	req.Id = clientID
	req.SetEdns0(1232, false)
	opt := req.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	return req
}

// rrStrings renders records like dig, fields separated by one space, lowercased.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ToLower(strings.Join(strings.Fields(rr.String()), " ")))
	}
	return out
}

func bigTXTString() string {
	return `big.test. 30 in txt "` + strings.Join(bigTXT, `" "`) + `"`
}

// checkReply asserts what every reply to req must satisfy.
func checkReply(t *testing.T, req, resp *dns.Msg) {
	t.Helper()
	if resp.Id != req.Id || !resp.Response {
		t.Errorf("id %#x qr %v, want id %#x qr true", resp.Id, resp.Response, req.Id)
	}
	if !reflect.DeepEqual(resp.Question, req.Question) {
		t.Errorf("question %v, want exactly %v", resp.Question, req.Question)
	}
	if resp.RecursionDesired != req.RecursionDesired || resp.CheckingDisabled != req.CheckingDisabled {
		t.Errorf("rd %v cd %v, want the request's %v %v", resp.RecursionDesired, resp.CheckingDisabled,
			req.RecursionDesired, req.CheckingDisabled)
	}
	if resp.IsEdns0() != nil {
		t.Errorf("reply carries the upstream's OPT record: %v", resp.Extra)
	}
}

func TestForwardDnsmasq(t *testing.T) {
	server := startDnsmasq(t)
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		udpSize uint16
		rcode   int
		answer  []string
	}{
		{name: "A forwarded", qname: "a.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess,
			answer: []string{"a.test. 30 in a 192.0.2.10"}},
		{name: "question case preserved", qname: "A.TeSt.", qtype: dns.TypeA, rcode: dns.RcodeSuccess,
			answer: []string{"a.test. 30 in a 192.0.2.10"}},
		{name: "NODATA", qname: "a.test.", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess},
		{name: "NXDOMAIN passes through", qname: "unknown.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "big TXT whole", qname: "big.test.", qtype: dns.TypeTXT, rcode: dns.RcodeSuccess,
			answer: []string{bigTXTString()}},
		{name: "big TXT over 512-byte EDNS retried on TCP", qname: "big.test.", qtype: dns.TypeTXT,
			udpSize: 512, rcode: dns.RcodeSuccess, answer: []string{bigTXTString()}},
	}
	for _, tc := range tests {
		for _, network := range networks {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				opts := fastOpts
				opts.UDPSize = tc.udpSize
				req := newRequest(tc.qname, tc.qtype)
				resp, err := New([]netip.AddrPort{server}, opts).Forward(context.Background(), req, Via{TCP: network == "tcp"})
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				checkReply(t, req, resp)
				if resp.Rcode != tc.rcode || resp.Truncated {
					t.Errorf("rcode %s tc %v, want %s tc false", dns.RcodeToString[resp.Rcode], resp.Truncated,
						dns.RcodeToString[tc.rcode])
				}
				if got := rrStrings(resp.Answer); !slices.Equal(got, tc.answer) {
					t.Errorf("answer\n got %q\nwant %q", got, tc.answer)
				}
			})
		}
	}
}

func TestForwardFailover(t *testing.T) {
	dm := startDnsmasq(t)
	servfail := startFake(t, answerWith(dns.RcodeServerFailure, "")).addr
	refused := startFake(t, answerWith(dns.RcodeRefused, "")).addr
	silent, silent2, silent3 := silentServer(t), silentServer(t), silentServer(t)
	closed := closedPort(t)
	tests := []struct {
		name     string
		servers  []netip.AddrPort
		deadline time.Duration
		rcode    int
		answer   []string
		wantErr  error // nil: any error is accepted when rcode is -1
	}{
		{name: "closed port then dnsmasq", servers: []netip.AddrPort{closed, dm},
			answer: []string{"a.test. 30 in a 192.0.2.10"}},
		{name: "silent server then dnsmasq", servers: []netip.AddrPort{silent, dm},
			answer: []string{"a.test. 30 in a 192.0.2.10"}},
		{name: "SERVFAIL then dnsmasq", servers: []netip.AddrPort{servfail, dm},
			answer: []string{"a.test. 30 in a 192.0.2.10"}},
		{name: "REFUSED then dnsmasq", servers: []netip.AddrPort{refused, dm},
			answer: []string{"a.test. 30 in a 192.0.2.10"}},
		{name: "all fail with rcodes: last reply returned", servers: []netip.AddrPort{servfail, refused},
			rcode: dns.RcodeRefused},
		{name: "failed reply kept over a later timeout", servers: []netip.AddrPort{servfail, silent, closed},
			rcode: dns.RcodeServerFailure},
		// The silent server, last, is listened to until the deadline.
		{name: "all dead: error", servers: []netip.AddrPort{closed, silent}, deadline: time.Second, rcode: -1},
		{name: "deadline ends the walk", servers: []netip.AddrPort{silent, silent2, silent3, dm},
			deadline: 400 * time.Millisecond, rcode: -1, wantErr: context.DeadlineExceeded},
	}
	for _, tc := range tests {
		for _, network := range networks {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				opts := fastOpts
				if tc.deadline != 0 {
					opts.Deadline = tc.deadline
				}
				req := newRequest("a.test.", dns.TypeA)
				resp, err := New(tc.servers, opts).Forward(context.Background(), req, Via{TCP: network == "tcp"})
				if tc.rcode == -1 {
					checkError(t, err, tc.wantErr, tc.servers)
					return
				}
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				checkReply(t, req, resp)
				if resp.Rcode != tc.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
				}
				if got := rrStrings(resp.Answer); !slices.Equal(got, tc.answer) {
					t.Errorf("answer\n got %q\nwant %q", got, tc.answer)
				}
			})
		}
	}
}

func checkError(t *testing.T, err, want error, servers []netip.AddrPort) {
	t.Helper()
	if err == nil {
		t.Fatal("Forward: want an error, got a reply")
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("err = %v, want %v", err, want)
	}
	if !strings.HasPrefix(err.Error(), "upstream 127.0.0.1:") {
		t.Errorf("err %q does not name the upstream", err)
	}
	t.Logf("error (expected): %v (servers %v)", err, servers)
}

// TestForwardIgnoresForgedReplies sends one forged reply before the genuine one; the forged
// reply carries 192.0.2.66 and must never be returned.
func TestForwardIgnoresForgedReplies(t *testing.T) {
	tests := []struct {
		name    string
		udpOnly bool
		forge   func(m *dns.Msg)
	}{
		{name: "wrong ID", forge: func(m *dns.Msg) { m.Id ^= 0xFFFF }},
		{name: "QR not set", forge: func(m *dns.Msg) { m.Response = false }},
		{name: "other qname", forge: func(m *dns.Msg) { m.Question[0].Name = "b.test." }},
		{name: "other qtype", forge: func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }},
		{name: "other qclass", forge: func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }},
		{name: "no question", forge: func(m *dns.Msg) { m.Question = nil }},
		{name: "other source port", udpOnly: true},
	}
	for _, tc := range tests {
		for _, network := range networks {
			if tc.udpOnly && network == "tcp" {
				continue
			}
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				fake := startFake(t, func(_ string, q *dns.Msg) []packet {
					forged := replyA(q, dns.RcodeSuccess, "192.0.2.66")
					if tc.forge != nil {
						tc.forge(forged)
					}
					return []packet{{msg: forged, spoofed: tc.forge == nil}, {msg: replyA(q, dns.RcodeSuccess, "192.0.2.99")}}
				})
				req := newRequest("a.test.", dns.TypeA)
				resp, err := New([]netip.AddrPort{fake.addr}, fastOpts).Forward(context.Background(), req, Via{TCP: network == "tcp"})
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				checkReply(t, req, resp)
				want := []string{"a.test. 60 in a 192.0.2.99"}
				if got := rrStrings(resp.Answer); !slices.Equal(got, want) {
					t.Errorf("answer %q, want %q", got, want)
				}
			})
		}
	}
}

func TestForwardOnlyForgedRepliesTimesOut(t *testing.T) {
	fake := startFake(t, func(_ string, q *dns.Msg) []packet {
		forged := replyA(q, dns.RcodeSuccess, "192.0.2.66")
		forged.Id ^= 0xFFFF
		return []packet{{msg: forged}}
	})
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			// The only server is listened to until the deadline, kept short.
			opts := Options{TryTimeout: 100 * time.Millisecond, Deadline: 500 * time.Millisecond}
			resp, err := New([]netip.AddrPort{fake.addr}, opts).
				Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{TCP: network == "tcp"})
			if err == nil {
				t.Fatalf("Forward returned %v, want a timeout error", resp)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("err = %v, want a timeout", err)
			}
		})
	}
}
