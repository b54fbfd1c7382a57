package cache_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/miekg/dns"
)

// TestEntryBytesEstimate stores many answers of one shape and compares the heap the cache
// holds for them (runtime.MemStats after a collection) with what it estimates (Bytes). The
// estimate bounds memory (--cache-max-bytes), so it must be honest: within 25% either way.
func TestEntryBytesEstimate(t *testing.T) {
	const n = 400
	tests := []struct {
		name       string
		rcode      int
		qtype      uint16   // A if 0
		answer, ns []string // "Q" stands for the qname
		extra      []string
		flood      bool // the large-answer flood's shape instead (170 A records)
		negative   bool
	}{
		{name: "one A", answer: []string{"Q 60 IN A 192.0.2.1"}},
		{name: "170 A records", flood: true},
		{name: "NXDOMAIN with 170 additional records", flood: true, negative: true},
		{name: "eight AAAA", qtype: dns.TypeAAAA, answer: repeat("Q 60 IN AAAA 2001:db8::%d", 8)},
		{name: "CNAME chain", answer: []string{"Q 60 IN CNAME a.example.net.", "a.example.net. 60 IN CNAME b.example.org.",
			"b.example.org. 60 IN A 192.0.2.1", "b.example.org. 60 IN A 192.0.2.2"}},
		{name: "TXT", qtype: dns.TypeTXT, answer: []string{`Q 60 IN TXT "` + strings.Repeat("v=spf1 ", 30) + `" "` + strings.Repeat("x", 200) + `"`}},
		{name: "MX with authority and glue", qtype: dns.TypeMX, answer: []string{"Q 60 IN MX 10 mx1.example.net.", "Q 60 IN MX 20 mx2.example.net."},
			ns:    []string{"example.com. 60 IN NS ns1.example.net.", "example.com. 60 IN NS ns2.example.net."},
			extra: []string{"mx1.example.net. 60 IN A 192.0.2.25", "mx2.example.net. 60 IN AAAA 2001:db8::25"}},
		{name: "HTTPS", qtype: dns.TypeHTTPS, answer: []string{`Q 60 IN HTTPS 1 . alpn="h3,h2" ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1`}},
		{name: "NXDOMAIN", rcode: NXDOMAIN, ns: []string{soa}},
		{name: "signed NODATA", ns: []string{soa,
			"example.com. 60 IN RRSIG SOA 13 2 300 20300101000000 20200101000000 12345 example.com. " + sig,
			"Q 60 IN NSEC z.example.com. A RRSIG NSEC",
			"Q 60 IN RRSIG NSEC 13 3 60 20300101000000 20200101000000 12345 example.com. " + sig}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New(cache.Options{Size: 10 * n, MaxBytes: 1 << 30})
			put := func(i int) { // what Put is given is garbage afterwards, as in the resolver
				if tc.flood {
					c.Put(floodReply(t, i, tc.negative))
					return
				}
				qname := fmt.Sprintf("q%04d.example.com.", i)
				req := query(qname, max(tc.qtype, A))
				up := reply(t, req, tc.rcode, subst(tc.answer, qname), subst(tc.ns, qname))
				c.Put(req, reunpack(t, up, subst(tc.extra, qname)))
			}
			put(0) // the first Put allocates the stores' maps
			before, est0 := heapInUse(), sum(c.Bytes())
			for i := 1; i <= n; i++ {
				put(i)
			}
			held := float64(int64(heapInUse()) - int64(before))
			est := sum(c.Bytes()) - est0
			if l1, l2 := c.Len(); l1+l2 != n+1 {
				t.Fatalf("Len = %d, %d; want %d stored", l1, l2, n+1)
			}
			ratio := held / float64(est)
			t.Logf("%.0f bytes held per entry, %d estimated (held/estimate %.2f)", held/n, est/n, ratio)
			if ratio < 0.8 || ratio > 1.25 {
				t.Errorf("held/estimate = %.2f, want within 0.8..1.25", ratio)
			}
			runtime.KeepAlive(c)
		})
	}
}

const sig = "oJB1W6WNGv+ldvQ3WDG0MQkg5IEhjRip8WTrPYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6oB9wfuh3DTJXUAfI/M0zmO/zz8bW0Rznl8O3tGNazPwQKkRN20XPXV6nwwfoXmJQbsLNrLfkGJ5D6fwFm8nN+6pBzeDQfsS3Ap3o="

func sum(a, b int) int { return a + b }

// repeat makes n records from a format with one %d.
func repeat(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i+1)
	}
	return out
}

// subst replaces the owner "Q" by qname.
func subst(rrs []string, qname string) []string {
	out := make([]string, len(rrs))
	for i, s := range rrs {
		out[i] = strings.Replace(s, "Q ", qname+" ", 1)
	}
	return out
}

// reunpack adds extra to m and returns it packed and unpacked, as the forwarder hands it over.
func reunpack(t *testing.T, m *dns.Msg, extra []string) *dns.Msg {
	t.Helper()
	m.Extra = mustRRs(t, extra)
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := new(dns.Msg)
	if err := out.Unpack(wire); err != nil {
		t.Fatal(err)
	}
	return out
}
