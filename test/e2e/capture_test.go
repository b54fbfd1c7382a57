package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

// clusterDNS is the nameserver of the pods' resolv.conf: it exists only inside the test's
// namespace, on its loopback interface.
const clusterDNS = "10.96.0.10"

// podIPv6 is the pod's own IPv6 address (its IPv4 one is not needed: the cluster DNS address
// already makes glibc see IPv4 configured).
const podIPv6 = "fd00:10:244::5"

// captureResolvConf is what the kubelet writes for a pod in namespace bookinfo.
const captureResolvConf = "nameserver " + clusterDNS + `
search bookinfo.svc.cluster.local svc.cluster.local cluster.local
options ndots:5
`

// capturedPod prepares a namespace like a pod behind capture: the cluster DNS (a dnsmasq that
// knows only www.example.com and answers NXDOMAIN for the rest of example.com and
// cluster.local), and meshdns running as uid 1337 with the example registry. It returns the
// namespace and the query logs of meshdns and of the cluster DNS.
func capturedPod(t *testing.T) (n *netns, meshdnsLog, clusterLog *testutil.SyncBuffer) {
	need(t, "dig")
	need(t, "getent")
	need(t, "dnsmasq")
	need(t, "setpriv")
	n = newNetns(t)
	n.WriteEtc(t, "resolv.conf", captureResolvConf)
	n.Run(t, "ip", "addr", "add", clusterDNS+"/32", "dev", "lo")
	// A dual-stack pod: with an IPv6 address too, glibc asks A and AAAA (AI_ADDRCONFIG).
	n.Run(t, "ip", "addr", "add", podIPv6+"/128", "dev", "lo")
	clusterLog = start(t, n, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--listen-address="+clusterDNS, "--port=53", "--pid-file=", "--user=root",
		"--log-queries", "--log-facility=-", "--local=/example.com/", "--local=/cluster.local/", "--local-ttl=60",
		"--host-record=www.example.com,192.0.2.80")
	waitAnswerAt(t, n, clusterDNS, "53", "www.example.com", "192.0.2.80")
	bin, registry := readableByProxy(t)
	meshdnsLog = start(t, n, "setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups",
		bin, "serve", "--registry", registry, "--listen", "127.0.0.1:15053", "--listen", "[::1]:15053",
		"--admin", "", "--log-queries")
	waitAnswerAt(t, n, "127.0.0.1", "15053", "productpage.bookinfo.svc.cluster.local", "10.96.10.10")
	return n, meshdnsLog, clusterLog
}

