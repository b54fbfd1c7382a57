package cache_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestDenialKeepsOnlyProof: of a negative answer the cache keeps what a cached denial is
// served with (RFC 2308 §6: the SOA; RFC 4035 §3.1.3: NSEC/NSEC3 and their signatures), not
// the NS records and additional section an upstream may fill to make every NXDOMAIN large.
func TestDenialKeepsOnlyProof(t *testing.T) {
	const rrsig = " 60 IN RRSIG %s 13 2 60 20300101000000 20200101000000 12345 example.com. " + sig
	ns := []string{
		"example.com. 60 IN NS ns1.example.com.",
		soa,
		fmt.Sprintf("example.com."+rrsig, "SOA"),
		"example.com. 60 IN NSEC z.example.com. A NS SOA RRSIG NSEC",
		fmt.Sprintf("example.com."+rrsig, "NSEC"),
		fmt.Sprintf("example.com."+rrsig, "NS"),
		"example.com. 60 IN NSEC3 1 0 0 - 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR NS SOA RRSIG",
	}
	extra := []string{"ns1.example.com. 60 IN A 192.0.2.53", "ns1.example.com. 60 IN AAAA 2001:db8::53"}
	tests := []struct {
		name          string
		rcode         int
		answer        []string
		wantNs        []uint16 // types of the served authority records (RRSIG: the type covered)
		wantExtra     int
		wantAnswerLen int
	}{
		{name: "NXDOMAIN", rcode: NXDOMAIN, wantNs: []uint16{dns.TypeSOA, dns.TypeSOA, dns.TypeNSEC, dns.TypeNSEC, dns.TypeNSEC3}},
		{name: "NODATA", rcode: NOERROR, wantNs: []uint16{dns.TypeSOA, dns.TypeSOA, dns.TypeNSEC, dns.TypeNSEC, dns.TypeNSEC3}},
		{name: "NXDOMAIN after CNAME keeps the chain", rcode: NXDOMAIN, answer: []string{"www.example.com. 60 IN CNAME gone.example.com."},
			wantNs: []uint16{dns.TypeSOA, dns.TypeSOA, dns.TypeNSEC, dns.TypeNSEC, dns.TypeNSEC3}, wantAnswerLen: 1},
		{name: "positive keeps every section", rcode: NOERROR, answer: []string{www},
			wantNs:    []uint16{dns.TypeNS, dns.TypeSOA, dns.TypeSOA, dns.TypeNSEC, dns.TypeNSEC, dns.TypeNS, dns.TypeNSEC3},
			wantExtra: 2, wantAnswerLen: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New(cache.Options{})
			req := withDO(query("www.example.com.", A))
			up := reply(t, req, tc.rcode, tc.answer, ns)
			up.Extra = mustRRs(t, extra)
			c.Put(req, up)
			resp, st, _ := c.Get(withDO(query("www.example.com.", A)))
			if st != cache.Hit {
				t.Fatalf("Get = %v, want Hit", st)
			}
			var got []uint16
			for _, rr := range resp.Ns {
				typ := rr.Header().Rrtype
				if s, ok := rr.(*dns.RRSIG); ok {
					typ = s.TypeCovered
				}
				got = append(got, typ)
			}
			if !slices.Equal(got, tc.wantNs) || len(resp.Extra) != tc.wantExtra || len(resp.Answer) != tc.wantAnswerLen {
				t.Errorf("served answer %d, authority %v, additional %d; want %d, %v, %d",
					len(resp.Answer), typeNames(got), len(resp.Extra), tc.wantAnswerLen, typeNames(tc.wantNs), tc.wantExtra)
			}
		})
	}
}

func typeNames(types []uint16) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = dns.TypeToString[t]
	}
	return out
}

// TestEvictionByBytes: MaxBytes bounds both stores together, the least recently used entries
// go first, and a store within half of MaxBytes keeps its entries whatever the other stores.
func TestEvictionByBytes(t *testing.T) {
	const maxBytes = 512 << 10 // about 33 flood answers (15 KB each), a thousand denials (0.5 KB)
	tests := []struct {
		name           string
		positives      int // flood answers stored first
		negatives      int // flood denials stored next
		laterPositives int // flood answers stored last, under other names
		wantPositive   func(n int) bool
		wantNegative   func(n int) bool
	}{
		{name: "negatives cannot push out positives within half", positives: 10, negatives: 1200,
			wantPositive: func(n int) bool { return n == 10 }, wantNegative: func(n int) bool { return n > 0 && n < 1200 }},
		{name: "negatives may use what positives leave", negatives: 900,
			wantPositive: func(n int) bool { return n == 0 }, wantNegative: func(n int) bool { return n == 900 }},
		{name: "positives take back their half", negatives: 900, laterPositives: 60,
			wantPositive: func(n int) bool { return n > 10 && n < 60 }, wantNegative: func(n int) bool { return n > 0 && n < 900 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			c := cache.New(cache.Options{MaxBytes: maxBytes, Metrics: cache.NewMetrics(reg)})
			for i := range tc.positives {
				c.Put(floodReply(t, i, false))
			}
			for i := range tc.negatives {
				c.Put(floodReply(t, i, true))
			}
			for i := range tc.laterPositives {
				c.Put(floodReply(t, 100000+i, false))
			}
			pos, neg := c.Len()
			pb, nb := c.Bytes()
			t.Logf("Len %d, %d; Bytes %d, %d", pos, neg, pb, nb)
			if !tc.wantPositive(pos) || !tc.wantNegative(neg) {
				t.Errorf("Len = %d, %d", pos, neg)
			}
			if pb+nb > maxBytes {
				t.Errorf("Bytes = %d + %d, above MaxBytes %d", pb, nb, maxBytes)
			}
			if tc.laterPositives > 0 && pb < maxBytes/2-16<<10 {
				t.Errorf("positive store holds %d bytes, less than its half of %d", pb, maxBytes)
			}
			for _, kind := range []struct {
				label string
				want  int
			}{{"positive", pb}, {"negative", nb}} {
				if got := metric(t, reg, "meshdns_cache_bytes", kind.label); got != float64(kind.want) {
					t.Errorf("meshdns_cache_bytes{kind=%q} = %v, want %d", kind.label, got, kind.want)
				}
			}
			evicted := tc.positives + tc.negatives + tc.laterPositives - pos - neg
			if got := metric(t, reg, "meshdns_cache_evictions_total", ""); got != float64(evicted) {
				t.Errorf("evictions = %v, want %d", got, evicted)
			}
		})
	}
}

// TestEntryLargerThanMaxBytes: an answer whose estimate alone exceeds MaxBytes is passed on
// but not kept, and evicts nothing.
func TestEntryLargerThanMaxBytes(t *testing.T) {
	c := cache.New(cache.Options{MaxBytes: 8 << 10})
	req := query("www.example.com.", A)
	c.Put(req, reply(t, req, NOERROR, []string{www}, nil))
	c.Put(floodReply(t, 1, false))
	if pos, neg := c.Len(); pos != 1 || neg != 0 {
		t.Errorf("Len = %d, %d; want only the small answer", pos, neg)
	}
}
