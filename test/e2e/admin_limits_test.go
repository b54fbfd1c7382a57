package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil/dnsmasq"
)

// debugTableNames fetches /debug/table at path and returns its names and view header.
func debugTableNames(t *testing.T, srv *server, path string) ([]string, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(srv.adminURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var entries []tableEntry
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		t.Fatalf("%s is not a JSON list of entries: %v", path, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	return names, resp.Header.Get("Meshdns-Table-View")
}

// TestDebugTableClientView: /debug/table shows what the client (namespace bookinfo, from
// examples/resolv.conf) can resolve: admin.vms.example.com, exported to its own namespace
// only, is absent, and present with ?all=1; the view is named in a response header.
func TestDebugTableClientView(t *testing.T) {
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), "")})
	const hidden, shown = "admin.vms.example.com.", "billing.vms.example.com."
	names, view := debugTableNames(t, srv, "/debug/table")
	if slices.Contains(names, hidden) || !slices.Contains(names, shown) {
		t.Errorf("/debug/table for a client in bookinfo: %s listed %v, %s listed %v; want only %s",
			hidden, slices.Contains(names, hidden), shown, slices.Contains(names, shown), shown)
	}
	if view != "client namespace bookinfo" {
		t.Errorf("/debug/table view header %q, want %q", view, "client namespace bookinfo")
	}
	names, view = debugTableNames(t, srv, "/debug/table?all=1")
	if !slices.Contains(names, hidden) || !slices.Contains(names, shown) || view != "all" {
		t.Errorf("/debug/table?all=1 (view %q) lacks %s or %s", view, hidden, shown)
	}
}

// TestAdminConnectionFloodSparesDNS: with a descriptor limit of 512, 600 keep-alive admin
// connections held open (each sends a request and never reads on) leave /healthz, DNS over
// TCP and forwarded queries answering: the admin listener keeps its connections well below
// the limit, closing the idle ones first.
func TestAdminConnectionFloodSparesDNS(t *testing.T) {
	need(t, "dig")
	need(t, "prlimit")
	up := dnsmasq.Start(t, upstreamArgs...)
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), up.String()), nofile: "512:512"})
	_, port, _ := net.SplitHostPort(srv.adminURL[len("http://"):])
	const held = 600
	for range held {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
		if err != nil {
			t.Fatalf("dialing the admin port: %v", err)
		}
		defer c.Close()
		c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"))
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(srv.adminURL + "/healthz"); err != nil {
		t.Errorf("/healthz with %d admin connections held: %v", held, err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with %d admin connections held: %d", held, resp.StatusCode)
	}
	if r := ask(t, digTCP, srv.dnsPort, "reviews.bookinfo.svc.cluster.local.", "A"); r.status != "NOERROR" || len(r.answer) == 0 {
		t.Errorf("DNS over TCP with %d admin connections held: %s %v", held, r.status, r.answer)
	}
	if r := ask(t, digUDP, srv.dnsPort, "www.example.com.", "A"); r.status != "NOERROR" || len(r.answer) == 0 {
		t.Errorf("forwarded query with %d admin connections held: %s %v", held, r.status, r.answer)
	}
}

// TestFileLimitRaised: started with a soft RLIMIT_NOFILE of 1024 below a hard limit of 4096,
// meshdns runs with the soft limit raised to the hard one (the Go runtime does it at start,
// leaving it one below; process_max_fds is the soft limit).
func TestFileLimitRaised(t *testing.T) {
	need(t, "prlimit")
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), ""), nofile: "1024:4096"})
	if n := metricValue(t, srv, "process_max_fds", nil); n < 4095 {
		t.Errorf("process_max_fds = %v, want the hard limit 4096 (or one below)", n)
	}
}
