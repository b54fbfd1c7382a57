package server

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/dchest/siphash"
)

// DNS cookies (RFC 7873) with the interoperable server cookie of RFC 9018: version 1, three
// reserved bytes, a 32-bit timestamp in seconds, and SipHash-2-4 over the client cookie, those
// eight bytes and the client's address, keyed by the server's 128-bit secret. Every reply to a
// query with a COOKIE option carries the client cookie and a server cookie for that client; a
// missing, stale or forged server cookie only earns a fresh one (RFC 7873 §5.2.3-4): meshdns
// answers BADCOOKIE to no one, so a client that has lost its cookie is never turned away.

const (
	clientCookieLen = 8
	serverCookieLen = 16
	// cookieReplyLen is the COOKIE option meshdns sends: client and server cookie.
	cookieReplyLen = clientCookieLen + serverCookieLen
	// cookieOptLen is that option in wire form, code and length first.
	cookieOptLen  = 4 + cookieReplyLen
	cookieVersion = 1
	// A server cookie is accepted from cookieMaxAhead in the future (clock skew between
	// servers sharing the secret) to cookieMaxAge in the past, and replaced by a fresh one
	// once older than cookieRefresh (RFC 9018 §4.3).
	cookieMaxAge   = time.Hour
	cookieMaxAhead = 5 * time.Minute
	cookieRefresh  = 30 * time.Minute
)

// CookieSecret keys the server cookies; servers answering for one address share it.
type CookieSecret [16]byte

// randomSecret returns a fresh secret: cookies handed out before a restart become invalid,
// which costs their clients one fresh cookie each.
func randomSecret() CookieSecret {
	var k CookieSecret
	rand.Read(k[:]) // never fails (crypto/rand)
	return k
}

// cookieAnswer is CookieSecret.cookieAnswer with the server's secret and clock; a query
// without a cookie costs no clock reading.
func (s *Server) cookieAnswer(dst *[cookieReplyLen]byte, sent []byte, ip netip.Addr) []byte {
	if sent == nil {
		return nil
	}
	return s.cookies.cookieAnswer(dst, sent, ip, s.now())
}

// cookieAnswer writes to dst the COOKIE option data answering the query's option data sent,
// for the client at ip at now, and returns dst's part to send; nil when the query had no
// cookie of a valid length (the rules answer those FORMERR). It keeps a valid server cookie
// younger than cookieRefresh and makes a new one otherwise. It allocates nothing.
func (k *CookieSecret) cookieAnswer(dst *[cookieReplyLen]byte, sent []byte, ip netip.Addr, now time.Time) []byte {
	if len(sent) != clientCookieLen && (len(sent) < clientCookieLen+8 || len(sent) > clientCookieLen+32) {
		return nil
	}
	copy(dst[:], sent[:clientCookieLen])
	if len(sent) == cookieReplyLen && k.valid(sent, ip, now) {
		ts := binary.BigEndian.Uint32(sent[clientCookieLen+4:])
		if age(ts, now) <= cookieRefresh {
			copy(dst[clientCookieLen:], sent[clientCookieLen:])
			return dst[:]
		}
	}
	k.serverCookie((*[serverCookieLen]byte)(dst[clientCookieLen:]), sent[:clientCookieLen], ip, uint32(now.Unix()))
	return dst[:]
}

// valid reports whether cookie, client and server cookie of cookieReplyLen bytes, holds a
// server cookie this secret made for the client at ip, within its lifetime at now.
func (k *CookieSecret) valid(cookie []byte, ip netip.Addr, now time.Time) bool {
	srv := cookie[clientCookieLen:]
	if srv[0] != cookieVersion {
		return false
	}
	ts := binary.BigEndian.Uint32(srv[4:])
	if a := age(ts, now); a > cookieMaxAge || a < -cookieMaxAhead {
		return false
	}
	var want [serverCookieLen]byte
	k.serverCookie(&want, cookie[:clientCookieLen], ip, ts)
	// A forger learns nothing from timing: the hash is keyed and the address is the sender's.
	return [serverCookieLen]byte(srv) == want
}

// age is how long before now the timestamp ts was made, negative for one in the future. The
// timestamp is serial-number arithmetic (RFC 1982) on 32 bits, so it survives 2106.
func age(ts uint32, now time.Time) time.Duration {
	return time.Duration(int32(uint32(now.Unix())-ts)) * time.Second
}

// serverCookie writes to dst the server cookie of RFC 9018 §4 for client cookie cc, the
// client at ip and timestamp ts.
func (k *CookieSecret) serverCookie(dst *[serverCookieLen]byte, cc []byte, ip netip.Addr, ts uint32) {
	dst[0] = cookieVersion
	dst[1], dst[2], dst[3] = 0, 0, 0
	binary.BigEndian.PutUint32(dst[4:], ts)
	var in [clientCookieLen + 8 + 16]byte // client cookie, version to timestamp, address
	n := copy(in[:], cc)
	n += copy(in[n:], dst[:8])
	switch {
	case ip.Is4():
		a := ip.As4()
		n += copy(in[n:], a[:])
	case ip.Is6():
		a := ip.As16()
		n += copy(in[n:], a[:])
	}
	h := siphash.Hash(binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:]), in[:n])
	binary.LittleEndian.PutUint64(dst[8:], h) // SipHash's output byte order, as RFC 9018's vectors have it
}
