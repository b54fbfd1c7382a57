// Package dnsmasq starts a real dnsmasq on loopback for tests that need a real upstream
// resolver (docs/testing.md).
//
// Start picks a free port, runs dnsmasq in the foreground with no configuration besides the
// arguments it is given, waits until it answers, and stops it when the test ends. When the
// binary is missing the test fails under CI=true and is skipped elsewhere.
package dnsmasq

import (
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil"
)

// Start runs dnsmasq on 127.0.0.1 with a free port, UDP and TCP, and returns its address.
// args are appended to a base configuration that reads no files (no resolv.conf, no hosts, no
// config file), for example "--local=/test/", "--address=/a.test/192.0.2.10".
// dnsmasq is killed in t.Cleanup.
func Start(t testing.TB, args ...string) netip.AddrPort {
	t.Helper()
	return testutil.StartResolver(t, "dnsmasq", "dnsmasq-base", func(addr netip.AddrPort, _ string) ([]string, error) {
		return append(baseArgs(addr), args...), nil
	})
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
