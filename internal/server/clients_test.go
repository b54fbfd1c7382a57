package server

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// exchangeFrom asks m over network from the loopback address src.
func exchangeFrom(t *testing.T, network, src, addr string, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}
	if network == "tcp" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535, Dialer: d}
	conn, err := c.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, _, err := c.ExchangeWithConn(m, conn)
	if err != nil {
		t.Fatalf("%s from %s: %v", network, src, err)
	}
	resp.Compress = true // as sent
	return resp, resp.Len()
}

// TestClientsOutsideAllowListRefused: with AllowClients, a client at another address gets
// REFUSED over UDP and TCP, with no records and no more bytes than its query (no
// amplification), counted; an allowed client is answered, and a reply it leaves for the fast
// path is not served to the other. The sockets are real: 127.0.0.2 is allowed, 127.0.0.1 not.
func TestClientsOutsideAllowListRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	res, _ := testResolver(t, nil)
	addr := startWith(t, res, Options{Metrics: metrics, AllowClients: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	const qname = "reviews.prod.svc.cluster.local."
	for _, network := range []string{"udp", "tcp", "udp"} { // the second UDP ask meets a stored reply
		if resp, _ := exchangeFrom(t, network, "127.0.0.2", addr, query(qname, 1232)); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) == 0 {
			t.Errorf("allowed client over %s: %s with %d answers", network, dns.RcodeToString[resp.Rcode], len(resp.Answer))
		}
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, edns := range []uint16{0, 4096} {
			req := query(qname, edns)
			resp, n := exchangeFrom(t, network, "127.0.0.1", addr, req)
			if resp.Rcode != dns.RcodeRefused || len(resp.Answer)+len(resp.Ns) != 0 || resp.Id != req.Id {
				t.Errorf("client outside over %s, EDNS %d: %s, %d answers, %d authority", network, edns,
					dns.RcodeToString[resp.Rcode], len(resp.Answer), len(resp.Ns))
			}
			if q := len(pack(t, req)); n > q {
				t.Errorf("client outside over %s, EDNS %d: %d-byte reply to a %d-byte query", network, edns, n, q)
			}
		}
	}
	for _, proto := range []string{"udp", "tcp"} {
		if got := testutil.ToFloat64(metrics.disallowed.WithLabelValues(proto)); got != 2 {
			t.Errorf("%s queries refused for the client's address: %v, want 2", proto, got)
		}
	}
}

// TestAllowedAddressForms: IPv4-mapped and zoned addresses are compared as plain ones.
func TestAllowedAddressForms(t *testing.T) {
	srv := New(&stubResolver{}, Options{AllowClients: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fe80::/10")}})
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true},
		{"fe80::1%eth0", true},
		{"192.0.2.1", false},
		{"::ffff:192.0.2.1", false},
		{"2001:db8::1", false},
	} {
		if got := srv.allowed(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("allowed(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if !New(&stubResolver{}, Options{}).allowed(netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("without AllowClients, an address was refused")
	}
}
