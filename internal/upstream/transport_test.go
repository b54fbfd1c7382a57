package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSlowUpstreamAnswersLate: the only upstream answers 250 ms after each query, later
// than the 100 ms per try but well within the 2 s deadline. Its answer reaches the client,
// over UDP (the late reply to the first datagram, or to one sent again on the same socket
// with the same ID) and over TCP (read on the same connection).
func TestSlowUpstreamAnswersLate(t *testing.T) {
	slow := func(_ string, q *dns.Msg) []packet {
		time.Sleep(250 * time.Millisecond) // the upstream's delay; nothing asserts on time
		return []packet{{msg: replyA(q, dns.RcodeSuccess, "192.0.2.8")}}
	}
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			fake := startFake(t, slow)
			f := newForwarder(t, []netip.AddrPort{fake.addr},
				Options{TryTimeout: 100 * time.Millisecond, Deadline: 2 * time.Second}, 0)
			req := newRequest("a.test.", dns.TypeA)
			resp, err := forwardWithin(t, context.Background(), f, req, network == "tcp")
			if err != nil {
				t.Fatalf("Forward: %v, want the late answer", err)
			}
			checkReply(t, req, resp)
			if want := []string{"a.test. 60 in a 192.0.2.8"}; !slices.Equal(rrStrings(resp.Answer), want) {
				t.Errorf("answer %q, want %q", rrStrings(resp.Answer), want)
			}
			if ids := queryIDs(fake); len(ids) > 1 && ids[0] != ids[len(ids)-1] {
				t.Errorf("query sent again with another ID %v: the late reply to the first cannot answer", ids)
			}
		})
	}
}

func queryIDs(s *fakeServer) []uint16 {
	var ids []uint16
	for _, q := range s.Queries() {
		ids = append(ids, q.Id)
	}
	return slices.Compact(ids)
}

// bigTXTReply is a reply of 30 TXT records of 200 bytes: about 6.5 KB, past the 4096 bytes
// meshdns advertises, and sent over UDP without TC as some servers do.
func bigTXTReply(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg).SetReply(q)
	for i := range 30 {
		m.Answer = append(m.Answer, &dns.TXT{
			Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{fmt.Sprintf("%02d%s", i, strings.Repeat("x", 198))}})
	}
	return m
}

// TestOversizedUDPReplies: a UDP reply is read whole whatever its size, and one that does
// not parse sends the question over TCP at once instead of waiting for the try to time out.
func TestOversizedUDPReplies(t *testing.T) {
	garbage := func(q *dns.Msg) []byte {
		b := mustPack(replyA(q, dns.RcodeSuccess, "192.0.2.66"))
		return append(b[:12], 0xC0, 0xFF, 0xFF) // the header, then a pointer to nowhere
	}
	tests := []struct {
		name     string
		handle   handler
		answers  int
		networks []string // what the upstream saw
	}{
		{name: "6.5 KB reply without TC read whole", answers: 30, networks: []string{"udp"},
			handle: func(network string, q *dns.Msg) []packet {
				if network == "tcp" {
					return nil
				}
				return []packet{{msg: bigTXTReply(q)}}
			}},
		{name: "malformed UDP reply retried over TCP", answers: 1, networks: []string{"udp", "tcp"},
			handle: func(network string, q *dns.Msg) []packet {
				if network == "udp" {
					return []packet{{raw: garbage(q)}}
				}
				return []packet{{msg: replyA(q, dns.RcodeSuccess, "192.0.2.9")}}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t, tc.handle)
			// Per try and in all far beyond a loopback exchange: only the fixed path answers
			// before the deadline.
			f := newForwarder(t, []netip.AddrPort{fake.addr}, Options{TryTimeout: 2 * time.Second, Deadline: 2 * time.Second}, 0)
			req := newRequest("big.test.", dns.TypeTXT)
			resp, err := forwardWithin(t, context.Background(), f, req, false)
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			checkReply(t, req, resp)
			if len(resp.Answer) != tc.answers || resp.Truncated {
				t.Errorf("%d answers tc %v, want %d tc false", len(resp.Answer), resp.Truncated, tc.answers)
			}
			if got := fake.Networks(); !slices.Equal(got, tc.networks) {
				t.Errorf("upstream saw queries over %v, want %v", got, tc.networks)
			}
		})
	}
}
