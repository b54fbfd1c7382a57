package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	vip4Pool = netip.MustParsePrefix("240.240.0.0/16")
	vip6Pool = netip.MustParsePrefix("2001:2::/48")
)

// vipOf asks srv for host's address of qtype and returns it, failing unless there is exactly
// one. The failure shows dig's reply and what /debug/table holds for host: whether the table
// lacked the address or the reply came from elsewhere.
func vipOf(t *testing.T, srv *server, host, qtype string) netip.Addr {
	t.Helper()
	r := ask(t, digUDP, srv.dnsPort, host, qtype)
	if r.status != "NOERROR" || len(r.answer) != 1 {
		t.Fatalf("%s %s: status %s, answer %q; want one VIP\n%s\n/debug/table entries of the host: %s",
			host, qtype, r.status, r.answer, r.output, tableEntries(t, srv, host))
	}
	f := strings.Fields(r.answer[0])
	return netip.MustParseAddr(f[len(f)-1])
}

// tableEntries returns the entries of /debug/table named name, as JSON.
func tableEntries(t *testing.T, srv *server, name string) string {
	t.Helper()
	_, body := srv.get(t, "/debug/table")
	var entries []map[string]any
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		return fmt.Sprintf("unreadable (%v)", err)
	}
	var out []map[string]any
	for _, e := range entries {
		if e["name"] == name {
			out = append(out, e)
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// serviceEntries renders address-less ServiceEntries for hosts, one document each.
func serviceEntries(ns string, hosts ...string) string {
	var b strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"+
			"metadata: {name: se-%d, namespace: %s}\nspec:\n  hosts: [%s]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n"+
			"  resolution: DNS\n", i, ns, h)
	}
	return b.String()
}

// savedState is a vips.json in which orders-db holds an address no hash would pick first,
// so only persistence can bring it back.
const savedState = `{
  "version": 1,
  "leases": [
    {"namespace": "bookinfo", "host": "orders-db.corp.example.com", "family": "ipv4",
     "address": "240.240.0.77", "since": "2026-11-01T00:00:00Z"}
  ],
  "released": []
}`

// TestVIPsSurviveRestart: the example's two databases get distinct VIPs in both families, with
// PTR records, orders-db the one its saved state gives it; after a restart with other
// ServiceEntries added, they keep them, and the state file holds them.
func TestVIPsSurviveRestart(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(examplePath("registry"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "vips.json"), []byte(savedState), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(examplesArgs(dir, ""), "--state-dir", state)
	hosts := []string{"orders-db.corp.example.com.", "inventory-db.corp.example.com."}
	srv := startServer(t, serveOptions{args: args})
	before := map[string]netip.Addr{}
	for _, h := range hosts {
		before[h+"A"], before[h+"AAAA"] = vipOf(t, srv, h, "A"), vipOf(t, srv, h, "AAAA")
		if !vip4Pool.Contains(before[h+"A"]) || !vip6Pool.Contains(before[h+"AAAA"]) {
			t.Errorf("%s: VIPs %v, %v outside the pools", h, before[h+"A"], before[h+"AAAA"])
		}
		if ptr := ask(t, digUDP, srv.dnsPort, reverse(before[h+"A"]), "PTR"); len(ptr.answer) != 1 || !strings.HasSuffix(ptr.answer[0], " "+h) {
			t.Errorf("PTR of %v: %q, want %s", before[h+"A"], ptr.answer, h)
		}
	}
	if got := before[hosts[0]+"A"]; got != netip.MustParseAddr("240.240.0.77") {
		t.Errorf("orders-db got %v, not the 240.240.0.77 of its saved state", got)
	}
	if before[hosts[0]+"A"] == before[hosts[1]+"A"] || before[hosts[0]+"AAAA"] == before[hosts[1]+"AAAA"] {
		t.Errorf("two databases on one port share a VIP: %v", before)
	}
	checkVIPsInDebugTable(t, srv, hosts[0])
	if code, err := srv.stop(syscall.SIGTERM); code != 0 || err != nil {
		t.Fatalf("stopping: %d %v", code, err)
	}
	saved, err := os.ReadFile(filepath.Join(state, "vips.json"))
	if err != nil || !strings.Contains(string(saved), before[hosts[1]+"A"].String()) {
		t.Fatalf("vips.json does not hold inventory-db's %v (%v):\n%s", before[hosts[1]+"A"], err, saved)
	}
	var others []string
	for i := range 40 {
		others = append(others, fmt.Sprintf("svc-%d.partner.example.net", i))
	}
	if err := os.WriteFile(filepath.Join(dir, "partners.yaml"), []byte(serviceEntries("bookinfo", others...)), 0o644); err != nil {
		t.Fatal(err)
	}
	again := startServer(t, serveOptions{args: args})
	for _, h := range hosts {
		for _, qtype := range []string{"A", "AAAA"} {
			if got := vipOf(t, again, h, qtype); got != before[h+qtype] {
				t.Errorf("%s %s moved across the restart: %v -> %v", h, qtype, before[h+qtype], got)
			}
		}
	}
	seen := map[netip.Addr]string{}
	for _, h := range append(others, "orders-db.corp.example.com", "inventory-db.corp.example.com") {
		a := vipOf(t, again, h+".", "A")
		if prev, dup := seen[a]; dup {
			t.Errorf("%s and %s share %v", prev, h, a)
		}
		seen[a] = h
	}
}

func reverse(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0])
}

