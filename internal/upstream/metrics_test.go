package upstream

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// TestMetricsAndLog sends a few queries to a failing server followed by a good one and checks
// the counters by reason, the latency histogram, and that the failures make one log line.
func TestMetricsAndLog(t *testing.T) {
	const queries = 3
	forged := func(_ string, q *dns.Msg) []packet {
		bad := replyA(q, dns.RcodeSuccess, "192.0.2.66")
		bad.Id ^= 0xFFFF
		return []packet{{msg: bad}, {msg: replyA(q, dns.RcodeSuccess, "192.0.2.99")}}
	}
	tests := []struct {
		name   string
		first  func(t *testing.T) netip.AddrPort
		reason failReason
		lines  int // "upstream query failed" lines
	}{
		{name: "closed port", first: closedPort, reason: reasonNetwork, lines: 1},
		{name: "silent", first: silentServer, reason: reasonTimeout, lines: 1},
		{name: "SERVFAIL", first: fakeAddr(answerWith(dns.RcodeServerFailure, "")), reason: reasonServfail, lines: 1},
		{name: "REFUSED", first: fakeAddr(answerWith(dns.RcodeRefused, "")), reason: reasonRefused, lines: 1},
		{name: "forged reply before the real one", first: fakeAddr(forged), reason: reasonInvalid},
	}
	for _, tc := range tests {
		for _, network := range networks {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				first := tc.first(t)
				good := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.99")).addr
				var logs testutil.SyncBuffer
				m := NewMetrics(prometheus.NewRegistry())
				opts := Options{TryTimeout: 100 * time.Millisecond, FailThreshold: 100, Now: testutil.NewClock().Now,
					Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
				f := newForwarder(t, []netip.AddrPort{first, good}, opts, 0)
				for range queries {
					if _, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{TCP: network == "tcp"}); err != nil {
						t.Fatalf("Forward: %v", err)
					}
				}
				checkFailures(t, m, first, tc.reason, queries)
				if n := promtest.ToFloat64(m.queries.WithLabelValues(first.String(), network)); n != queries {
					t.Errorf("queries_total{protocol=%s} = %v, want %d", network, n, queries)
				}
				if n := latencyCount(t, m, good); tc.reason != reasonInvalid && n != queries {
					t.Errorf("latency observations of the good server = %d, want %d", n, queries)
				}
				if n := strings.Count(logs.String(), "upstream query failed"); n != tc.lines {
					t.Errorf("%d failure log lines, want %d:\n%s", n, tc.lines, logs.String())
				}
			})
		}
	}
}

func fakeAddr(h handler) func(t *testing.T) netip.AddrPort {
	return func(t *testing.T) netip.AddrPort { return startFake(t, h).addr }
}

func checkFailures(t *testing.T, m *Metrics, server netip.AddrPort, reason failReason, want int) {
	t.Helper()
	for r := range numReasons {
		w := 0
		if r == reason {
			w = want
		}
		if n := promtest.ToFloat64(m.failures.WithLabelValues(server.String(), r.String())); n != float64(w) {
			t.Errorf("failures_total{reason=%s} = %v, want %d", r, n, w)
		}
	}
}

func latencyCount(t *testing.T, m *Metrics, server netip.AddrPort) uint64 {
	t.Helper()
	var out dto.Metric
	if err := m.latency.WithLabelValues(server.String()).(prometheus.Metric).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}

// TestMarkedDownLogged checks the one line a server going down produces.
func TestMarkedDownLogged(t *testing.T) {
	bad := startFake(t, answerWith(dns.RcodeRefused, ""))
	good := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.99"))
	var logs testutil.SyncBuffer
	f := newForwarder(t, []netip.AddrPort{bad.addr, good.addr},
		Options{Now: testutil.NewClock().Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, 0)
	for range 10 {
		if _, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{}); err != nil {
			t.Fatalf("Forward: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "upstream marked down"); n != 1 {
		t.Errorf("%d marked-down lines, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "\n"); n != 2 {
		t.Errorf("%d log lines for 10 queries, want 2 (one failure, one marked down):\n%s", n, logs.String())
	}
}
