package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/testutil/netlab"
)

// podResolvConf is what the kubelet writes into a pod of namespace bookinfo, with meshdns as
// the nameserver.
const podResolvConf = `search bookinfo.svc.cluster.local svc.cluster.local cluster.local
nameserver 127.0.0.1
options ndots:5
`

// netns is a network namespace made for one test.
type netns = netlab.Netns

// newNetns makes the test's namespace, with a pod's resolv.conf and glibc asking DNS.
func newNetns(t *testing.T) *netns {
	t.Helper()
	n := netlab.New(t, fmt.Sprintf("meshdns-e2e-%d", os.Getpid()))
	n.WriteEtc(t, "resolv.conf", podResolvConf)
	n.WriteEtc(t, "nsswitch.conf", "hosts: files dns\n")
	return n
}

// start runs a long-lived command inside the namespace, stopped with SIGTERM in cleanup, and
// returns its combined output.
func start(t *testing.T, n *netns, name string, args ...string) *testutil.SyncBuffer {
	t.Helper()
	cmd := n.Command(name, args...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() { exited <- exitCode(cmd.Wait()) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case code := <-exited:
			if code != 0 && name == meshdnsBin {
				t.Errorf("meshdns exited with status %d after SIGTERM", code)
			}
		case <-time.After(exitTimeout):
			cmd.Process.Kill()
			t.Errorf("%s did not exit within %s of SIGTERM", name, exitTimeout)
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", filepath.Base(name), out)
		}
	})
	return out
}

// serveInNetns starts meshdns on the namespace's 127.0.0.1:53 with every query logged, and
// waits until it answers.
func serveInNetns(t *testing.T, n *netns, upstream string) *testutil.SyncBuffer {
	t.Helper()
	out := start(t, n, meshdnsBin, "serve", "--registry", examplePath("registry"),
		"--listen", "127.0.0.1:53", "--admin", "", "--upstream", upstream, "--log-queries")
	waitAnswer(t, n, "53", "productpage.bookinfo.svc.cluster.local", "10.96.10.10")
	return out
}

func waitAnswer(t *testing.T, n *netns, port, name, want string) {
	t.Helper()
	eventually(t, readyTimeout, name+" answered on port "+port, func() string {
		got, _ := n.Command("dig", "@127.0.0.1", "-p", port, "+short", "+tries=1", "+time=1", name).Output()
		if strings.TrimSpace(string(got)) != want {
			return fmt.Sprintf("dig said %q", got)
		}
		return ""
	})
}

type lookupCase struct {
	name  string
	addrs []string // nil: the lookup must fail
}

// lookups runs getent ahosts for each case and checks the addresses and that meshdns saw
// exactly two queries (A and AAAA) for each successful lookup.
func lookups(t *testing.T, n *netns, log *testutil.SyncBuffer, cases []lookupCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, queries := getentCounted(t, n, log, tc.name, 2)
			if tc.addrs == nil {
				if len(got) != 0 {
					t.Errorf("getent ahosts %s succeeded: %v", tc.name, got)
				}
				return
			}
			if !slices.Equal(got, tc.addrs) {
				t.Errorf("getent ahosts %s = %v, want %v", tc.name, got, tc.addrs)
			}
			if queries != 2 {
				t.Errorf("the lookup cost %d queries, want 2 (A and AAAA)", queries)
			}
		})
	}
}

// TestGlibcLookups resolves mesh names with glibc's resolver (getent ahosts) in a pod-like
// network namespace, ndots:5 and three search domains, and counts the queries meshdns
// receives: autopath makes every lookup cost exactly two (A and AAAA), where a resolver
// without it is asked up to eight.
func TestGlibcLookups(t *testing.T) {
	need(t, "getent")
	need(t, "dig")
	n := newNetns(t)
	// The upstream is a closed port: every name below must be answered from the table.
	log := serveInNetns(t, n, closedUpstream)
	lookups(t, n, log, []lookupCase{
		{"reviews", []string{"10.96.10.20", "fd00:10:96::20"}},
		{"mysql.data", []string{"10.244.1.21", "10.244.2.22", "10.244.3.23"}},
		{"api.payments.example.com", []string{"203.0.113.10"}},
		{"billing.vms.example.com", []string{"192.0.2.50", "192.0.2.51"}},
		{"anything.internal.example.com", []string{"198.51.100.7"}},
		{"mysql-0.mysql.data.svc.cluster.local", []string{"10.244.1.21"}},
		{"mysql-0.mysql.data", []string{"10.244.1.21"}},  // through the search list: autopath
		{"mysql-0.mysql.data.", []string{"10.244.1.21"}}, // absolute: an endpoint's short name
	})
}

// TestGlibcExternalLookups: names only the upstream (a real dnsmasq in the namespace) knows
// also cost two queries, the first search-list query being answered with CNAME + records; a
// name that does not exist still fails.
func TestGlibcExternalLookups(t *testing.T) {
	need(t, "getent")
	need(t, "dig")
	need(t, "dnsmasq")
	n := newNetns(t)
	start(t, n, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--listen-address=127.0.0.1", "--port=5353", "--pid-file=", "--user=root",
		"--local=/example.com/", "--host-record=www.example.com,192.0.2.80,2001:db8::80",
		"--host-record=v4only.example.com,192.0.2.81")
	waitAnswer(t, n, "5353", "www.example.com", "192.0.2.80")
	log := serveInNetns(t, n, "127.0.0.1:5353")
	lookups(t, n, log, []lookupCase{
		{"www.example.com", []string{"192.0.2.80", "2001:db8::80"}},
		{"v4only.example.com", []string{"192.0.2.81"}},
		{"WWW.Example.com", []string{"192.0.2.80", "2001:db8::80"}},
		{"nowhere.example.com", nil},
	})
}

// ahosts returns the sorted distinct addresses of `getent ahosts` output.
func ahosts(out string) []string {
	var addrs []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && !slices.Contains(addrs, f[0]) {
			addrs = append(addrs, f[0])
		}
	}
	slices.Sort(addrs)
	return addrs
}