func checkVIPsInDebugTable(t *testing.T, srv *server, host string) {
	t.Helper()
	_, body := srv.get(t, "/debug/table")
	var entries []struct {
		Name string `json:"name"`
		VIPs []struct {
			Address string    `json:"address"`
			Since   time.Time `json:"since"`
		} `json:"vips"`
	}
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == host {
			if len(e.VIPs) != 2 || e.VIPs[0].Since.IsZero() || e.VIPs[0].Since.After(time.Now()) {
				t.Errorf("/debug/table entry of %s: VIPs %+v, want two with the time they are held since", host, e.VIPs)
			}
			return
		}
	}
	t.Errorf("/debug/table has no entry %s", host)
}

// TestVIPExhaustion: with a /30 (two usable addresses) the third host gets none, is counted,
// and gets the address a deleted host freed once the quarantine has passed.
func TestVIPExhaustion(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, hosts ...string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(serviceEntries("team", hosts...)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("first.yaml", "one.example.net")
	write("second.yaml", "two.example.net")
	srv := startServer(t, serveOptions{args: append(examplesArgs(dir, ""), "--vip-cidr", "240.240.0.0/30",
		"--vip-cidr6", "", "--vip-quarantine", "3s")})
	one := vipOf(t, srv, "one.example.net.", "A")
	vipOf(t, srv, "two.example.net.", "A")
	write("third.yaml", "three.example.net")
	eventually(t, 5*time.Second, "the third host's allocation failure counted", func() string {
		if n := metricValue(t, srv, "meshdns_vip_allocation_failures_total", map[string]string{"family": "ipv4"}); n != 1 {
			return fmt.Sprintf("meshdns_vip_allocation_failures_total = %v", n)
		}
		return ""
	})
	if r := ask(t, digUDP, srv.dnsPort, "three.example.net.", "A"); len(r.answer) != 0 {
		t.Errorf("a host beyond the pool got %q", r.answer)
	}
	if err := os.Remove(filepath.Join(dir, "first.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "one.example.net's VIP quarantined", func() string {
		if n := metricValue(t, srv, "meshdns_vip_quarantined", map[string]string{"family": "ipv4"}); n != 1 {
			return fmt.Sprintf("meshdns_vip_quarantined = %v", n)
		}
		return ""
	})
	if r := ask(t, digUDP, srv.dnsPort, "three.example.net.", "A"); len(r.answer) != 0 {
		t.Errorf("the freed VIP went to another host during its quarantine: %q", r.answer)
	}
	eventually(t, 10*time.Second, "three.example.net gets the freed VIP after the quarantine", func() string {
		r := ask(t, digUDP, srv.dnsPort, "three.example.net.", "A")
		if len(r.answer) != 1 || !strings.HasSuffix(r.answer[0], " "+one.String()) {
			return fmt.Sprintf("answer %q", r.answer)
		}
		return ""
	})
	if got := vipOf(t, srv, "two.example.net.", "A"); got == one {
		t.Errorf("two.example.net moved to %v", got)
	}
}

// TestVIPStateFileProblems: a corrupt vips.json is kept as vips.json.bad-<time>, reported in
// the log and in /readyz, and meshdns serves with a fresh state; a FIFO in its place stops
// the start at once with an error naming it, instead of waiting for a writer forever.
func TestVIPStateFileProblems(t *testing.T) {
	t.Run("corrupt file is kept aside", func(t *testing.T) {
		state := t.TempDir()
		path := filepath.Join(state, "vips.json")
		const corrupt = `{"version": 1, "leases": [{"namespace": "bookinfo", "host": "orders-d`
		if err := os.WriteFile(path, []byte(corrupt), 0o644); err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, serveOptions{args: append(examplesArgs(examplePath("registry"), ""), "--state-dir", state)})
		kept, _ := filepath.Glob(path + ".bad-*")
		if len(kept) != 1 {
			t.Fatalf("state directory holds %v, want one vips.json.bad-<time>", kept)
		}
		if b, _ := os.ReadFile(kept[0]); string(b) != corrupt {
			t.Errorf("%s holds %q, want the corrupt file as it was", kept[0], b)
		}
		if log := srv.stderr.String(); !strings.Contains(log, kept[0]) || !strings.Contains(log, "corrupt") {
			t.Errorf("the log does not say what was wrong and where the file went:\n%s", log)
		}
		if code, body := srv.get(t, "/readyz"); code != 200 || !strings.Contains(body, kept[0]) {
			t.Errorf("/readyz = %d %q, want 200 naming %s", code, body, kept[0])
		}
		var st struct{ Version int }
		if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &st) != nil || st.Version != 1 {
			t.Errorf("no fresh vips.json (%v):\n%s", err, b)
		}
	})
	t.Run("FIFO is refused", func(t *testing.T) {
		state := t.TempDir()
		path := filepath.Join(state, "vips.json")
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runMeshdns(t, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "",
			"--state-dir", state}, examplesArgs(examplePath("registry"), "")...)...)
		if code == 0 || !strings.Contains(stderr, path) || !strings.Contains(stderr, "FIFO") {
			t.Errorf("exit %d, stderr:\n%s\nwant a failure naming %s as a FIFO", code, stderr, path)
		}
	})
}
