package testutil

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	// daemonStartTimeout bounds how long a started resolver may take to answer its first query.
	daemonStartTimeout = 10 * time.Second
	// daemonAttempts is how often a start is retried when another process takes the port.
	daemonAttempts = 3
)

// StartResolver runs the resolver daemon bin (found in PATH or /usr/sbin; Debian package pkg)
// on a free 127.0.0.1 port, with the arguments args returns for that address and a fresh
// directory, logging to a file there. It waits until the daemon answers a query over UDP or
// TCP (either may be turned off), kills it in t.Cleanup, and returns its address. A missing
// binary fails the test under CI=true and skips it elsewhere.
func StartResolver(t testing.TB, bin, pkg string, args func(addr netip.AddrPort, dir string) ([]string, error)) netip.AddrPort {
	t.Helper()
	path := LookPath(t, bin, pkg)
	var lastErr error
	for range daemonAttempts {
		addr, err := FreePort()
		if err != nil {
			t.Fatalf("%s: finding a free port: %v", bin, err)
		}
		dir := t.TempDir()
		argv, err := args(addr, dir)
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		if lastErr = startDaemon(t, path, argv, addr, dir); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("%s: %v", bin, lastErr)
	return netip.AddrPort{}
}

// LookPath finds bin in PATH or /usr/sbin (root's PATH has sbin, others' may not). When it is
// missing the test fails under CI=true, where a prerequisite must not be skipped, and is
// skipped elsewhere, with the package to install.
func LookPath(t testing.TB, bin, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		path, err = exec.LookPath(filepath.Join("/usr/sbin", bin))
	}
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s binary not found (%v); install the Debian package %s", bin, err, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startDaemon launches bin and waits for it to answer on addr. On success the process is
// registered for cleanup; on failure it is already gone.
func startDaemon(t testing.TB, bin string, argv []string, addr netip.AddrPort, dir string) error {
	logPath := filepath.Join(dir, "daemon.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, argv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	if err := waitAnswer(addr, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		if waitErr != nil {
			err = fmt.Errorf("%w (%v)", err, waitErr)
		}
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(argv, " "), err, out)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return nil
}

// waitAnswer queries addr over UDP, then TCP, until any reply arrives (resolvers refuse names
// they have no data for, which is an answer too).
func waitAnswer(addr netip.AddrPort, exited <-chan struct{}) error {
	q := new(dns.Msg).SetQuestion("ready.invalid.", dns.TypeA)
	deadline := time.Now().Add(daemonStartTimeout)
	for time.Now().Before(deadline) {
		for _, network := range []string{"udp", "tcp"} {
			select {
			case <-exited:
				return errors.New("exited before answering")
			default:
			}
			c := &dns.Client{Net: network, Timeout: 100 * time.Millisecond}
			if _, _, err := c.Exchange(q, addr.String()); err == nil {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no answer within " + daemonStartTimeout.String())
}

// FreePort returns a 127.0.0.1 port that is free for both UDP and TCP right now. Someone may
// take it before it is bound again; callers retry then.
func FreePort() (netip.AddrPort, error) {
	pc, ln, err := ListenBoth()
	if err != nil {
		return netip.AddrPort{}, err
	}
	pc.Close()
	ln.Close()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), nil
}

// ListenBoth listens on one loopback port for UDP and TCP, as a DNS server does. The port is
// the system's choice for UDP; another process may hold it for TCP, so it tries again.
func ListenBoth() (net.PacketConn, net.Listener, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
	}
	return nil, nil, errors.New("no port free for both UDP and TCP")
}
