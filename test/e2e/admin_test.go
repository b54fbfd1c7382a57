package e2e

import (
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil/dnsmasq"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrape reads /metrics.
func scrape(t *testing.T, srv *server) []sample {
	t.Helper()
	code, body := srv.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d\n%s", code, body)
	}
	var out []sample
	for line := range strings.SplitSeq(body, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			t.Fatalf("/metrics: bad value in %q", line)
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range labelRE.FindAllStringSubmatch(m[3], -1) {
			s.labels[l[1]] = l[2]
		}
		out = append(out, s)
	}
	return out
}

// metricValue sums the samples of name whose labels include want; -1 when there are none.
func metricValue(t *testing.T, srv *server, name string, want map[string]string) float64 {
	t.Helper()
	sum, found := 0.0, false
	for _, s := range scrape(t, srv) {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			match = match && s.labels[k] == v
		}
		if match {
			sum, found = sum+s.value, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// TestAdmin checks the admin endpoints of a serving meshdns: health, readiness, the query
// metrics after queries answered by each rule, the table gauges and /debug/table.
func TestAdmin(t *testing.T) {
	need(t, "dig")
	up := dnsmasq.Start(t, upstreamArgs...)
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), up.String())})

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := srv.get(t, path); code != http.StatusOK {
			t.Errorf("%s: status %d, want 200\n%s", path, code, body)
		}
	}

	queries := []struct {
		c      client
		qname  string
		qtype  string
		labels map[string]string // a meshdns_queries_total series that must count it
	}{
		{digUDP, "reviews.bookinfo.svc.cluster.local.", "A",
			map[string]string{"qtype": "A", "rcode": "NOERROR", "protocol": "udp", "result": "table"}},
		{digTCP, "reviews.bookinfo.svc.cluster.local.", "AAAA",
			map[string]string{"qtype": "AAAA", "rcode": "NOERROR", "protocol": "tcp", "result": "table"}},
		{digUDP, "nope.bookinfo.svc.cluster.local.", "A",
			map[string]string{"qtype": "A", "rcode": "NXDOMAIN", "protocol": "udp", "result": "table"}},
		{digUDP, "api.payments.example.com.bookinfo.svc.cluster.local.", "A",
			map[string]string{"qtype": "A", "rcode": "NOERROR", "protocol": "udp", "result": "autopath"}},
		{digUDP, "www.example.com.", "A",
			map[string]string{"qtype": "A", "rcode": "NOERROR", "protocol": "udp", "result": "upstream"}},
		{digTCP, "nothere.example.com.", "A",
			map[string]string{"qtype": "A", "rcode": "NXDOMAIN", "protocol": "tcp", "result": "upstream"}},
		{digUDP, "www.example.com.", "A", // asked before: now from the cache
			map[string]string{"qtype": "A", "rcode": "NOERROR", "protocol": "udp", "result": "cache-hit"}},
		{digUDP, "www.example.com.bookinfo.svc.cluster.local.", "A",
			map[string]string{"qtype": "A", "rcode": "NOERROR", "protocol": "udp", "result": "autopath"}},
	}
	for _, q := range queries {
		ask(t, q.c, srv.dnsPort, q.qname, q.qtype)
	}
	for _, q := range queries {
		if n := metricValue(t, srv, "meshdns_queries_total", q.labels); n < 1 {
			t.Errorf("meshdns_queries_total%v = %v after %s %s %s, want >= 1", q.labels, n, q.c.name, q.qname, q.qtype)
		}
	}
	for _, s := range scrape(t, srv) {
		if s.name == "meshdns_queries_total" {
			if keys := slices.Sorted(maps.Keys(s.labels)); !slices.Equal(keys, []string{"protocol", "qtype", "rcode", "result"}) {
				t.Errorf("meshdns_queries_total has labels %v, want protocol, qtype, rcode, result", keys)
			}
		}
	}
	for _, kind := range []string{"table", "upstream"} {
		if n := metricValue(t, srv, "meshdns_autopath_answers_total", map[string]string{"kind": kind}); n < 1 {
			t.Errorf("meshdns_autopath_answers_total{kind=%q} = %v, want >= 1", kind, n)
		}
	}
	for _, name := range []string{"meshdns_cache_hits_total", "meshdns_upstream_queries_total"} {
		if n := metricValue(t, srv, name, nil); n < 1 {
			t.Errorf("%s = %v, want >= 1", name, n)
		}
	}
	if n := metricValue(t, srv, "meshdns_table_entries", nil); n <= 0 {
		t.Errorf("meshdns_table_entries = %v, want > 0", n)
	}
	if n := metricValue(t, srv, "meshdns_table_generation", nil); n < 1 {
		t.Errorf("meshdns_table_generation = %v, want >= 1", n)
	}

	t.Run("debug table", func(t *testing.T) { checkDebugTable(t, srv) })
}

// tableEntry is the part of a /debug/table entry the tests read.
type tableEntry struct {
	Name    string   `json:"name"`
	Origin  string   `json:"origin"`
	Records []string `json:"records"`
}

func checkDebugTable(t *testing.T, srv *server) {
	code, body := srv.get(t, "/debug/table")
	if code != http.StatusOK {
		t.Fatalf("/debug/table: status %d\n%s", code, body)
	}
	var entries []tableEntry
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		t.Fatalf("/debug/table is not a JSON list of entries: %v\n%s", err, body)
	}
	i := slices.IndexFunc(entries, func(e tableEntry) bool { return e.Name == "reviews.bookinfo.svc.cluster.local." })
	if i < 0 {
		t.Fatalf("/debug/table does not list reviews.bookinfo.svc.cluster.local.\n%s", body)
	}
	e := entries[i]
	if e.Origin != "Service bookinfo/reviews" {
		t.Errorf("origin %q, want %q", e.Origin, "Service bookinfo/reviews")
	}
	var records []string
	for _, rr := range e.Records {
		records = append(records, normalizeRR(rr))
	}
	for _, want := range []string{
		"reviews.bookinfo.svc.cluster.local. 30 IN A 10.96.10.20",
		"reviews.bookinfo.svc.cluster.local. 30 IN AAAA fd00:10:96::20",
		"reviews.bookinfo.svc.cluster.local. 30 IN SRV 0 100 9080 reviews.bookinfo.svc.cluster.local.",
	} {
		if !slices.Contains(records, want) {
			t.Errorf("records of reviews.bookinfo.svc.cluster.local. lack %q: %q", want, records)
		}
	}
}
