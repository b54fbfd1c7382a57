package cache_test

import (
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/testutil/dnsmasq"
	"github.com/miekg/dns"
)

// TestCNAMEOnlyNotCached: a real dnsmasq answers www.example.com with only a CNAME to a name it
// does not know, NOERROR and no SOA. That says nothing about the asked type at the target, so it
// is NODATA without SOA, which RFC 2308 §5 says not to cache; a chain that reaches the asked type
// is cached as before.
func TestCNAMEOnlyNotCached(t *testing.T) {
	up := dnsmasq.Start(t, "--local=/example.com/", "--local=/example.net/",
		"--cname=www.example.com,edge.example.net,300",
		"--cname=web.example.com,host.example.net,300", "--host-record=host.example.net,192.0.2.7,300")
	tests := []struct {
		qname  string
		qtype  uint16
		answer int // records in upstream's answer
		stored bool
	}{
		{qname: "www.example.com.", qtype: A, answer: 1},
		{qname: "www.example.com.", qtype: AAAA, answer: 1},
		{qname: "web.example.com.", qtype: A, answer: 2, stored: true},
	}
	for _, tc := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.qname+dns.TypeToString[tc.qtype]+"/"+network, func(t *testing.T) {
				req := query(tc.qname, tc.qtype)
				cl := &dns.Client{Net: network, Timeout: 2 * time.Second}
				resp, _, err := cl.Exchange(req, up.String())
				if err != nil {
					t.Fatalf("dnsmasq: %v", err)
				}
				if resp.Rcode != NOERROR || len(resp.Answer) != tc.answer || len(resp.Ns) != 0 {
					t.Fatalf("dnsmasq answered %v; the test needs NOERROR, %d answers, no authority", resp, tc.answer)
				}
				c := cache.New(cache.Options{})
				c.Put(req, resp)
				_, st, _ := c.Get(query(tc.qname, tc.qtype))
				want := 0
				if tc.stored {
					want = 1
				}
				if pos, neg := c.Len(); (st == cache.Hit) != tc.stored || pos+neg != want {
					t.Errorf("Get = %v, Len = %d, %d; want stored %v", st, pos, neg, tc.stored)
				}
			})
		}
	}
}
