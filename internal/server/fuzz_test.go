package server

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandle feeds arbitrary packets to the server's handler over both transports: it must
// never panic, and whatever it answers must be a well-formed reply to the same ID within the
// transport's size limit.
func FuzzHandle(f *testing.F) {
	for _, m := range seedQueries() {
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}) // pointer loop
	srv := New(&stubResolver{big: 200}, Options{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, tcp := range []bool{false, true} {
			out := srv.handle(pkt, netip.Addr{}, tcp)
			if out == nil {
				continue
			}
			var m dns.Msg
			if err := m.Unpack(out); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if !m.Response || len(pkt) < 2 || m.Id != uint16(pkt[0])<<8|uint16(pkt[1]) {
				t.Fatalf("reply is not a response to the query's id")
			}
			if !tcp && len(out) > DefaultMaxUDPSize {
				t.Fatalf("UDP reply of %d bytes", len(out))
			}
		}
	})
}

func seedQueries() []*dns.Msg {
	a := query("small.", 0)
	big := query("big.", 1232)
	two := query("small.", 0)
	two.Question = append(two.Question, two.Question[0])
	notify := new(dns.Msg)
	notify.SetNotify("example.")
	cookie := query("small.", 1232)
	cookie.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "01020304050607"}}
	subnet := query("small.", 1232)
	subnet.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 1, 2, 0)}}
	opt := query("small.", 0)
	opt.Question[0].Qtype = dns.TypeOPT
	chaos := query("version.bind.", 0)
	chaos.Question[0].Qtype, chaos.Question[0].Qclass = dns.TypeTXT, dns.ClassCHAOS
	answer := query("small.", 0)
	answer.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "small.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
	return []*dns.Msg{a, big, two, notify, cookie, subnet, opt, chaos, answer}
}
