package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// A minimal DNS client for readiness checks, cache priming and the answer check; the load
// itself comes from dnsperf. Standard library only, so the harness adds no dependency.

const (
	typeA     = 1
	typeCNAME = 5
	typeSOA   = 6
)

var rcodeNames = map[int]string{0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
var typeNames = map[uint16]string{typeA: "A", typeCNAME: "CNAME", typeSOA: "SOA", 2: "NS", 28: "AAAA"}

// reply is what the harness needs of an answer: the rcode and the types of the answer and
// authority records, in order.
type reply struct {
	rcode     int
	answer    []uint16
	authority []uint16
}

// String reads like "NOERROR CNAME A" or "NXDOMAIN (authority SOA)".
func (r reply) String() string {
	parts := []string{rcodeNames[r.rcode]}
	for _, t := range r.answer {
		parts = append(parts, typeNames[t])
	}
	if len(r.authority) > 0 {
		var auth []string
		for _, t := range r.authority {
			auth = append(auth, typeNames[t])
		}
		parts = append(parts, "(authority "+strings.Join(auth, " ")+")")
	}
	return strings.Join(parts, " ")
}

// query asks server for the A records of name over UDP.
func query(server netip.AddrPort, name string, timeout time.Duration) (reply, error) {
	conn, err := net.Dial("udp", server.String())
	if err != nil {
		return reply{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	const id = 0x4d44
	if _, err := conn.Write(buildQuery(id, name, typeA)); err != nil {
		return reply{}, err
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return reply{}, err
	}
	if n < 2 || binary.BigEndian.Uint16(buf) != id {
		return reply{}, errors.New("reply with a wrong ID")
	}
	return parseReply(buf[:n])
}

// buildQuery packs a query with RD set and one question.
func buildQuery(id uint16, name string, qtype uint16) []byte {
	msg := binary.BigEndian.AppendUint16(nil, id)
	msg = append(msg, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; QDCOUNT 1
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		msg = append(msg, byte(len(label)))
		msg = append(msg, label...)
	}
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint16(msg, qtype)
	return binary.BigEndian.AppendUint16(msg, 1) // class IN
}

// parseReply reads the header, skips the questions and collects the record types.
func parseReply(msg []byte) (reply, error) {
	if len(msg) < 12 {
		return reply{}, errors.New("reply shorter than a DNS header")
	}
	r := reply{rcode: int(msg[3] & 0x0f)}
	counts := [3]int{}
	for i := range counts {
		counts[i] = int(binary.BigEndian.Uint16(msg[4+2*i:]))
	}
	off := 12
	var err error
	for range counts[0] {
		if off, err = skipName(msg, off); err != nil {
			return reply{}, err
		}
		off += 4
	}
	for section, dst := range []*[]uint16{&r.answer, &r.authority} {
		for range counts[section+1] {
			var t uint16
			if t, off, err = readRecordType(msg, off); err != nil {
				return reply{}, err
			}
			*dst = append(*dst, t)
		}
	}
	return r, nil
}

// readRecordType returns the type of the record at off and the offset after it.
func readRecordType(msg []byte, off int) (uint16, int, error) {
	off, err := skipName(msg, off)
	if err != nil {
		return 0, 0, err
	}
	if off+10 > len(msg) {
		return 0, 0, errors.New("record header beyond the end of the reply")
	}
	t := binary.BigEndian.Uint16(msg[off:])
	end := off + 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	if end > len(msg) {
		return 0, 0, errors.New("record data beyond the end of the reply")
	}
	return t, end, nil
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(msg []byte, off int) (int, error) {
	for off < len(msg) {
		switch l := int(msg[off]); {
		case l == 0:
			return off + 1, nil
		case l&0xc0 == 0xc0:
			return off + 2, nil
		default:
			off += 1 + l
		}
	}
	return 0, fmt.Errorf("name at offset %d runs beyond the end of the reply", off)
}
