package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServerCookieRFC9018: the server cookie is the interoperable one, as the test vectors of
// RFC 9018 Appendix A give it.
func TestServerCookieRFC9018(t *testing.T) {
	secret := CookieSecret(unhex(t, "e5e973e5a6b2a43f48e7dc849e37bfcf"))
	for _, tc := range []struct {
		name string
		ts   uint32
		want string
	}{
		{"A.1 new server cookie", 1559731985, "010000005cf79f111f8130c3eee29480"},
		{"A.2 renewed server cookie", 1559734385, "010000005cf7a871d4a564a1442aca77"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [serverCookieLen]byte
			secret.serverCookie(&got, unhex(t, "2464c4abcf10c957"), netip.MustParseAddr("198.51.100.100"), tc.ts)
			if hex.EncodeToString(got[:]) != tc.want {
				t.Errorf("server cookie %x, want %s", got, tc.want)
			}
		})
	}
}

// TestCookieAnswer: a valid server cookie younger than half an hour is kept; any other (none,
// expired, too far ahead, forged, made for another client, of another version or length) is
// answered with a fresh one for now; the client cookie is always echoed.
func TestCookieAnswer(t *testing.T) {
	secret := CookieSecret{9, 8, 7, 6, 5, 4, 3, 2, 1}
	now := time.Unix(1800000000, 0)
	client, other := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::1")
	cc := []byte("abcdefgh")
	made := func(at time.Time, ip netip.Addr) []byte {
		var sc [serverCookieLen]byte
		secret.serverCookie(&sc, cc, ip, uint32(at.Unix()))
		return append(append([]byte{}, cc...), sc[:]...)
	}
	forged := made(now, client)
	forged[len(forged)-1] ^= 1
	version := made(now, client)
	version[clientCookieLen] = 2
	fresh := made(now, client)
	for _, tc := range []struct {
		name string
		sent []byte
		want []byte
	}{
		{"client cookie only", cc, fresh},
		{"valid", made(now.Add(-10*time.Minute), client), made(now.Add(-10*time.Minute), client)},
		{"valid, 4 minutes ahead", made(now.Add(4*time.Minute), client), made(now.Add(4*time.Minute), client)},
		{"valid, older than half an hour", made(now.Add(-40*time.Minute), client), fresh},
		{"expired", made(now.Add(-61*time.Minute), client), fresh},
		{"too far ahead", made(now.Add(6*time.Minute), client), fresh},
		{"forged", forged, fresh},
		{"other client", made(now, other), fresh},
		{"other version", version, fresh},
		{"other length", append(append([]byte{}, cc...), "12345678"...), fresh},
		{"malformed", cc[:7], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf [cookieReplyLen]byte
			if got := secret.cookieAnswer(&buf, tc.sent, client, now); !bytes.Equal(got, tc.want) {
				t.Errorf("answer to %x: %x, want %x", tc.sent, got, tc.want)
			}
		})
	}
	// An IPv6 client's cookie is its own too.
	var buf [cookieReplyLen]byte
	if got := secret.cookieAnswer(&buf, made(now, other), other, now); !bytes.Equal(got, made(now, other)) {
		t.Errorf("IPv6 client's valid cookie answered with %x", got)
	}
}

// TestCookiesOnBothPaths: over UDP and TCP, the first query of a name (general path) and its
// repeats (fast path over UDP) carry the client cookie and a server cookie valid for the
// client; the server cookie sent back is kept, a forged one replaced.
func TestCookiesOnBothPaths(t *testing.T) {
	res, _ := testResolver(t, nil)
	secret := CookieSecret{42}
	srv := New(res, Options{Listen: []string{"127.0.0.1:0"}, Client: prodClient, CookieSecret: secret})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	addr := srv.Addrs()[0]
	client := netip.MustParseAddr("127.0.0.1")
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{"reviews.prod.svc.cluster.local.", "ext.example.org."} {
			cc := []byte("client" + network[:2])
			sent := cc
			for i := range 4 {
				m := query(name, 1232)
				m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(sent)}}
				r := exchange(t, network, addr, m)
				got := queryCookie(r)
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 || len(got) != cookieReplyLen ||
					!bytes.Equal(got[:clientCookieLen], cc) || !secret.valid(got, client, time.Now()) {
					t.Fatalf("%s %s, query %d with cookie %x: reply %v", network, name, i+1, sent, r)
				}
				if i == 2 && !bytes.Equal(got, sent) {
					t.Errorf("%s %s: valid cookie %x answered with %x, want it kept", network, name, sent, got)
				}
				sent = got
				if i == 2 { // the last query sends a forged server cookie
					sent = append([]byte{}, got...)
					sent[cookieReplyLen-1] ^= 0xff
				}
			}
		}
	}
}

// TestFastPathCountsCookie: a stored reply that fits the client's size only without the
// COOKIE option is left to the general path, which truncates it.
func TestFastPathCountsCookie(t *testing.T) {
	const limit = 512
	p := &packed{wire: make([]byte, limit-optLen-cookieOptLen+1)}
	p.wire[5] = 1 // QDCOUNT, as in any reply
	q := &wireQuery{edns: true, udpSize: limit}
	if p.reply(q, nil, DefaultMaxUDPSize, nil) == nil {
		t.Fatal("reply without a cookie does not fit")
	}
	if out := p.reply(q, make([]byte, cookieReplyLen), DefaultMaxUDPSize, nil); out != nil {
		t.Errorf("reply of %d bytes with a cookie given to a client of %d", len(out), limit)
	}
}
