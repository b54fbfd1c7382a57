package unbound

import (
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
)

const testZone = `
local-zone: "test." static
local-data: "a.test. 30 IN A 192.0.2.10"
`

func TestStart(t *testing.T) {
	both := Start(t, testZone)
	tcpOnly := Start(t, testZone+"do-udp: no")
	tests := []struct {
		name    string
		tcpOnly bool // ask the do-udp: no server
		network string
		qname   string
		rcode   int
		answer  string
	}{
		{name: "A over UDP", network: "udp", qname: "a.test.", answer: "192.0.2.10"},
		{name: "A over TCP", network: "tcp", qname: "a.test.", answer: "192.0.2.10"},
		{name: "TCP-only server over TCP", tcpOnly: true, network: "tcp", qname: "a.test.", answer: "192.0.2.10"},
		{name: "outside the local zones refused, never recursed", network: "udp", qname: "example.com.",
			rcode: dns.RcodeRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := both
			if tc.tcpOnly {
				addr = tcpOnly
			}
			c := &dns.Client{Net: tc.network, Timeout: 2 * time.Second}
			resp, _, err := c.Exchange(new(dns.Msg).SetQuestion(tc.qname, dns.TypeA), addr.String())
			if err != nil {
				t.Fatalf("exchange with %s: %v", addr, err)
			}
			if resp.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.answer == "" {
				return
			}
			if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != tc.answer {
				t.Errorf("answer = %v, want %s A %s", resp.Answer, tc.qname, tc.answer)
			}
		})
	}
}

func TestStartTCPOnlyHasNoUDP(t *testing.T) {
	addr := Start(t, testZone+"do-udp: no")
	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	if resp, _, err := c.Exchange(new(dns.Msg).SetQuestion("a.test.", dns.TypeA), addr.String()); err == nil {
		t.Errorf("UDP query to a do-udp: no server answered: %v", resp)
	}
}

func TestStartBadConfFails(t *testing.T) {
	if !testutil.Fails(t, func(tb testing.TB) { Start(tb, "no-such-option: yes") }) {
		t.Fatal("Start with a bad option did not fail the test")
	}
}
