package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

// podResolvConf is what the kubelet writes into a pod of namespace bookinfo, with meshdns as
// the nameserver.
const podResolvConf = `search bookinfo.svc.cluster.local svc.cluster.local cluster.local
nameserver 127.0.0.1
options ndots:5
`

// netns is a network namespace made for one test, with its own resolv.conf and nsswitch.conf
// (ip netns exec mounts /etc/netns/NAME/* over /etc/*).
type netns struct {
	name string
	ip   string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "network namespaces need root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	n := &netns{name: fmt.Sprintf("meshdns-e2e-%d", os.Getpid()), ip: need(t, "ip")}
	etc := filepath.Join("/etc/netns", n.name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	for name, content := range map[string]string{"resolv.conf": podResolvConf, "nsswitch.conf": "hosts: files dns\n"} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(n.ip, "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(n.ip, "netns", "del", n.name).Run() })
	n.run(t, "ip", "link", "set", "lo", "up")
	return n
}

// command returns a command that runs inside the namespace.
func (n *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command(n.ip, append([]string{"netns", "exec", n.name, name}, args...)...)
}

func (n *netns) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := n.command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v: %s", name, strings.Join(args, " "), n.name, err, out)
	}
	return string(out)
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
	cmd := n.command(meshdnsBin, "serve", "--registry", examplePath("registry"),
		"--listen", "127.0.0.1:53", "--admin", "", "--upstream", closedUpstream, "--log-queries")
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
			if code != 0 {
				t.Errorf("meshdns exited with status %d after SIGTERM", code)
			}
		case <-time.After(exitTimeout):
			cmd.Process.Kill()
			t.Errorf("meshdns did not exit within %s of SIGTERM", exitTimeout)
		}
		if t.Failed() {
			t.Logf("--- meshdns output ---\n%s", out)
		}
	})
	eventually(t, readyTimeout, "meshdns answering in the namespace", func() string {
		got, _ := n.command("dig", "@127.0.0.1", "+short", "+tries=1", "+time=1", "productpage.bookinfo.svc.cluster.local").Output()
		if strings.TrimSpace(string(got)) != "10.96.10.10" {
			return fmt.Sprintf("dig said %q", got)
		}
		return ""
	})
	for _, tc := range []struct {
		name  string
		addrs []string
	}{
		{"reviews", []string{"10.96.10.20", "fd00:10:96::20"}},
		{"mysql.data", []string{"10.244.1.21", "10.244.2.22", "10.244.3.23"}},
		{"api.payments.example.com", []string{"203.0.113.10"}},
		{"billing.vms.example.com", []string{"192.0.2.50", "192.0.2.51"}},
		{"anything.internal.example.com", []string{"198.51.100.7"}},
		{"mysql-0.mysql.data.svc.cluster.local", []string{"10.244.1.21"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(out.String(), "msg=query")
			got := ahosts(n.run(t, "getent", "ahosts", tc.name))
			queries := strings.Count(out.String(), "msg=query") - before
			if !slices.Equal(got, tc.addrs) {
				t.Errorf("getent ahosts %s = %v, want %v", tc.name, got, tc.addrs)
			}
			if queries != 2 {
				t.Errorf("the lookup cost %d queries, want 2 (A and AAAA)", queries)
			}
		})
	}
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
