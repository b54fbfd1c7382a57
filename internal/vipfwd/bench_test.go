package vipfwd

import (
	"encoding/binary"
	"fmt"
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

// bulkWait bounds one bulk connection, so that a bug fails the benchmark instead of hanging it.
const bulkWait = 2 * time.Minute

// sink reads to EOF, then answers the number of bytes it read (8 bytes, big endian): the
// client learns that every byte arrived, and the answer travels after a half close.
func sink(c net.Conn) {
	c.SetDeadline(time.Now().Add(bulkWait))
	buf := make([]byte, 1<<20)
	var n uint64
	for {
		m, err := c.Read(buf)
		n += uint64(m)
		if err != nil {
			break
		}
	}
	c.Write(binary.BigEndian.AppendUint64(nil, n))
}

// echoByte answers one byte with itself, then waits for the client's close.
func echoByte(c net.Conn) {
	c.SetDeadline(time.Now().Add(wait))
	var one [1]byte
	if _, err := io.ReadFull(c, one[:]); err != nil {
		return
	}
	c.Write(one[:])
	io.Copy(io.Discard, c)
}

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
		c.SetDeadline(time.Now().Add(bulkWait))
		up.SetDeadline(time.Now().Add(bulkWait))
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
	_, paths := benchRig(b, sink)
	buf := make([]byte, 1<<20)
	for _, tc := range paths {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(bulkBytes)
			cpu := cpuTime(b)
			for b.Loop() {
				if err := bulkOnce(tc.dial, buf); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// bulkOnce sends bulkBytes on a new connection, half-closes it and checks the server's count.
func bulkOnce(dial func() (*net.TCPConn, error), buf []byte) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(bulkWait))
	for sent := 0; sent < bulkBytes; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return err
	}
	if n := binary.BigEndian.Uint64(got[:]); n != bulkBytes {
		return fmt.Errorf("server read %d bytes, want %d", n, bulkBytes)
	}
	return nil
}

// BenchmarkVIPForwarderSetup opens a connection, sends one byte, reads it back and closes,
// along each path, through the forwarder with the host's answer already cached: the
// difference of ns/op to direct is what the path adds to a connection's start.
func BenchmarkVIPForwarderSetup(b *testing.B) {
	r, paths := benchRig(b, echoByte)
	if err := pingOnce(paths[2].dial); err != nil { // warms the cache
		b.Fatal(err)
	}
	for _, tc := range paths {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime(b)
			for b.Loop() {
				if err := pingOnce(tc.dial); err != nil {
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

func pingOnce(dial func() (*net.TCPConn, error)) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	one := []byte{'x'}
	if _, err := c.Write(one); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, one); err != nil {
		return err
	}
	return nil
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
