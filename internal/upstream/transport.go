package upstream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

// transport performs one exchange of q with s, bounded by ctx.
type transport func(ctx context.Context, s *server, q *dns.Msg) (*dns.Msg, error)

// maxDatagram is the UDP receive buffer: larger than any UDP payload (65,507 bytes over IPv4),
// so no reply is ever cut, whatever size meshdns advertised.
const maxDatagram = 64 << 10

// udpBuffers holds receive buffers of maxDatagram bytes, so that a forwarded query does not
// allocate 64 KiB.
var udpBuffers = sync.Pool{New: func() any { return new([maxDatagram]byte) }}

var (
	// errMalformed is a UDP reply that does not parse: cut, or garbled on the way. TCP is
	// asked instead, at once.
	errMalformed = errors.New("malformed reply")
	// errNoReply is a TryTimeout passed without a reply by a try that goes on listening.
	errNoReply = fmt.Errorf("no reply yet: %w", os.ErrDeadlineExceeded)
)

// attempt is the outcome of one try of one server: the reply, classified once for failover,
// health and metrics, or the error.
type attempt struct {
	s    *server
	resp *dns.Msg
	typ  response.Type // of resp; meaningless with err
	err  error
}

// try asks one server with a fresh query built from proto. A truncated UDP reply is retried
// over TCP; if TCP fails, the truncated reply is still an answer (the client will retry over
// TCP itself). With linger (no other server left to ask) the try is not cut at TryTimeout: it
// listens until ctx ends, so a slow server's late reply still answers.
func (f *Forwarder) try(ctx context.Context, s *server, proto *dns.Msg, tcp, linger bool) attempt {
	if err := ctxErr(ctx); err != nil {
		return attempt{s: s, err: err}
	}
	q := f.query(proto)
	a := attempt{s: s}
	a.resp, a.err = f.tryTransports(ctx, s, q, tcp, linger)
	if a.err == nil {
		a.typ = response.Typify(a.resp)
	}
	f.observe(ctx, a)
	return a
}

func (f *Forwarder) tryTransports(ctx context.Context, s *server, q *dns.Msg, tcp, linger bool) (*dns.Msg, error) {
	if tcp {
		return f.exchange(ctx, s, q, f.exchangeTCP, linger)
	}
	resp, err := f.exchange(ctx, s, q, f.exchangeUDP, linger)
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, errMalformed) {
		// Nothing listens on the UDP port (a TCP-only server), or the reply did not parse:
		// TCP may still answer, at once.
		return f.exchange(ctx, s, q, f.exchangeTCP, linger)
	}
	if err != nil || !resp.Truncated {
		return resp, err
	}
	if full, err := f.exchange(ctx, s, q, f.exchangeTCP, linger); err == nil {
		return full, nil
	}
	return resp, nil
}

// exchange runs one transport under the per-try timeout, or with linger until ctx ends, each
// TryTimeout without a reply then counting as a timeout of s. When ctx (the overall deadline,
// the callers, a parallel winner) ended the try, the context's error is returned instead of
// the I/O error.
func (f *Forwarder) exchange(ctx context.Context, s *server, q *dns.Msg, t transport, linger bool) (*dns.Msg, error) {
	tryCtx := ctx
	if linger {
		defer every(f.opts.TryTimeout, func() { f.observe(ctx, attempt{s: s, err: errNoReply}) })()
	} else {
		var cancel context.CancelFunc
		tryCtx, cancel = context.WithTimeout(ctx, f.opts.TryTimeout)
		defer cancel()
	}
	start := f.opts.Now()
	resp, err := t(tryCtx, s, q)
	if err != nil {
		if cerr := ctxErr(ctx); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	s.m.observeLatency(f.opts.Now().Sub(start))
	return resp, nil
}

// every runs fn each interval until stop is called; once stop has returned, fn no longer runs.
func every(interval time.Duration, fn func()) (stop func()) {
	var mu sync.Mutex
	stopped := false
	mu.Lock()
	defer mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(interval, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			fn()
			t.Reset(interval)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// exchangeUDP sends q from a fresh socket and reads until a datagram answers q. The socket is
// connected, so the kernel already drops packets from other addresses and reports ICMP port
// unreachable as an error; the source check below keeps that guarantee explicit. While more
// than TryTimeout is left, q is sent again every TryTimeout on the same socket with the same
// ID, so a reply to any of the copies answers. A datagram that does not parse ends the
// exchange with errMalformed (for a TCP retry); one that parses but does not answer q is
// skipped.
func (f *Forwarder) exchangeUDP(ctx context.Context, s *server, q *dns.Msg) (*dns.Msg, error) {
	packed, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	s.m.query("udp")
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.addr))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer bindContext(ctx, conn)()
	if _, err := conn.Write(packed); err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) > f.opts.TryTimeout {
		defer every(f.opts.TryTimeout, func() {
			s.m.query("udp")
			_, _ = conn.Write(packed) // a failure shows in the read
		})()
	}
	return readUDP(conn, s, q)
}

// readUDP reads datagrams from conn until one answers q, into a buffer that holds any
// datagram whole: a reply larger than the size meshdns advertised is still a reply.
func readUDP(conn *net.UDPConn, s *server, q *dns.Msg) (*dns.Msg, error) {
	buf := udpBuffers.Get().(*[maxDatagram]byte)
	defer udpBuffers.Put(buf)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			return nil, err
		}
		if !sameAddrPort(from, s.addr) {
			s.m.fail(reasonInvalid)
			continue
		}
		// Unpacked from a copy: the buffer goes back to the pool, and a message must not
		// share its bytes.
		resp, err := unpackReply(bytes.Clone(buf[:n]))
		if err != nil {
			s.m.fail(reasonInvalid)
			return nil, fmt.Errorf("%w: %w", errMalformed, err)
		}
		if answers(resp, q) {
			return resp, nil
		}
		s.m.fail(reasonInvalid)
	}
}

// writeRead sends packed on conn and reads messages until one answers q; the others are
// counted as invalid and skipped, so a forged or stale reply cannot answer.
func writeRead(conn net.Conn, s *server, packed []byte, q *dns.Msg) (*dns.Msg, error) {
	framed := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(packed)), uint16(len(packed)))
	if _, err := conn.Write(append(framed, packed...)); err != nil {
		return nil, err
	}
	for {
		b, err := readFramed(conn)
		if err != nil {
			return nil, err
		}
		if resp := parseReply(b, q); resp != nil {
			return resp, nil
		}
		s.m.fail(reasonInvalid)
	}
}

// readFramed reads one length-prefixed DNS message (RFC 1035 4.2.2).
func readFramed(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, closedErr(err)
	}
	b := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, closedErr(err)
	}
	return b, nil
}

func closedErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("connection closed before a reply: %w", err)
	}
	return err
}

// bindContext makes conn's I/O end when ctx does: at its deadline, or at once when it is
// cancelled. The returned func releases the watch and must run before conn is reused or
// closed; when it returns false the watch has fired and conn must not be reused.
func bindContext(ctx context.Context, conn net.Conn) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// sameAddrPort compares addresses the way the kernel delivers them: IPv4-mapped and plain IPv4
// are equal, and the zone of a link-local source may be spelt differently.
func sameAddrPort(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap().WithZone("") == b.Addr().Unmap().WithZone("")
}
