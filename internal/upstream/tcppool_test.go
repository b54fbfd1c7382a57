package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestTCPReuse(t *testing.T) {
	const queries = 5
	closeAfter := func(_ string, q *dns.Msg) []packet {
		return []packet{{msg: replyA(q, dns.RcodeSuccess, "192.0.2.99"), close: true}}
	}
	truncatedUDP := func(network string, q *dns.Msg) []packet {
		m := replyA(q, dns.RcodeSuccess, "192.0.2.99")
		m.Truncated = network == "udp"
		return []packet{{msg: m}}
	}
	tests := []struct {
		name     string
		handle   handler
		tcp      bool // the client's transport
		accepted int  // TCP connections the server sees for all the queries
	}{
		{name: "TCP clients share one connection", handle: answerWith(dns.RcodeSuccess, "192.0.2.99"),
			tcp: true, accepted: 1},
		{name: "truncated UDP retries share one connection", handle: truncatedUDP, accepted: 1},
		{name: "server closing after each answer: fresh connection each time", handle: closeAfter,
			tcp: true, accepted: queries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t, tc.handle)
			f := newForwarder(t, []netip.AddrPort{fake.addr}, fastOpts, 0)
			for i := range queries {
				req := newRequest(fmt.Sprintf("q%d.test.", i), dns.TypeA)
				resp, err := f.Forward(context.Background(), req, Via{TCP: tc.tcp})
				if err != nil {
					t.Fatalf("query %d: %v", i, err)
				}
				checkReply(t, req, resp)
				want := []string{fmt.Sprintf("q%d.test. 60 in a 192.0.2.99", i)}
				if got := rrStrings(resp.Answer); !slices.Equal(got, want) || resp.Truncated {
					t.Errorf("query %d: answer %q tc %v, want %q", i, got, resp.Truncated, want)
				}
			}
			if accepted, _ := fake.Accepted(); accepted != tc.accepted {
				t.Errorf("server accepted %d connections for %d queries, want %d", accepted, queries, tc.accepted)
			}
			if n := len(fake.Queries()); n < queries {
				t.Errorf("server saw %d queries, want at least %d", n, queries)
			}
		})
	}
}

// TestTCPIdle checks that idle connections are closed after the idle timeout and by Close,
// and that a Forwarder still works after Close, without keeping connections.
func TestTCPIdle(t *testing.T) {
	tests := []struct {
		name  string
		idle  time.Duration
		close bool
	}{
		{name: "idle timeout", idle: 20 * time.Millisecond},
		{name: "Close", idle: time.Hour, close: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.99"))
			f := newForwarder(t, []netip.AddrPort{fake.addr}, fastOpts, tc.idle)
			ask := func() {
				t.Helper()
				if _, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{TCP: true}); err != nil {
					t.Fatalf("Forward: %v", err)
				}
			}
			ask()
			if tc.close {
				f.Close()
			}
			waitFor(t, "the idle connection to be closed", func() bool { _, ended := fake.Accepted(); return ended == 1 })
			ask()
			if accepted, _ := fake.Accepted(); accepted != 2 {
				t.Errorf("server accepted %d connections, want 2", accepted)
			}
			if tc.close {
				waitFor(t, "the connection to be closed, not kept", func() bool { _, ended := fake.Accepted(); return ended == 2 })
			}
		})
	}
}
