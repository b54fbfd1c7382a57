package dnsmasq

import (
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
)

func TestStart(t *testing.T) {
	addr := Start(t, "--address=/a.test/192.0.2.10")
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := &dns.Client{Net: network, Timeout: 2 * time.Second}
			resp, _, err := c.Exchange(new(dns.Msg).SetQuestion("a.test.", dns.TypeA), addr.String())
			if err != nil {
				t.Fatalf("exchange with %s: %v", addr, err)
			}
			if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
				t.Errorf("answer = %v, want a.test. A 192.0.2.10", resp.Answer)
			}
		})
	}
}

func TestStartBadArgsFails(t *testing.T) {
	if !testutil.Fails(t, func(tb testing.TB) { Start(tb, "--no-such-option") }) {
		t.Fatal("Start with a bad option did not fail the test")
	}
}
