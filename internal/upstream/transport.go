package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

// transport performs one exchange of q with s, bounded by ctx.
type transport func(ctx context.Context, s *server, q *dns.Msg) (*dns.Msg, error)

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
// TCP itself).
func (f *Forwarder) try(ctx context.Context, s *server, proto *dns.Msg, tcp bool) attempt {
	if err := ctxErr(ctx); err != nil {
		return attempt{s: s, err: err}
	}
	q := f.query(proto)
	a := attempt{s: s}
	a.resp, a.err = f.tryTransports(ctx, s, q, tcp)
	if a.err == nil {
		a.typ = response.Typify(a.resp)
	}
	f.observe(ctx, a)
	return a
}

func (f *Forwarder) tryTransports(ctx context.Context, s *server, q *dns.Msg, tcp bool) (*dns.Msg, error) {
	if tcp {
		return f.exchange(ctx, s, q, f.exchangeTCP)
	}
	resp, err := f.exchange(ctx, s, q, f.exchangeUDP)
	if errors.Is(err, syscall.ECONNREFUSED) {
		// Nothing listens on the UDP port (a TCP-only server): TCP may still answer, at once.
		return f.exchange(ctx, s, q, f.exchangeTCP)
	}
	if err != nil || !resp.Truncated {
		return resp, err
	}
	if full, err := f.exchange(ctx, s, q, f.exchangeTCP); err == nil {
		return full, nil
	}
	return resp, nil
}

// exchange runs one transport under the per-try timeout. When ctx (the overall deadline, the
// callers, a parallel winner) ended the try, the context's error is returned instead of the
// I/O error.
func (f *Forwarder) exchange(ctx context.Context, s *server, q *dns.Msg, t transport) (*dns.Msg, error) {
	tryCtx, cancel := context.WithTimeout(ctx, f.opts.TryTimeout)
	defer cancel()
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

// exchangeUDP sends q from a fresh socket and reads until a datagram answers q. The socket is
// connected, so the kernel already drops packets from other addresses and reports ICMP port
// unreachable as an error; the source check below keeps that guarantee explicit.
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
	buf := make([]byte, f.opts.UDPSize)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, err
		}
		if !sameAddrPort(from, s.addr) {
			s.m.fail(reasonInvalid)
			continue
		}
		if resp := parseReply(buf[:n], q); resp != nil {
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
