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
