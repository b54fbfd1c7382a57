package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
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
	// --max-udp-size 4096 lets a 3.5 KiB answer through UDP whole, as unbound sends it.
	srv := startServer(t, serveOptions{args: append(examplesArgs(examplePath("registry"), up.String()),
		"--max-udp-size", "4096")})

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
		capped := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), up.String())})
		for _, tc := range []struct {
			name  string
			srv   *server
			c     client
			extra []string
			tc    bool
		}{
			{"EDNS 4096 over UDP: whole", srv, digUDP, []string{"+bufsize=4096"}, false},
			{"no EDNS over UDP: TC", srv, digUDP, []string{"+noedns", "+ignore"}, true},
			{"TCP: whole", srv, digTCP, nil, false},
			{"default --max-udp-size, EDNS 4096: TC", capped, digUDP, []string{"+bufsize=4096", "+ignore"}, true},
			{"default --max-udp-size, TCP: whole", capped, digTCP, nil, false},
			{"kdig EDNS 4096: whole", srv, kdigUDP, []string{"+bufsize=4096"}, false}, // last: skips without kdig
		} {
			r := ask(t, tc.c, tc.srv.dnsPort, "big.example.test.", "TXT", tc.extra...)
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

// TestServeStale replays the README's serve-stale example: the upstream (a dnsmasq with a
// 1-second TTL) answers, goes away, the entry expires, and meshdns serves it stale with TTL
// 30, counted as cache-stale.
func TestServeStale(t *testing.T) {
	bin := testutil.LookPath(t, "dnsmasq", "dnsmasq-base")
	addr, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dnsmasq := exec.Command(bin, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--listen-address=127.0.0.1", fmt.Sprintf("--port=%d", addr.Port()), "--pid-file=",
		"--user=root", "--local=/example.com/", "--local-ttl=1", "--host-record=www.example.com,192.0.2.80")
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { dnsmasq.Process.Kill(); dnsmasq.Wait() }()
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), addr.String())})
	eventually(t, 5*time.Second, "the upstream answering", func() string {
		if r := ask(t, digUDP, srv.dnsPort, "www.example.com.", "A"); len(r.answer) != 1 {
			return fmt.Sprintf("answer %q", r.answer)
		}
		return ""
	})
	dnsmasq.Process.Kill()
	dnsmasq.Wait()
	time.Sleep(1500 * time.Millisecond) // past the 1-second TTL
	r := ask(t, digUDP, srv.dnsPort, "www.example.com.", "A")
	if !slices.Equal(r.answer, []string{"www.example.com. 30 IN A 192.0.2.80"}) {
		t.Errorf("with the upstream gone: %q, want the stale answer with TTL 30", r.answer)
	}
	if n := metricValue(t, srv, "meshdns_queries_total", map[string]string{"result": "cache-stale"}); n != 1 {
		t.Errorf("cache-stale answers counted: %v, want 1", n)
	}
}
