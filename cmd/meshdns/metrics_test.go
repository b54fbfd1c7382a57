package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// kubeOnlyMetrics are documented metrics that serve registers only with the Kubernetes source
// (and whose writes appear only after a write); a manifest directory does not bring them up.
var kubeOnlyMetrics = []string{"meshdns_vip_status_writer_leader", "meshdns_vip_status_writes_total"}

// TestMetricNames runs serve on the examples with the cache, the VIP pools and forwarder, a state
// directory, the admin endpoint and an upstream, asks it a query and sends it a malformed
// packet (so that labelled metrics have series), then lints every metric of its registry with promlint: names, units, help, types and labels
// are a contract with dashboards and alerts. Every metric README.md lists must be among them.
func TestMetricNames(t *testing.T) {
	reg := runServe(t, "--registry", "../../examples/registry", "--resolv-conf", "../../examples/resolv.conf",
		"--upstream", "127.0.0.1:9", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--state-dir", t.TempDir(), "--forward-vips", "--vip-forward-port", "0")
	mfs := testutil.LintMetrics(t, reg)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, name := range documentedMetrics(t) {
		// Agent metrics come with --controller; the controller's with `meshdns controller`; the
		// kernel path's with --vip-nat, which would change this machine's packet filter here
		// (vipfwd's TestNATMetricsLint lints them).
		other := strings.HasPrefix(name, "meshdns_agent_") || strings.HasPrefix(name, "meshdns_controller_") ||
			strings.HasPrefix(name, "meshdns_vip_nat_")
		if !slices.Contains(names, name) && !slices.Contains(kubeOnlyMetrics, name) && !other {
			t.Errorf("README.md lists %s; serve does not expose it", name)
		}
	}
}

// runServe runs serve with args until it has answered a query and dropped a malformed packet,
// and returns its registry.
func runServe(t *testing.T, args ...string) *prometheus.Registry {
	t.Helper()
	cfg := config.Default()
	if err := serveFlags(&cfg).Parse(args); err != nil {
		t.Fatal(err)
	}
	settings, err := cfg.Validate(config.Pod{})
	if err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	reg := newRegistry()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, settings, nil, slog.New(slog.NewJSONHandler(&logs, nil)), reg) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	addr := dnsAddr(t, &logs)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion("reviews.bookinfo.svc.cluster.local.", dns.TypeA)
	if _, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, addr); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0, 1, 2}) // malformed: dropped, and counted so
	for deadline := time.Now().Add(5 * time.Second); !gathered(t, reg, "meshdns_packets_dropped_total"); {
		if time.Now().After(deadline) {
			t.Fatal("the malformed packet was not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return reg
}

// dnsAddr waits for serve's "meshdns serving" line and returns its DNS address.
func dnsAddr(t *testing.T, logs *testutil.SyncBuffer) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct {
				Msg string   `json:"msg"`
				DNS []string `json:"dns"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "meshdns serving" && len(line.DNS) > 0 {
				return line.DNS[0]
			}
		}
	}
	t.Fatalf("serve did not start serving:\n%s", logs.String())
	return ""
}

func gathered(t *testing.T, reg prometheus.Gatherer, name string) bool {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == name })
}

// documentedMetrics returns the metric names of README.md's metrics table.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	cell := regexp.MustCompile("`(meshdns_[a-z_]+)`")
	for line := range strings.Lines(string(data)) {
		if first, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |"); ok && strings.HasPrefix(line, "| `meshdns_") {
			for _, m := range cell.FindAllStringSubmatch(first, -1) {
				names = append(names, m[1])
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found %d metrics in README.md's table: %v", len(names), names)
	}
	return names
}
