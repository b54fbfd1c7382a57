package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/testutil/netlab"
	"github.com/meshdns/meshdns/internal/vipfwd"
)

// The VIP paths benchmark's two hosts: the same kind of server at two addresses, known to the
// cluster DNS with a long TTL (its VIP gets a kernel path entry) and with a TTL of 1 s (too
// short for an entry: its VIP's connections always go through the forwarder).
const (
	natHost = "bulk-nat.corp.example.com"
	natIP   = "192.0.2.21"
	fwdHost = "bulk-fwd.corp.example.com"
	fwdIP   = "192.0.2.22"
	// pathsBulk is what one bulk operation sends.
	pathsBulk = 256 << 20
)

// BenchmarkVIPPaths measures the three ways a connection reaches a host in a pod-like network
// namespace with capture --vips and meshdns --forward-vips --vip-nat (as uid 1337 with
// CAP_NET_ADMIN, a separate process): path=direct to the host's address, path=forwarder to the
// VIP of a host whose connections the forwarder copies, path=kernel to the VIP of a host with a
// kernel path entry (nftables DNAT). bulk sends 256 MiB per operation and waits for the
// server's count; setup connects, exchanges one byte and closes. Reported besides ns/op:
// cpu-ns/op of the test process (client and server) and meshdns-cpu-ns/op (/proc/PID/stat).
// Needs root: go test -run '^$' -bench VIPPaths ./test/e2e
func BenchmarkVIPPaths(b *testing.B) {
	n, pid := vipPathsRig(b)
	vipOf := func(host string) string {
		return strings.TrimSpace(n.Run(b, "dig", "@127.0.0.1", "-p", "15053", "+short", host))
	}
	dial := func(addr string) func() (*net.TCPConn, error) {
		return func() (*net.TCPConn, error) {
			var c net.Conn
			err := n.Do(func() (err error) { c, err = net.Dial("tcp", addr); return err })
			if err != nil {
				return nil, err
			}
			return c.(*net.TCPConn), nil
		}
	}
	natVIP, fwdVIP := vipOf(natHost), vipOf(fwdHost)
	paths := []struct {
		name string
		dial func() (*net.TCPConn, error)
	}{
		{"path=direct", dial(natIP + ":3306")},
		{"path=forwarder", dial(fwdVIP + ":3306")},
		{"path=kernel", dial(natVIP + ":3306")},
	}
	// The kernel path's entry is written after a first forwarded connection.
	if err := testutil.PingOnce(paths[2].dial); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(readyTimeout)
	for !strings.Contains(n.Run(b, "nft", "list", "map", "inet", vipfwd.NATTable, "v4"), natVIP+" . 3306") {
		if time.Now().After(deadline) {
			b.Fatal("no kernel path entry for " + natVIP)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, op := range []struct {
		name  string
		once  func(dial func() (*net.TCPConn, error), buf []byte) error
		bytes int64
	}{{"bulk", func(d func() (*net.TCPConn, error), buf []byte) error { return testutil.BulkOnce(d, buf, pathsBulk) }, pathsBulk},
		{"setup", func(d func() (*net.TCPConn, error), _ []byte) error { return testutil.PingOnce(d) }, 0}} {
		b.Run(op.name, func(b *testing.B) {
			buf := make([]byte, 1<<20)
			for _, p := range paths {
				b.Run(p.name, func(b *testing.B) {
					b.SetBytes(op.bytes)
					self, mesh := selfCPU(b), procCPU(b, pid)
					for b.Loop() {
						if err := op.once(p.dial, buf); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(selfCPU(b)-self)/float64(b.N), "cpu-ns/op")
					b.ReportMetric(float64(procCPU(b, pid)-mesh)/float64(b.N), "meshdns-cpu-ns/op")
				})
			}
		})
	}
}

// vipPathsRig builds the benchmark's namespace and returns it and meshdns's process id.
func vipPathsRig(b *testing.B) (*netns, string) {
	for _, tool := range []string{"dig", "dnsmasq", "setpriv", "nft", "pgrep"} {
		need(b, tool)
	}
	n := netlab.New(b, fmt.Sprintf("meshdns-paths-%d", os.Getpid()))
	n.WriteEtc(b, "resolv.conf", captureResolvConf)
	for _, ip := range []string{clusterDNS, natIP, fwdIP} {
		n.Run(b, "ip", "addr", "add", ip+"/32", "dev", "lo")
	}
	n.Run(b, "ip", "route", "add", "default", "dev", "lo")
	for _, ip := range []string{natIP, fwdIP} {
		var ln net.Listener
		if err := n.Do(func() (err error) { ln, err = net.Listen("tcp", ip+":3306"); return err }); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go testutil.ServeLoad(c)
			}
		}()
	}
	n.Start(b, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--listen-address="+clusterDNS, "--port=53", "--pid-file=", "--user=root",
		"--log-facility=-", "--local=/example.com/",
		"--host-record="+natHost+","+natIP+",3600", "--host-record="+fwdHost+","+fwdIP+",1")
	bin, registry := readableByProxy(b)
	var entries strings.Builder
	for _, host := range []string{natHost, fwdHost} {
		name, _, _ := strings.Cut(host, ".")
		fmt.Fprintf(&entries, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: db}\n"+
			"spec:\n  hosts: [%s]\n  ports: [{number: 3306, name: mysql, protocol: TCP}]\n  resolution: DNS\n", name, host)
	}
	if err := os.WriteFile(filepath.Join(registry, "bulk.yaml"), []byte(entries.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	n.Start(b, "setpriv", "--inh-caps", "+net_admin", "--ambient-caps", "+net_admin",
		"--reuid", "1337", "--regid", "1337", "--clear-groups", bin, "serve", "--registry", registry,
		"--listen", "127.0.0.1:15053", "--admin", "", "--forward-vips", "--vip-nat", "--log-level", "warn")
	n.Run(b, meshdnsBin, "capture", "install", "--backend", "nftables", "--vips")
	b.Cleanup(func() {
		n.Command(meshdnsBin, "capture", "uninstall", "--backend", "nftables").Run()
		n.Command("nft", "delete", "table", "inet", vipfwd.NATTable).Run()
	})
	deadline := time.Now().Add(readyTimeout)
	for {
		out, _ := n.Command("dig", "@127.0.0.1", "-p", "15053", "+short", "+tries=1", "+time=1", natHost).Output()
		if strings.HasPrefix(string(out), "240.240.") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("meshdns does not answer " + natHost + " with a VIP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n, strings.Fields(n.Run(b, "pgrep", "-f", "--newest", "serve --registry "+registry))[0]
}

// selfCPU is the CPU time of this process in nanoseconds, user and system.
func selfCPU(b *testing.B) int64 {
	return procCPU(b, "self")
}

// procCPU is the CPU time of process pid in nanoseconds (utime + stime of /proc/PID/stat,
// clock ticks of 10 ms).
func procCPU(b *testing.B, pid string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return (utime + stime) * int64(10*time.Millisecond)
}