// readableByProxy makes the meshdns binary and a copy of the example registry readable by
// uid 1337 (the build directory is private to root).
func readableByProxy(t testing.TB) (bin, registry string) {
	t.Helper()
	if err := os.Chmod(filepath.Dir(meshdnsBin), 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "meshdns-registry-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.CopyFS(dir, os.DirFS(examplePath("registry"))); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error { return os.Chmod(p, 0o755) })
	return meshdnsBin, dir
}

func waitAnswerAt(t *testing.T, n *netns, server, port, name, want string) {
	t.Helper()
	eventually(t, readyTimeout, name+" answered at "+server+":"+port, func() string {
		got, _ := n.Command("dig", "@"+server, "-p", port, "+short", "+tries=1", "+time=1", name).Output()
		if strings.TrimSpace(string(got)) != want {
			return fmt.Sprintf("dig said %q", got)
		}
		return ""
	})
}

// queries counts the query lines of a dnsmasq or meshdns log.
func queries(log *testutil.SyncBuffer) int {
	s := log.String()
	return strings.Count(s, "msg=query") + strings.Count(s, ": query[")
}

// getentCounted runs getent ahosts in the namespace and returns the addresses and how many
// queries log counted meanwhile. Log lines come through a pipe, so the count is read once it
// has reached want (or a bound has passed) and has stayed put for a moment.
func getentCounted(t *testing.T, n *netns, log *testutil.SyncBuffer, name string, want int) ([]string, int) {
	t.Helper()
	before := queries(log)
	out, _ := n.Command("getent", "ahosts", name).Output()
	for deadline := time.Now().Add(5 * time.Second); queries(log)-before < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a query beyond want would show up now
	return ahosts(string(out)), queries(log) - before
}

// TestCapture installs capture with each backend in a pod-like namespace and checks, with
// glibc's resolver, that the application's DNS reaches meshdns (two queries per lookup for
// mesh and external names alike), that meshdns's own queries do not, that verify notices a
// missing rule, and that uninstall restores direct resolution (eight queries per external
// lookup at the cluster DNS) and leaves no rule behind.
func TestCapture(t *testing.T) {
	for _, backend := range []string{"iptables", "iptables-legacy", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			n, meshdnsLog, clusterLog := capturedPod(t)
			n.Run(t, meshdnsBin, "capture", "install", "--backend", backend)
			t.Cleanup(func() { n.Command(meshdnsBin, "capture", "uninstall", "--backend", backend).Run() })
			n.Run(t, meshdnsBin, "capture", "verify", "--backend", backend)

			for _, tc := range []struct {
				name  string
				addrs []string
			}{
				{"reviews", []string{"10.96.10.20", "fd00:10:96::20"}},
				{"api.payments.example.com", []string{"203.0.113.10"}},
				{"www.example.com", []string{"192.0.2.80"}},
			} {
				addrs, count := getentCounted(t, n, meshdnsLog, tc.name, 2)
				if !slices.Equal(addrs, tc.addrs) || count != 2 {
					t.Errorf("captured getent ahosts %s: %v in %d queries to meshdns, want %v in 2", tc.name, addrs, count, tc.addrs)
				}
			}
			if out := n.Run(t, "dig", "@"+clusterDNS, "+tcp", "+short", "reviews.bookinfo.svc.cluster.local"); strings.TrimSpace(out) != "10.96.10.20" {
				t.Errorf("dig +tcp through capture: %q, want meshdns's answer", out)
			}
			// uid 1337 reaches the cluster DNS itself, which knows no mesh names.
			proxyView := n.Run(t, "setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups",
				"dig", "@"+clusterDNS, "+noall", "+comments", "reviews.bookinfo.svc.cluster.local")
			if !strings.Contains(proxyView, "status: NXDOMAIN") {
				t.Errorf("uid 1337 was captured, or got no answer from the cluster DNS:\n%s", proxyView)
			}

			deleteOneRule(t, n, backend)
			out, err := n.Command(meshdnsBin, "capture", "verify", "--backend", backend).Output()
			if code := exitCode(err); code != 1 || !strings.Contains(string(out), "missing:") {
				t.Errorf("verify after a rule was deleted by hand: exit %d, output %q; want 1 naming the missing rule", code, out)
			}

			n.Run(t, meshdnsBin, "capture", "uninstall", "--backend", backend)
			if rules := ruleset(t, n, backend); strings.Contains(strings.ToLower(rules), "meshdns") {
				t.Errorf("rules left after uninstall:\n%s", rules)
			}
			addrs, count := getentCounted(t, n, clusterLog, "www.example.com", 8)
			if !slices.Equal(addrs, []string{"192.0.2.80"}) || count != 8 {
				t.Errorf("without capture: %v in %d queries to the cluster DNS, want 192.0.2.80 in 8", addrs, count)
			}
			if addrs, _ := getentCounted(t, n, clusterLog, "reviews", 8); len(addrs) != 0 {
				t.Errorf("a mesh name resolved without capture: %v", addrs)
			}
		})
	}
}

func ruleset(t *testing.T, n *netns, backend string) string {
	t.Helper()
	switch backend {
	case "nftables":
		return n.Run(t, "nft", "list", "ruleset")
	case "iptables-legacy":
		return n.Run(t, "iptables-legacy-save") + n.Run(t, "ip6tables-legacy-save")
	}
	return n.Run(t, "iptables-save") + n.Run(t, "ip6tables-save")
}

// deleteOneRule removes one redirect rule of meshdns by hand, as an operator's mistake or
// another tool might.
func deleteOneRule(t *testing.T, n *netns, backend string) {
	t.Helper()
	if backend == "nftables" {
		chain := ""
		for _, line := range strings.Split(n.Run(t, "nft", "-a", "list", "table", "inet", "meshdns"), "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && f[0] == "chain" {
				chain = f[1]
			}
			if strings.Contains(line, "redirect") && len(f) > 2 && f[len(f)-2] == "handle" {
				n.Run(t, "nft", "delete", "rule", "inet", "meshdns", chain, "handle", f[len(f)-1])
				return
			}
		}
		t.Fatal("no redirect rule found in table inet meshdns")
	}
	iptables, save := "iptables", "iptables-save"
	if backend == "iptables-legacy" {
		iptables, save = "iptables-legacy", "iptables-legacy-save"
	}
	position := map[string]int{}
	for _, line := range strings.Split(n.Run(t, save, "-t", "nat"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "-A" {
			continue
		}
		position[f[1]]++
		if strings.Contains(line, "REDIRECT") {
			n.Run(t, iptables, "-t", "nat", "-D", f[1], fmt.Sprint(position[f[1]]))
			return
		}
	}
	t.Fatal("no REDIRECT rule found in the nat table")
}
