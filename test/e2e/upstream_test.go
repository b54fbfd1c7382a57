package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil/unbound"
)

// hugeTXT is 14 TXT records of 240 bytes: an answer of about 3.5 KiB.
var hugeTXT = func() []string {
	var rrs []string
	for i := range 14 {
		rrs = append(rrs, fmt.Sprintf(`big.example.test. 60 IN TXT "%02d%s"`, i, strings.Repeat(string(rune('a'+i)), 238)))
	}
	return rrs
}()

// unboundZone is the zone the test unbound serves; queryLog receives its query log.
func unboundZone(queryLog string, extra ...string) string {
	lines := []string{
		`local-zone: "example.test." static`,
		`local-data: "example.test. 3600 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60"`,
		`local-data: "www.example.test. 60 IN A 192.0.2.80"`,
		"max-udp-size: 4096",
		"log-queries: yes",
		`logfile: "` + queryLog + `"`,
	}
	for _, rr := range hugeTXT {
		lines = append(lines, "local-data: '"+rr+"'")
	}
	return strings.Join(append(lines, extra...), "\n")
}

// upstreamQueries counts the queries unbound logged for name.
func upstreamQueries(t *testing.T, queryLog, name string) int {
	t.Helper()
	data, err := os.ReadFile(queryLog)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), " "+name+" ")
}

func ttlOf(t *testing.T, rr string) int {
	t.Helper()
	f := strings.Fields(rr)
	ttl, err := strconv.Atoi(f[1])
	if len(f) < 2 || err != nil {
		t.Fatalf("no TTL in %q", rr)
	}
	return ttl
}

// TestUpstreamAndCache runs meshdns against a real unbound and checks what passes through
// and what the cache keeps, counting in unbound's own query log what reaches it.
func TestUpstreamAndCache(t *testing.T) {
	queryLog := filepath.Join(t.TempDir(), "queries.log")
	up := unbound.Start(t, unboundZone(queryLog))
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), up.String())})

	t.Run("NXDOMAIN with SOA, cached", func(t *testing.T) {
		for range 3 {
			r := ask(t, digUDP, srv.dnsPort, "nx.example.test.", "A")
			if r.status != "NXDOMAIN" || len(r.authority) != 1 || !strings.Contains(r.authority[0], "SOA ns.example.test.") {
				t.Fatalf("status %s authority %q, want NXDOMAIN with the zone's SOA", r.status, r.authority)
			}
		}
		if n := upstreamQueries(t, queryLog, "nx.example.test."); n != 1 {
			t.Errorf("unbound saw %d queries for the name, want 1", n)
		}
	})
	t.Run("NODATA with SOA, cached", func(t *testing.T) {
		for range 3 {
			r := ask(t, digTCP, srv.dnsPort, "www.example.test.", "AAAA")
			if r.status != "NOERROR" || len(r.answer) != 0 || len(r.authority) != 1 {
				t.Fatalf("status %s answer %q authority %q, want NODATA with SOA", r.status, r.answer, r.authority)
			}
		}
		if n := upstreamQueries(t, queryLog, "www.example.test. AAAA"); n != 1 {
			t.Errorf("unbound saw %d AAAA queries, want 1", n)
		}
	})
	t.Run("TTL counts down", func(t *testing.T) {
		first := ask(t, digUDP, srv.dnsPort, "www.example.test.", "A")
		time.Sleep(2100 * time.Millisecond)
		second := ask(t, digTCP, srv.dnsPort, "WWW.Example.TEST.", "A") // kdig lowercases names it sends
		if len(first.answer) != 1 || len(second.answer) != 1 {
			t.Fatalf("answers %q and %q", first.answer, second.answer)
		}
		if a, b := ttlOf(t, first.answer[0]), ttlOf(t, second.answer[0]); b > a-2 || b < 0 {
			t.Errorf("TTL %d then %d two seconds later", a, b)
		}
		if !strings.HasPrefix(second.answer[0], "WWW.Example.TEST. ") {
			t.Errorf("cached answer %q does not keep the question's spelling", second.answer[0])
		}
	})
	t.Run("3.5 KiB answer", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			c     client
			extra []string
			tc    bool
		}{
			{"EDNS 4096 over UDP: whole", digUDP, []string{"+bufsize=4096"}, false},
			{"no EDNS over UDP: TC", digUDP, []string{"+noedns", "+ignore"}, true},
			{"TCP: whole", digTCP, nil, false},
			{"kdig EDNS 4096: whole", kdigUDP, []string{"+bufsize=4096"}, false},
		} {
			r := ask(t, tc.c, srv.dnsPort, "big.example.test.", "TXT", tc.extra...)
			whole := len(r.answer) == len(hugeTXT)
			if r.flags["tc"] != tc.tc || whole == tc.tc || r.status != "NOERROR" {
				t.Errorf("%s: tc %v with %d of %d records", tc.name, r.flags["tc"], len(r.answer), len(hugeTXT))
			}
		}
	})
}

// TestTCPOnlyUpstream: an upstream that serves only TCP answers UDP clients too.
func TestTCPOnlyUpstream(t *testing.T) {
	queryLog := filepath.Join(t.TempDir(), "queries.log")
	up := unbound.Start(t, unboundZone(queryLog, "do-udp: no"))
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), up.String())})
	for _, c := range []client{digUDP, digTCP} {
		r := ask(t, c, srv.dnsPort, "www.example.test.", "A")
		if !slices.Equal(anyTTL(r.answer), []string{"www.example.test. TTL IN A 192.0.2.80"}) {
			t.Errorf("%s: %q", c.name, r.answer)
		}
	}
}
