package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// transport performs one exchange with server, bounded by ctx. udpSize is the receive buffer
// for datagram transports.
type transport func(ctx context.Context, server netip.AddrPort, q *dns.Msg, udpSize uint16) (*dns.Msg, error)

// exchangeUDP sends q from a fresh socket and reads until a datagram answers q. The socket is
// connected, so the kernel already drops packets from other addresses and reports ICMP port
// unreachable as an error; the source check below keeps that guarantee explicit.
func exchangeUDP(ctx context.Context, server netip.AddrPort, q *dns.Msg, udpSize uint16) (*dns.Msg, error) {
	packed, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer bindContext(ctx, conn)()
	if _, err := conn.Write(packed); err != nil {
		return nil, err
	}
	buf := make([]byte, udpSize)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, err
		}
		if !sameAddrPort(from, server) {
			continue
		}
		if resp := parseReply(buf[:n], q); resp != nil {
			return resp, nil
		}
	}
}

// exchangeTCP sends q on a new connection and reads messages until one answers q.
func exchangeTCP(ctx context.Context, server netip.AddrPort, q *dns.Msg, _ uint16) (*dns.Msg, error) {
	packed, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", server.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer bindContext(ctx, conn)()
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
// cancelled. The returned func releases the watch and must run before conn is reused or closed.
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
