// Package unbound starts a real unbound on loopback for tests that need a real upstream
// resolver (SPEC section 11).
//
// Start picks a free port, writes a configuration to the test's temporary directory, runs
// unbound in the foreground with it, waits until it answers, and stops it when the test ends.
// The configuration never lets unbound leave the machine: names outside the test's local
// zones are REFUSED instead of being resolved from the root. When the binary is missing the
// test fails under CI=true and is skipped elsewhere.
package unbound

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
	// startTimeout bounds how long Start waits for unbound to answer its first query.
	startTimeout = 10 * time.Second
	// attempts is how often Start retries when another process takes the port it picked.
	attempts = 3
)

// Start runs unbound on 127.0.0.1 with a free port and returns its address. conf holds extra
// lines for the server: clause, one option per line, for example
//
//	local-zone: "test." static
//	local-data: "a.test. 30 IN A 192.0.2.10"
//	do-udp: no
//
// Later lines override the base configuration's options. unbound is killed in t.Cleanup.
func Start(t testing.TB, conf string) netip.AddrPort {
	t.Helper()
	bin := lookPath(t)
	var lastErr error
	for range attempts {
		addr, err := freePort()
		if err != nil {
			t.Fatalf("unbound: finding a free port: %v", err)
		}
		if lastErr = start(t, bin, addr, conf); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("unbound: %v", lastErr)
	return netip.AddrPort{}
}

func lookPath(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("unbound")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/unbound") // root's PATH has sbin, others' may not
	}
	if err == nil {
		return bin
	}
	msg := fmt.Sprintf("unbound binary not found (%v); install the Debian package unbound", err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// config returns the configuration Start writes for a server on addr in dir.
func config(dir string, addr netip.AddrPort, conf string) string {
	var b strings.Builder
	b.WriteString("server:\n")
	for _, line := range []string{
		"interface: " + addr.Addr().String(),
		fmt.Sprintf("port: %d", addr.Port()),
		"do-ip6: no",
		`directory: "` + dir + `"`,
		`chroot: ""`,
		`username: ""`,
		`pidfile: ""`,
		`logfile: ""`,
		"use-syslog: no",
		"do-daemonize: no",
		"verbosity: 1",
		"num-threads: 1",
		`module-config: "iterator"`,
		`local-zone: "." refuse`, // never recurse: tests stay on loopback
	} {
		b.WriteString("\t" + line + "\n")
	}
	for line := range strings.Lines(conf) {
		if line = strings.TrimSpace(line); line != "" {
			b.WriteString("\t" + line + "\n")
		}
	}
	b.WriteString("remote-control:\n\tcontrol-enable: no\n")
	return b.String()
}

// start launches unbound on addr and waits for it to answer. On success the process is
// registered for cleanup; on failure it is already gone.
func start(t testing.TB, bin string, addr netip.AddrPort, conf string) error {
	dir := t.TempDir()
	confPath := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(confPath, []byte(config(dir, addr, conf)), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "unbound.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-d", "-c", confPath)
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
		return fmt.Errorf("%s -d -c %s: %w\n%s", bin, confPath, err, out)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return nil
}

// waitReady queries addr, over UDP and then TCP as either may be turned off, until any reply
// arrives (unbound REFUSES names outside its local zones).
func waitReady(addr netip.AddrPort, exited <-chan struct{}) error {
	q := new(dns.Msg).SetQuestion("ready.invalid.", dns.TypeA)
	deadline := time.Now().Add(startTimeout)
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
