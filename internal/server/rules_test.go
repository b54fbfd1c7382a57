package server

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rawExchangeOn sends pkt over network ("udp" or "tcp") and returns the reply's bytes, or nil
// when none comes within a second.
func rawExchangeOn(t *testing.T, network, addr string, pkt []byte) []byte {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if network == "tcp" {
		pkt = append(binary.BigEndian.AppendUint16(nil, uint16(len(pkt))), pkt...)
	}
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	if network == "tcp" {
		if _, err := c.Read(buf[:2]); err != nil {
			return nil
		}
		n := int(binary.BigEndian.Uint16(buf))
		if _, err := readFull(c, buf[:n]); err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// withOption is a query for an external name with EDNS carrying the option's raw bytes.
func withOption(t *testing.T, code uint16, data []byte) []byte {
	m := query("ext.example.org.", 1232)
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: code, Data: data}}
	return pack(t, m)
}

// TestPacketRules: one case per rule of the server's checks of a query packet (docs/records.md,
// Answer rules 1-3), over UDP and TCP. A rejected query is never forwarded, and a broken one
// whose header and question can be read is answered FORMERR rather than dropped.
func TestPacketRules(t *testing.T) {
	res, up := testResolver(t, nil)
	addr := startWith(t, res, Options{})
	plain := func() *dns.Msg { return query("ext.example.org.", 0) }
	with := func(f func(m *dns.Msg)) []byte {
		m := plain()
		f(m)
		return pack(t, m)
	}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tsig := &dns.TSIG{Hdr: dns.RR_Header{Name: "key.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm: dns.HmacSHA256, TimeSigned: 1, Fudge: 300, MACSize: 32, MAC: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", OrigId: 1}
	for _, tc := range []struct {
		name  string
		pkt   []byte
		rcode int // -1: forwarded and answered NOERROR
	}{
		{"plain query is answered", pack(t, plain()), -1},
		{"trailing bytes after the question", append(pack(t, plain()), 0, 0, 0), dns.RcodeFormatError},
		{"trailing bytes after the OPT record", append(pack(t, query("ext.example.org.", 1232)), 1), dns.RcodeFormatError},
		{"an answer record", with(func(m *dns.Msg) { m.Answer = []dns.RR{rr("ext.example.org. 60 IN A 192.0.2.1")} }), dns.RcodeFormatError},
		{"an authority record", with(func(m *dns.Msg) { m.Ns = []dns.RR{rr("example.org. 60 IN NS ns.example.org.")} }), dns.RcodeFormatError},
		{"an additional record other than OPT", with(func(m *dns.Msg) { m.Extra = []dns.RR{rr("ns.example.org. 60 IN A 192.0.2.1")} }), dns.RcodeFormatError},
		{"TSIG not last", with(func(m *dns.Msg) { m.Extra = []dns.RR{tsig}; m.SetEdns0(1232, false) }), dns.RcodeFormatError},
		{"signed with TSIG (meshdns holds no keys)", with(func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, tsig) }), dns.RcodeRefused},
		{"valid client cookie", withOption(t, dns.EDNS0COOKIE, make([]byte, 8)), -1},
		{"valid client and server cookie", withOption(t, dns.EDNS0COOKIE, make([]byte, 24)), -1},
		{"cookie shorter than a client cookie", withOption(t, dns.EDNS0COOKIE, make([]byte, 7)), dns.RcodeFormatError},
		{"cookie with a short server cookie", withOption(t, dns.EDNS0COOKIE, make([]byte, 12)), dns.RcodeFormatError},
		{"cookie longer than 40 bytes", withOption(t, dns.EDNS0COOKIE, make([]byte, 41)), dns.RcodeFormatError},
		{"valid client subnet", withOption(t, dns.EDNS0SUBNET, []byte{0, 1, 24, 0, 10, 1, 2}), -1},
		{"client subnet of unknown family", withOption(t, dns.EDNS0SUBNET, []byte{0, 3, 24, 0, 10, 1, 2}), dns.RcodeFormatError},
		{"client subnet prefix longer than the family", withOption(t, dns.EDNS0SUBNET, []byte{0, 1, 33, 0, 10, 1, 2, 3, 4}), dns.RcodeFormatError},
		{"client subnet address longer than its prefix", withOption(t, dns.EDNS0SUBNET, []byte{0, 1, 16, 0, 10, 1, 2}), dns.RcodeFormatError},
		{"client subnet address bits beyond its prefix", withOption(t, dns.EDNS0SUBNET, []byte{0, 1, 15, 0, 10, 1}), dns.RcodeFormatError},
		{"client subnet scope set in a query", withOption(t, dns.EDNS0SUBNET, []byte{0, 1, 24, 24, 10, 1, 2}), dns.RcodeFormatError},
		{"client subnet too short", withOption(t, dns.EDNS0SUBNET, []byte{0, 1, 24}), dns.RcodeFormatError},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				asked := up.asked.Load()
				out := rawExchangeOn(t, network, addr, tc.pkt)
				if out == nil {
					t.Fatalf("no reply, want %s", rcodeName(tc.rcode))
				}
				var resp dns.Msg
				if err := resp.Unpack(out); err != nil {
					t.Fatalf("reply does not parse: %v", err)
				}
				if resp.Id != binaryID(tc.pkt) || !resp.Response || len(resp.Question) != 1 || resp.Question[0].Name != "ext.example.org." {
					t.Errorf("reply does not answer the query: %v", &resp)
				}
				want := max(tc.rcode, dns.RcodeSuccess)
				if resp.Rcode != want || (tc.rcode >= 0) != (len(resp.Answer) == 0) {
					t.Errorf("rcode %s with %d answers, want %s", dns.RcodeToString[resp.Rcode], len(resp.Answer), rcodeName(tc.rcode))
				}
				if tc.rcode >= 0 && up.asked.Load() != asked {
					t.Errorf("a rejected query was forwarded")
				}
				if len(out) > len(tc.pkt) && tc.rcode >= 0 {
					t.Errorf("rejection of %d bytes for a query of %d", len(out), len(tc.pkt))
				}
			})
		}
	}
}

func rcodeName(rcode int) string {
	if rcode < 0 {
		return "an answer"
	}
	return dns.RcodeToString[rcode]
}
