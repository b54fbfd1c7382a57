package vipfwd

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/testutil"
)

// bulkBytes is what one iteration of BenchmarkVIPForwarderBulk sends: large enough that the
// connection's setup is lost in it.
const bulkBytes = 256 << 20

// path is one way from the benchmark's client to its server.
type path struct {
	name string
	dial func() (*net.TCPConn, error)
}

// benchRig starts a server on 127.0.0.2 and three paths to it: direct; through relay, the
// least a TCP forwarder in Go can do; and through the forwarder (orders-db's VIP,
// 240.240.0.1, on the server's port, resolved through a cache that never expires). The
// relay's cost over direct is what any forwarder pays for its second connection; the
// forwarder's cost over the relay is its own work. The client dials each path alike.
func benchRig(b *testing.B, handle func(net.Conn)) (*rig, []path) {
	b.Helper()
	port := serve(b, "127.0.0.2:0", handle)
	r := newRig(b, port, Options{}, cache.New(cache.Options{Size: 100, Now: testutil.NewClock().Now}))
	target := "127.0.0.2:" + strconv.Itoa(int(port))
	r.mu.Lock()
	r.next = netip.AddrPortFrom(netip.MustParseAddr("240.240.0.1"), port) // every connection's
	r.mu.Unlock()
	dialer := func(addr string) func() (*net.TCPConn, error) {
		return func() (*net.TCPConn, error) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			return c.(*net.TCPConn), nil
		}
	}
	return r, []path{
		{"path=direct", dialer(target)},
		{"path=relay", dialer(relay(b, target))},
		{"path=forwarder", dialer(r.fwd.Addrs()[0])},
	}
}

// relay listens on 127.0.0.1 and copies each connection to and from a new one to target, with
// io.Copy (splice) both ways and half closes: a forwarder with nothing to look up, no limits
// and no idle timeout. It returns the listen address.
func relay(b *testing.B, target string) string {
	port := serve(b, "127.0.0.1:0", func(c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		c.SetDeadline(time.Now().Add(testutil.LoadWait))
		up.SetDeadline(time.Now().Add(testutil.LoadWait))
		done := make(chan struct{})
		go func() {
			io.Copy(c, up)
			c.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(up, c)
		up.(*net.TCPConn).CloseWrite()
		<-done
	})
	return "127.0.0.1:" + strconv.Itoa(int(port))
}

// BenchmarkVIPForwarderBulk sends bulkBytes per iteration on one connection to a loopback
// server along each path, then half-closes and waits for the server's count: MB/s of the
// sub-benchmarks give the forwarder's share of direct throughput.
func BenchmarkVIPForwarderBulk(b *testing.B) {
	_, paths := benchRig(b, testutil.ServeLoad)
	buf := make([]byte, 1<<20)
	for _, tc := range paths {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(bulkBytes)
			cpu := cpuTime(b)
			for b.Loop() {
				if err := testutil.BulkOnce(tc.dial, buf, bulkBytes); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkVIPForwarderSetup opens a connection, sends one byte, reads it back and closes,
// along each path, through the forwarder with the host's answer already cached: the
// difference of ns/op to direct is what the path adds to a connection's start.
func BenchmarkVIPForwarderSetup(b *testing.B) {
	r, paths := benchRig(b, testutil.ServeLoad)
	if err := testutil.PingOnce(paths[2].dial); err != nil { // warms the cache
		b.Fatal(err)
	}
	for _, tc := range paths {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime(b)
			for b.Loop() {
				if err := testutil.PingOnce(tc.dial); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
	r.dns.mu.Lock()
	defer r.dns.mu.Unlock()
	if r.dns.asked != 1 {
		b.Errorf("upstream asked %d times, want once (the rest from the cache)", r.dns.asked)
	}
}

// cpuTime returns the CPU time the process has used, user and system: client, server and
// forwarder alike, with the kernel's work for their sockets.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time used per operation since start, as cpu-ns/op. On a machine
// shared with other work, elapsed time also counts the waits for a CPU; the CPU time does
// not, and is what a path costs.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}
