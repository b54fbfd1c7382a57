package server

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// The server's rules for a query's packet, checked before the resolver sees the query
// (docs/records.md, Answer rules). A QUERY is malformed, and answered FORMERR, when
//   - bytes follow its last record (RFC 1035 §4.1 has no room for them);
//   - it has answer or authority records (a question has no answer yet; only IXFR carries
//     the client's SOA in authority, RFC 1995 §3);
//   - its additional section holds more than one OPT record (RFC 6891 §6.1.1), a record other
//     than OPT, TSIG and SIG(0), or a signature that is not the last record (RFC 8945 §5.1);
//   - an EDNS option is malformed: a COOKIE of other than 8 or 16 to 40 bytes (RFC 7873
//     §5.2.2), a CLIENT-SUBNET whose family, prefix lengths and address disagree (RFC 7871 §6,
//     §7.1.2).
//
// An EDNS version other than 0 is BADVERS (RFC 6891 §6.1.3), and a signed query REFUSED:
// meshdns holds no keys. Other opcodes are left to the resolver (NOTIMP).

// packetRcode returns the rcode rejecting req, unpacked from pkt, or NOERROR.
func packetRcode(pkt []byte, req *dns.Msg) int {
	if req.Opcode != dns.OpcodeQuery {
		return dns.RcodeSuccess
	}
	end, opt := scan(pkt)
	switch {
	case end != len(pkt), len(req.Answer) > 0, len(req.Ns) > 0 && !soaForIXFR(req):
		return dns.RcodeFormatError
	}
	if rcode := additionalRcode(req.Extra); rcode != dns.RcodeSuccess {
		return rcode
	}
	if o := req.IsEdns0(); o != nil && o.Version() != 0 {
		return dns.RcodeBadVers
	}
	if rcode := optionsRcode(opt); rcode != dns.RcodeSuccess {
		return rcode
	}
	if n := len(req.Extra); n > 0 && req.Extra[n-1].Header().Rrtype != dns.TypeOPT {
		return dns.RcodeRefused
	}
	return dns.RcodeSuccess
}

func soaForIXFR(req *dns.Msg) bool {
	return len(req.Question) == 1 && req.Question[0].Qtype == dns.TypeIXFR && len(req.Ns) == 1 &&
		req.Ns[0].Header().Rrtype == dns.TypeSOA
}

// additionalRcode checks the records of a query's additional section.
func additionalRcode(extra []dns.RR) int {
	opts := 0
	for i, rr := range extra {
		switch rr.Header().Rrtype {
		case dns.TypeOPT:
			if opts++; opts > 1 {
				return dns.RcodeFormatError
			}
		case dns.TypeTSIG, dns.TypeSIG:
			if i != len(extra)-1 {
				return dns.RcodeFormatError
			}
		default:
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

// optionsRcode checks the options of an OPT record's RDATA, as sent.
func optionsRcode(rdata []byte) int {
	for len(rdata) >= 4 {
		code, l := binary.BigEndian.Uint16(rdata), int(binary.BigEndian.Uint16(rdata[2:]))
		if 4+l > len(rdata) {
			return dns.RcodeFormatError
		}
		if rcode := optionRcode(code, rdata[4:4+l]); rcode != dns.RcodeSuccess {
			return rcode
		}
		rdata = rdata[4+l:]
	}
	if len(rdata) != 0 {
		return dns.RcodeFormatError
	}
	return dns.RcodeSuccess
}

// optionRcode checks one EDNS option of a query; the fast path asks it too.
func optionRcode(code uint16, data []byte) int {
	switch code {
	case dns.EDNS0COOKIE:
		// A client cookie alone, or with a server cookie of 8 to 32 bytes.
		if l := len(data); l != 8 && (l < 16 || l > 40) {
			return dns.RcodeFormatError
		}
	case dns.EDNS0SUBNET:
		if !validSubnet(data) {
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

// validSubnet reports whether a CLIENT-SUBNET option of a query is consistent: a known family
// (0 only with nothing in it, as dig sends for +subnet=0), a source prefix no longer than the
// family's addresses, a scope of 0, and an address of just the octets the prefix covers, its
// bits beyond the prefix clear.
func validSubnet(data []byte) bool {
	if len(data) < 4 {
		return false
	}
	family, source, scope, addr := binary.BigEndian.Uint16(data), int(data[2]), data[3], data[4:]
	maxBits := -1
	switch family {
	case 0:
		maxBits = 0
	case 1:
		maxBits = 32
	case 2:
		maxBits = 128
	}
	if source > maxBits || scope != 0 || len(addr) != (source+7)/8 {
		return false
	}
	if source%8 != 0 && addr[len(addr)-1]&(0xff>>(source%8)) != 0 {
		return false
	}
	return true
}

// scan walks pkt, which miekg/dns unpacked, and returns the offset past the last record its
// header counts and the RDATA of its first OPT record (nil without one); end is -1 when the
// records do not fit.
func scan(pkt []byte) (end int, opt []byte) {
	if len(pkt) < headerLen {
		return -1, nil
	}
	off := headerLen
	for range binary.BigEndian.Uint16(pkt[4:]) {
		if off = skipName(pkt, off) + 4; off < 4 || off > len(pkt) {
			return -1, nil
		}
	}
	records := int(binary.BigEndian.Uint16(pkt[6:])) + int(binary.BigEndian.Uint16(pkt[8:])) + int(binary.BigEndian.Uint16(pkt[10:]))
	for range records {
		if off = skipName(pkt, off); off < 0 || off+10 > len(pkt) {
			return -1, nil
		}
		rdlen := int(binary.BigEndian.Uint16(pkt[off+8:]))
		if off+10+rdlen > len(pkt) {
			return -1, nil
		}
		if opt == nil && binary.BigEndian.Uint16(pkt[off:]) == dns.TypeOPT {
			opt = pkt[off+10 : off+10+rdlen : off+10+rdlen]
		}
		off += 10 + rdlen
	}
	return off, opt
}

// skipName returns the offset past the name at off, or -1. The name was unpacked already: a
// pointer ends it, wherever it points.
func skipName(pkt []byte, off int) int {
	for off < len(pkt) {
		switch l := int(pkt[off]); {
		case l == 0:
			return off + 1
		case l&0xc0 == 0xc0:
			if off+2 > len(pkt) {
				return -1
			}
			return off + 2
		case l&0xc0 != 0:
			return -1
		default:
			off += 1 + l
		}
	}
	return -1
}

// malformed returns, for a packet miekg/dns cannot unpack, a request holding what can be read
// of it, header and question, for a FORMERR; nil when even those cannot be read, or when
// the packet is a response: such packets get no reply at all.
func malformed(pkt []byte) *dns.Msg {
	if len(pkt) < headerLen {
		return nil
	}
	flags := binary.BigEndian.Uint16(pkt[2:])
	if flags&bitQR != 0 || binary.BigEndian.Uint16(pkt[4:]) != 1 {
		return nil
	}
	name, off, err := dns.UnpackDomainName(pkt, headerLen)
	if err != nil || off+4 > len(pkt) {
		return nil
	}
	req := &dns.Msg{MsgHdr: dns.MsgHdr{Id: binary.BigEndian.Uint16(pkt), Opcode: int(flags&maskOpcode) >> 11,
		RecursionDesired: flags&bitRD != 0, CheckingDisabled: flags&bitCD != 0}}
	req.Question = []dns.Question{{Name: name, Qtype: binary.BigEndian.Uint16(pkt[off:]),
		Qclass: binary.BigEndian.Uint16(pkt[off+2:])}}
	return req
}
