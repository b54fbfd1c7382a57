package capture

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

const (
	// cmdTimeout bounds every command a test runs in a namespace.
	cmdTimeout = 30 * time.Second
	// readyTimeout bounds how long a DNS server started in a namespace may take to answer.
	readyTimeout = 10 * time.Second
)

// netns is a network namespace made for one test; nothing the test does leaves it.
type netns struct {
	name string
}

var netnsSeq atomic.Int32

// needRoot stops a test that needs root: it fails under CI=true, where it must run, and is
// skipped elsewhere.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "capture tests need root: they create network namespaces and change netfilter rules inside them"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// newNetns creates a namespace with lo up and deletes it, with its /etc/netns directory, when
// the test ends.
func newNetns(t *testing.T) *netns {
	t.Helper()
	needRoot(t)
	testutil.LookPath(t, "ip", "iproute2")
	n := &netns{name: fmt.Sprintf("meshdns-capture-%d-%d", os.Getpid(), netnsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
		os.RemoveAll(filepath.Join("/etc/netns", n.name))
	})
	n.run(t, "ip", "link", "set", "lo", "up")
	return n
}

// runner is the Runner that runs commands inside the namespace. A binary missing on the host
// gives the same error as with ExecRunner.
func (n *netns) runner() Runner {
	return func(ctx context.Context, stdin string, name string, args ...string) (string, error) {
		if _, err := lookPath(name); err != nil {
			return "", err
		}
		return ExecRunner(ctx, stdin, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	}
}

// run runs a command in the namespace and fails the test when it fails.
func (n *netns) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := n.try(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// try runs a command in the namespace and returns its standard output.
func (n *netns) try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return n.runner()(ctx, "", name, args...)
}

// etc writes /etc/netns/NAME/file, which `ip netns exec` mounts over /etc/file.
func (n *netns) etc(t *testing.T, file, content string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", n.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs a long-lived command in the namespace until the test ends.
func (n *netns) start(t *testing.T, name string, args ...string) *testutil.SyncBuffer {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("--- %s %s ---\n%s", name, strings.Join(args, " "), out)
		}
	})
	return out
}

// backendCase is a backend as the tests drive it, with the commands for editing rules by hand.
type backendCase struct {
	name    string
	backend Backend
	// wrap adjusts the Runner: the iptables backend is tested with the nf_tables flavour
	// whatever the host's iptables alternative points to.
	wrap     func(Runner) Runner
	iptables []string // iptables and ip6tables commands of the flavour; nil for nftables
	bins     []string // binaries the backend needs
}

var backendCases = []backendCase{
	{name: "iptables-nft", backend: IPTables, wrap: nftFlavour,
		iptables: []string{"iptables-nft", "ip6tables-nft"},
		bins:     []string{"iptables-nft-save", "iptables-nft-restore", "ip6tables-nft-save", "ip6tables-nft-restore"}},
	{name: "iptables-legacy", backend: IPTablesLegacy, wrap: func(r Runner) Runner { return r },
		iptables: []string{"iptables-legacy", "ip6tables-legacy"},
		bins:     []string{"iptables-legacy-save", "iptables-legacy-restore", "ip6tables-legacy-save", "ip6tables-legacy-restore"}},
	{name: "nftables", backend: NFTables, wrap: func(r Runner) Runner { return r }, bins: []string{"nft"}},
}

// need checks that the backend's binaries exist (failing under CI, skipping elsewhere).
func (bc backendCase) need(t *testing.T) {
	t.Helper()
	for _, bin := range bc.bins {
		pkg := "iptables"
		if bin == "nft" {
			pkg = "nftables"
		}
		testutil.LookPath(t, bin, pkg)
	}
}

// nftFlavour runs the nf_tables flavour of every generic iptables command.
func nftFlavour(run Runner) Runner {
	return func(ctx context.Context, stdin string, name string, args ...string) (string, error) {
		if (strings.HasPrefix(name, "iptables") || strings.HasPrefix(name, "ip6tables")) &&
			!strings.Contains(name, "-nft") && !strings.Contains(name, "-legacy") {
			name = strings.Replace(name, "tables", "tables-nft", 1)
		}
		return run(ctx, stdin, name, args...)
	}
}

// hide makes the commands for which hidden returns true look uninstalled.
func hide(run Runner, hidden func(name string) bool) Runner {
	return func(ctx context.Context, stdin string, name string, args ...string) (string, error) {
		if hidden(name) {
			return "", notFound(name)
		}
		return run(ctx, stdin, name, args...)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	t.Cleanup(cancel)
	return ctx
}
