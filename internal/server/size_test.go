package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
)

// bigEntry is a ServiceEntry whose host has 250 addresses: an A answer of about 4 KB, which
// the fast path keeps packed.
func bigEntry() string {
	addrs := make([]string, 250)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.1.%d.%d", i/200, i%200+1)
	}
	return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: big, namespace: prod}
spec:
  hosts: [amplify-me-please.example.com]
  addresses: [` + strings.Join(addrs, ", ") + `]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: NONE
`
}

// TestUDPRepliesCapped: a 58-byte query for a 4 KB answer gets at most 1,232 bytes over UDP
// with TC, whatever size it advertises, from the general path (first ask) and the fast path
// (second ask) alike; smaller advertised sizes are honoured; MaxUDPSize raises the cap; TCP
// gets the whole answer.
func TestUDPRepliesCapped(t *testing.T) {
	res := resolver.New(resolver.Options{Zone: "cluster.local"})
	res.SetTable(buildTable(t, bigEntry(), 1))
	capped := startWith(t, res, Options{})
	raised := startWith(t, res, Options{MaxUDPSize: 4096})
	const qname = "amplify-me-please.example.com."
	if n := len(pack(t, query(qname, 4096))); n != 58 {
		t.Fatalf("the query is %d bytes, want 58", n)
	}
	for _, tc := range []struct {
		name     string
		addr     string
		edns     uint16 // 0: none
		maxBytes int
		whole    bool
	}{
		{"EDNS 4096: capped at 1232", capped, 4096, 1232, false},
		{"EDNS 1232", capped, 1232, 1232, false},
		{"EDNS 512", capped, 512, 512, false},
		{"no EDNS: 512", capped, 0, 512, false},
		{"--max-udp-size 4096, EDNS 4096: whole", raised, 4096, 4096, true},
		{"--max-udp-size 4096, EDNS 1232", raised, 1232, 1232, false},
	} {
		for _, try := range []string{"general path", "fast path"} {
			t.Run(tc.name+"/"+try, func(t *testing.T) {
				out := rawExchange(t, tc.addr, pack(t, query(qname, tc.edns)))
				var m dns.Msg
				if err := m.Unpack(out); err != nil {
					t.Fatal(err)
				}
				if len(out) > tc.maxBytes {
					t.Errorf("%d bytes, limit %d", len(out), tc.maxBytes)
				}
				if m.Truncated == tc.whole || (len(m.Answer) == 250) != tc.whole {
					t.Errorf("TC %v with %d of 250 answers; want TC %v", m.Truncated, len(m.Answer), !tc.whole)
				}
				if (m.IsEdns0() != nil) != (tc.edns > 0) {
					t.Errorf("OPT %v, query's EDNS %d", m.IsEdns0(), tc.edns)
				}
			})
		}
	}
	if resp := exchange(t, "tcp", capped, query(qname, 4096)); len(resp.Answer) != 250 || resp.Truncated {
		t.Errorf("TCP: %d of 250 answers, TC %v", len(resp.Answer), resp.Truncated)
	}
}
