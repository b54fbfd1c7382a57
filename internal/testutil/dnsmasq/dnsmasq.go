// Package dnsmasq starts a real dnsmasq on loopback for tests that need a real upstream
// resolver (SPEC section 11).
//
// Start picks a free port, runs dnsmasq in the foreground with no configuration besides the
// arguments it is given, waits until it answers, and stops it when the test ends. When the
// binary is missing the test fails under CI=true and is skipped elsewhere.
package dnsmasq

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
	// startTimeout bounds how long Start waits for dnsmasq to answer its first query.
	startTimeout = 10 * time.Second
	// attempts is how often Start retries when another process takes the port it picked.
	attempts = 3
)

// Start runs dnsmasq on 127.0.0.1 with a free port, UDP and TCP, and returns its address.
// args are appended to a base configuration that reads no files (no resolv.conf, no hosts, no
// config file), for example "--local=/test/", "--address=/a.test/192.0.2.10".
// dnsmasq is killed in t.Cleanup.
func Start(t testing.TB, args ...string) netip.AddrPort {
	t.Helper()
	bin := lookPath(t)
	var lastErr error
	for range attempts {
		addr, err := freePort()
		if err != nil {
			t.Fatalf("dnsmasq: finding a free port: %v", err)
		}
		if lastErr = start(t, bin, addr, args); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("dnsmasq: %v", lastErr)
	return netip.AddrPort{}
}

func lookPath(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err == nil {
		return bin
	}
	msg := fmt.Sprintf("dnsmasq binary not found (%v); install the Debian package dnsmasq-base", err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// start launches dnsmasq on addr and waits for it to answer. On success the process is
// registered for cleanup; on failure it is already gone.
func start(t testing.TB, bin string, addr netip.AddrPort, args []string) error {
	logPath := filepath.Join(t.TempDir(), "dnsmasq.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, append(baseArgs(addr), args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	if err := waitReady(addr, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		if waitErr != nil {
			err = fmt.Errorf("%w (%v)", err, waitErr)
		}
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(cmd.Args[1:], " "), err, out)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return nil
}

func baseArgs(addr netip.AddrPort) []string {
	args := []string{
		"--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--listen-address=" + addr.Addr().String(),
		fmt.Sprintf("--port=%d", addr.Port()), "--pid-file=", "--log-facility=-",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root") // otherwise dnsmasq drops to nobody
	}
	return args
}

// waitReady queries addr until any reply arrives (dnsmasq REFUSES names it has no data for).
func waitReady(addr netip.AddrPort, exited <-chan struct{}) error {
	c := &dns.Client{Net: "udp", Timeout: 100 * time.Millisecond}
	q := new(dns.Msg).SetQuestion("ready.invalid.", dns.TypeA)
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before answering")
		default:
		}
		if _, _, err := c.Exchange(q, addr.String()); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no answer within " + startTimeout.String())
}

// freePort returns a 127.0.0.1 port that is free for both UDP and TCP right now.
func freePort() (netip.AddrPort, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return netip.AddrPort{}, err
		}
		addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		ln, err := net.Listen("tcp", addr.String())
		pc.Close()
		if err == nil {
			ln.Close()
			return addr, nil
		}
	}
	return netip.AddrPort{}, errors.New("no port free for both UDP and TCP")
}
