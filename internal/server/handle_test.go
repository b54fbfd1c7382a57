package server

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// TestFailureFloodLogsOncePerInterval: a flood of queries failing the same way (a panic, a
// reply that does not pack) logs one line per interval, stack included, while the counters
// count every query.
func TestFailureFloodLogsOncePerInterval(t *testing.T) {
	for _, tc := range []struct {
		qname, msg, detail string
		counted            func(*Metrics) prometheus.Counter
	}{
		{"panic.", "panic answering query", "stack=", func(m *Metrics) prometheus.Counter { return m.panics }},
		{"unpackable.", "packing response", "err=", func(m *Metrics) prometheus.Counter {
			return m.queries.WithLabelValues("A", "SERVFAIL", "udp", "error")
		}},
	} {
		t.Run(tc.qname, func(t *testing.T) {
			var logs testutil.SyncBuffer
			clock := testutil.NewClock()
			m := NewMetrics(prometheus.NewRegistry())
			srv := New(&stubResolver{}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: m, Now: clock.Now})
			pkt := pack(t, query(tc.qname, 0))
			flood := func() {
				for range 100 {
					var resp dns.Msg
					if err := resp.Unpack(srv.handle(pkt, netip.Addr{}, false)); err != nil || resp.Rcode != dns.RcodeServerFailure {
						t.Fatalf("answered %v (%v), want SERVFAIL", &resp, err)
					}
				}
			}
			flood()
			clock.Advance(logInterval)
			flood()
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], tc.msg) || !strings.Contains(lines[0], tc.detail) ||
				!strings.Contains(lines[1], "suppressed=99") {
				t.Errorf("logged %d lines, want 2 (%q with %s, then one with suppressed=99):\n%s",
					len(lines), tc.msg, tc.detail, logs.String())
			}
			if n := promtest.ToFloat64(tc.counted(m)); n != 200 {
				t.Errorf("counted %v, want 200", n)
			}
		})
	}
}

// TestSignedReplyStillTruncated: a transaction signature in a reply (TSIG kept last) makes
// dns.Msg.Truncate leave the message whole; the server strips per-message records, so a
// client without EDNS still gets at most 512 bytes with TC set, and no signature.
func TestSignedReplyStillTruncated(t *testing.T) {
	srv := New(&stubResolver{big: 200}, Options{})
	pkt, err := new(dns.Msg).SetQuestion("signed-big.", dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := srv.handle(pkt, netip.Addr{}, false)
	resp := new(dns.Msg)
	if err := resp.Unpack(out); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	if len(out) > 512 || !resp.Truncated {
		t.Errorf("reply of %d bytes, tc %v; want at most 512 bytes with tc", len(out), resp.Truncated)
	}
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype == dns.TypeTSIG {
			t.Errorf("the upstream's TSIG was relayed: %v", rr)
		}
	}
}

// TestRcodeLabel: rcode 16 is labelled BADVERS (what meshdns answers to an unknown EDNS
// version), not BADSIG, which shares the number and which meshdns never sends.
func TestRcodeLabel(t *testing.T) {
	for rc, want := range map[int]string{dns.RcodeSuccess: "NOERROR", dns.RcodeNameError: "NXDOMAIN",
		dns.RcodeBadVers: "BADVERS", 4000: "other"} {
		if got := rcodeLabel(rc); got != want {
			t.Errorf("rcodeLabel(%d) = %q, want %q", rc, got, want)
		}
	}
}
