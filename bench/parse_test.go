package main

import (
	"strings"
	"testing"
	"time"
)

// dnsperfOutput is dnsperf 2.10's output with -v, shortened: four answers, one timeout.
const dnsperfOutput = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 25353 -d q.txt -l 1 -v
[Status] Sending queries (to 127.0.0.1:25353)
[Status] Started at: Sat Nov 21 13:40:36 2026
[Status] Stopping after 1.000000 seconds
> NOERROR ext-0.example.com A 0.000246
> NOERROR ext-1.example.com A 0.000021
> NXDOMAIN nx-1.ns-1.svc.cluster.local A 0.000015
> NOERROR ext-3.example.com A 0.000016
> T ext-4.example.com A
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         5
  Queries completed:    4 (80.00%)
  Queries lost:         1 (20.00%)

  Response codes:       NOERROR 3 (75.00%), NXDOMAIN 1 (25.00%)
  Average packet size:  request 36, response 52
  Run time (s):         1.001434
  Queries per second:   105128.246095

  Average Latency (s):  0.000840 (min 0.000013, max 0.004727)
  Latency StdDev (s):   0.000412

`

func TestParseDnsperf(t *testing.T) {
	res, err := parseDnsperf(strings.NewReader(dnsperfOutput))
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{
		sent: 5, completed: 4, lost: 1, qps: 105128.246095,
		runTime: 1001434 * time.Microsecond, avgLatency: 840 * time.Microsecond,
		p99Latency: dnsperfTimeout, // 1 of 5 lost: the 99th percentile is a lost query
		rcodes:     "NOERROR 3 (75.00%), NXDOMAIN 1 (25.00%)",
	}
	if res != want {
		t.Errorf("parseDnsperf =\n%+v, want\n%+v", res, want)
	}
}

func TestParseDnsperfWithoutStatistics(t *testing.T) {
	if _, err := parseDnsperf(strings.NewReader("> NOERROR a. A 0.1\n")); err == nil {
		t.Error("parseDnsperf without a statistics block: no error")
	}
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name    string
		seconds []float64
		p       float64
		want    time.Duration
	}{
		{name: "empty", seconds: nil, p: 0.99, want: 0},
		{name: "one", seconds: []float64{0.001}, p: 0.99, want: time.Millisecond},
		{name: "nearest rank", seconds: []float64{0.004, 0.001, 0.003, 0.002}, p: 0.5, want: 2 * time.Millisecond},
		{name: "top", seconds: []float64{0.004, 0.001, 0.003, 0.002}, p: 0.99, want: 4 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.seconds, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.seconds, tc.p, got, tc.want)
			}
		})
	}
}

func TestParseStatTicks(t *testing.T) {
	tests := []struct {
		name, stat string
		want       uint64
		wantErr    bool
	}{
		{name: "plain", want: 1234 + 56,
			stat: "23900 (meshdns) S 1 23900 6206 0 -1 4194304 100 0 0 0 1234 56 0 0 20 0 3 0 584161 3133440 358"},
		{name: "spaces and parentheses in the name", want: 7 + 8,
			stat: "42 (a) b (c) R 1 42 42 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 1 1 1"},
		{name: "truncated", wantErr: true, stat: "42 (x) R 1 42"},
		{name: "no name", wantErr: true, stat: "42 x R"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatTicks(tc.stat)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStatTicks = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS("Name:\tmeshdns\nVmPeak:\t  99999 kB\nVmRSS:\t   80244 kB\nRssAnon:\t 70000 kB\n")
	if err != nil || got != 80244*1024 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 80244*1024)
	}
	if _, err := parseVmRSS("Name:\tkthreadd\n"); err == nil {
		t.Error("parseVmRSS without VmRSS: no error")
	}
}

func TestParseCPUTimes(t *testing.T) {
	before, err := parseCPUTimes("cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 0 0 0 0 0 0\ncpu1 5 0 5 50 0 0 0 0 0 0\nintr 1\n")
	if err != nil {
		t.Fatal(err)
	}
	// cpu0: 60 of 100 ticks busy (user, system, softirq; guest is part of user);
	// cpu1: idle, iowait and 10 ticks of steal.
	after, err := parseCPUTimes("cpu  50 0 20 210 20 0 10 10 9 9\n" +
		"cpu0 45 0 15 90 0 0 10 0 9 9\ncpu1 5 0 5 120 20 0 0 10 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    func(before, after cpuTimes, cpu string) float64
		cpu  string
		want float64
	}{
		{"busy CPU 0", busyPercent, "0", 60},
		{"busy CPU 1", busyPercent, "1", 0},
		{"steal CPU 1", stealPercent, "1", 10},
		{"steal all", stealPercent, "all", 5},
	}
	for _, tc := range tests {
		if got := tc.f(before, after, tc.cpu); got != tc.want {
			t.Errorf("%s = %v%%, want %v%%", tc.name, got, tc.want)
		}
	}
}

func TestParseUDPRcvbufErrors(t *testing.T) {
	snmp := "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n" +
		"Udp: 71995087 5503 73566 72075298 73560 0\n" +
		"UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n" +
		"UdpLite: 0 0 0 0 7 0\n"
	if got, err := parseUDPRcvbufErrors(snmp); err != nil || got != 73560 {
		t.Errorf("parseUDPRcvbufErrors = %d, %v; want 73560", got, err)
	}
	if _, err := parseUDPRcvbufErrors("Ip: Forwarding\nIp: 1\n"); err == nil {
		t.Error("parseUDPRcvbufErrors without Udp lines: no error")
	}
}

func TestQueryWire(t *testing.T) {
	q := buildQuery(0x1234, "svc-1.ns-1.svc.cluster.local.", typeA)
	r, err := parseReply(q) // a query parses as a reply without records
	if err != nil || r.rcode != 0 || len(r.answer) != 0 {
		t.Fatalf("parseReply(query) = %v, %v", r, err)
	}
	// NXDOMAIN, the question, and an SOA in authority whose owner is a compression pointer.
	reply := append([]byte{0x12, 0x34, 0x81, 0x83, 0, 1, 0, 0, 0, 1, 0, 0}, q[12:]...)
	reply = append(reply, 0xc0, 12, 0, typeSOA, 0, 1, 0, 0, 0, 30, 0, 2, 0, 0)
	if r, err = parseReply(reply); err != nil || r.String() != "NXDOMAIN (authority SOA)" {
		t.Errorf("parseReply = %q, %v; want NXDOMAIN (authority SOA)", r, err)
	}
	if _, err := parseReply(reply[:len(reply)-1]); err == nil {
		t.Error("parseReply of a truncated record: no error")
	}
}

func TestMixShares(t *testing.T) {
	sets := map[string][]string{setHit: {"h"}, setAutopath: {"a"}, setExternal: {"e"}, setNXDomain: {"n"}}
	count := map[string]int{}
	lines := mixLines(sets)
	for _, l := range lines {
		count[l]++
	}
	want := map[string]int{"h": 60, "a": 20, "e": 15, "n": 5} // percent
	for line, pct := range want {
		if got := 100 * count[line] / len(lines); got != pct {
			t.Errorf("%s: %d%% of the mix, want %d%%", line, got, pct)
		}
	}
}
