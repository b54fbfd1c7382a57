// Package netlab builds the network namespaces that meshdns's tests run real clients, servers
// and packet filters in: single namespaces, and a simulated Kubernetes node with pods behind a
// bridge, the cluster DNS in a namespace of its own and a kube-proxy stand-in translating the
// cluster DNS Service IPs. Every namespace, link and file it makes is removed when the test
// ends. Only addresses it gives to interfaces inside its own namespaces are used.
package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/meshdns/meshdns/internal/testutil"
)

// Netns is a network namespace made for one test. Commands run in it with ip netns exec,
// which mounts the files under /etc/netns/NAME over /etc.
type Netns struct {
	Name string
	ip   string
}

// New makes the namespace name with lo up. Without root the test is skipped, or fails under
// CI=true.
func New(t testing.TB, name string) *Netns {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "network namespaces need root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	n := &Netns{Name: name, ip: testutil.LookPath(t, "ip", "iproute2")}
	if out, err := exec.Command(n.ip, "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() { exec.Command(n.ip, "netns", "del", n.Name).Run() })
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// WriteEtc writes /etc/netns/NAME/file, which commands in the namespace see as /etc/file.
func (n *Netns) WriteEtc(t testing.TB, file, content string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", n.Name)
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Command returns a command that runs inside the namespace.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command(n.ip, append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output; the test fails
// when the command does.
func (n *Netns) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v: %s", name, strings.Join(args, " "), n.Name, err, out)
	}
	return string(out)
}

// Addrs adds addresses (with their prefix lengths) to dev, without duplicate address detection.
func (n *Netns) Addrs(t testing.TB, dev string, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		n.Run(t, "ip", "addr", "add", p, "dev", dev, "nodad")
	}
}

// Routes sets the default routes of both families.
func (n *Netns) Routes(t testing.TB, gw, gw6 string) {
	t.Helper()
	n.Run(t, "ip", "route", "add", "default", "via", gw)
	n.Run(t, "ip", "-6", "route", "add", "default", "via", gw6)
}

// Nft loads an nftables script.
func (n *Netns) Nft(t testing.TB, script string) {
	t.Helper()
	cmd := n.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f in %s: %v: %s", n.Name, err, out)
	}
}

// Do runs f on an OS thread moved into the namespace. A socket stays in the namespace it was
// made in, so f can make listeners and connections there for the calling process. Should the
// thread fail to move back, it stays locked and ends with its goroutine.
func (n *Netns) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(home)
		target, err := unix.Open(filepath.Join("/var/run/netns", n.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		err = f()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Link connects a's device devA to b's devB with a veth pair, both up.
func Link(t testing.TB, a *Netns, devA string, b *Netns, devB string) {
	t.Helper()
	if out, err := exec.Command(a.ip, "link", "add", devA, "netns", a.Name, "type", "veth",
		"peer", "name", devB, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s: %v: %s", devA, err, out)
	}
	a.Run(t, "ip", "link", "set", devA, "up")
	b.Run(t, "ip", "link", "set", devB, "up")
}

// Proc is a process run in a namespace until the test ends.
type Proc struct {
	// Log is its standard output and error, shown when the test fails.
	Log    *testutil.SyncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs name in the namespace; it is killed (SIGKILL) when the test ends, if still running.
func (n *Netns) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{cmd: n.Command(name, args...), Log: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.Log, p.Log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.Stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("--- %s %s ---\n%s", filepath.Base(name), strings.Join(args, " "), p.Log)
		}
	})
	return p
}

// Stop sends sig and returns the exit status once the process is gone (-1: ended by a signal).
func (p *Proc) Stop(sig syscall.Signal) int {
	p.cmd.Process.Signal(sig)
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}

// Exited is closed once the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.exited }
