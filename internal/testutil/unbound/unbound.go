// Package unbound starts a real unbound on loopback for tests that need a real upstream
// resolver (docs/testing.md).
//
// Start picks a free port, writes a configuration to the test's temporary directory, runs
// unbound in the foreground with it, waits until it answers, and stops it when the test ends.
// The configuration never lets unbound leave the machine: names outside the test's local
// zones are REFUSED instead of being resolved from the root. When the binary is missing the
// test fails under CI=true and is skipped elsewhere.
package unbound

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil"
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
	return testutil.StartResolver(t, "unbound", "unbound", func(addr netip.AddrPort, dir string) ([]string, error) {
		path := filepath.Join(dir, "unbound.conf")
		if err := os.WriteFile(path, []byte(config(dir, addr, conf)), 0o644); err != nil {
			return nil, err
		}
		return []string{"-d", "-c", path}, nil
	})
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
