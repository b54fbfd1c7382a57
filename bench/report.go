package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// report is everything the markdown report shows.
type report struct {
	cfg       config
	machine   machine
	started   time.Time
	wall      time.Duration
	modes     []mode
	scenarios []scenario
	servers   []string // meshdns first: ratios are servers[0] against servers[1]
	reference string   // measured in some scenarios, shown in the details only
	results   map[key][]sample
	answers   answers
}

func (r report) markdown() string {
	var b strings.Builder
	r.writeHeader(&b)
	b.WriteString("Scenarios:\n\n")
	for _, sc := range r.scenarios {
		fmt.Fprintf(&b, "- %s: %s\n", sc.name, sc.about)
	}
	b.WriteString("\n")
	r.writeRatios(&b)
	for _, m := range r.modes {
		r.writeDetails(&b, m)
	}
	r.writeAnswers(&b)
	return b.String()
}

func (r report) writeHeader(b *strings.Builder) {
	fmt.Fprintf(b, "# meshdns vs CoreDNS: dnsperf results\n\n")
	fmt.Fprintf(b, "Run %s, %s wall time: `go run ./bench %s`.\n\n", r.started.Format("2006-01-02 15:04 MST"),
		r.wall.Round(time.Second), r.cfg.flagLine())
	fmt.Fprintf(b, "Machine: %s, %d CPUs, %s memory, Linux %s.\n", r.machine.cpu, r.machine.cpus,
		r.machine.memory, r.machine.kernel)
	fmt.Fprintf(b, "Tools: %s.\n\n", strings.Join(r.machine.versions, "; "))
	fmt.Fprintf(b, "Each measurement: a freshly started server, %s of warm-up, then dnsperf for %s "+
		"(`-c %d -q %d -t %d -v`, plus `-Q` at a fixed rate); medians of %d rounds, servers alternating within each round. "+
		"CPU per query is the server's user+system time (/proc/PID/stat) over the dnsperf run "+
		"divided by the queries answered; server and dnsperf CPU are their CPU time over dnsperf's "+
		"lifetime (100%% = one core); CPU 0 / 1 busy and steal (time the hypervisor ran something "+
		"else, all CPUs) are from /proc/stat, softirq counted as busy; rcvbuf drops are UDP datagrams "+
		"dropped at a full socket receive buffer (/proc/net/snmp RcvbufErrors, system-wide). "+
		"p99 is over dnsperf -v's per-query latencies, a lost query counting as lost.\n\n",
		r.cfg.warmup, r.cfg.duration, r.cfg.clients, r.cfg.outstanding, int(dnsperfTimeout.Seconds()), r.cfg.rounds)
}

func (r report) writeRatios(b *strings.Builder) {
	a, c := r.servers[0], r.servers[1]
	fmt.Fprintf(b, "## Ratios (medians; in brackets the range of the per-round ratios)\n\n")
	fmt.Fprintf(b, "| mode | scenario | QPS %s | QPS %s | QPS %s/%s | CPU/query %s | CPU/query %s | "+
		"CPU/query %s/%s | p99 %s | p99 %s |\n", a, c, a, c, a, c, c, a, a, c)
	fmt.Fprintf(b, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, m := range r.modes {
		for _, sc := range r.scenarios {
			sa, sb := r.results[key{m.name, sc.name, a}], r.results[key{m.name, sc.name, c}]
			if len(sa) == 0 || len(sb) == 0 {
				continue
			}
			qa, qb := median(sa, qps), median(sb, qps)
			ca, cb := median(sa, cpuMicros), median(sb, cpuMicros)
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s %s | %.2f µs | %.2f µs | %s %s | %s | %s |\n",
				m.name, r.scenarioLabel(sc, sa), fmtQPS(qa), fmtQPS(qb), ratio(qa, qb), roundRatios(sa, sb, qps),
				ca, cb, ratio(cb, ca), roundRatios(sb, sa, cpuMicros),
				fmtLatency(medianDuration(sa, p99)), fmtLatency(medianDuration(sb, p99)))
		}
	}
	b.WriteString("\n")
}

// roundRatios is the range of f(num)/f(den) over the rounds, "(1.52–1.80)".
func roundRatios(num, den []sample, f func(sample) float64) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range min(len(num), len(den)) {
		if d := f(den[i]); d > 0 {
			lo, hi = math.Min(lo, f(num[i])/d), math.Max(hi, f(num[i])/d)
		}
	}
	if lo > hi {
		return ""
	}
	return fmt.Sprintf("(%.2f–%.2f)", lo, hi)
}

func (r report) writeDetails(b *strings.Builder, m mode) {
	where := "server and dnsperf on any CPU"
	if m.serverCPUs != "" {
		where = fmt.Sprintf("server on CPU %s, dnsperf on CPU %s (taskset)", m.serverCPUs, m.loadCPUs)
	}
	fmt.Fprintf(b, "## Details, %s: %s\n\n", m.name, where)
	b.WriteString("| scenario | server | QPS (min–max) | avg latency | p99 latency | lost (all rounds) | " +
		"rcvbuf drops (all rounds) | CPU/query | server CPU | dnsperf CPU | CPU 0 / 1 busy | steal | RSS after |\n" +
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, sc := range r.scenarios {
		for _, srv := range append(slices.Clip(r.servers), r.reference) {
			if s := r.results[key{m.name, sc.name, srv}]; len(s) > 0 {
				r.writeDetailRow(b, sc, srv, s)
			}
		}
	}
	b.WriteString("\n")
}

func (r report) writeDetailRow(b *strings.Builder, sc scenario, srv string, s []sample) {
	lo, hi := extremes(s, qps)
	var drops uint64
	for _, x := range s {
		drops += x.rcvbufDrops
	}
	fmt.Fprintf(b, "| %s | %s | %s (%s–%s) | %s | %s | %s | %d | %.2f µs | %.0f%% | %.0f%% | %.0f%% / %.0f%% | %.0f%% | %.1f MiB |\n",
		r.scenarioLabel(sc, s), srv, fmtQPS(median(s, qps)), fmtQPS(lo), fmtQPS(hi),
		fmtLatency(medianDuration(s, avgLatency)), fmtLatency(medianDuration(s, p99)), lostSummary(s), drops,
		median(s, cpuMicros), median(s, serverLoad), median(s, dnsperfLoad),
		median(s, func(x sample) float64 { return x.cpu0Busy }), median(s, func(x sample) float64 { return x.cpu1Busy }),
		median(s, func(x sample) float64 { return x.steal }), median(s, rssMiB))
}

// extremes is the smallest and largest f over the samples.
func extremes(s []sample, f func(sample) float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range s {
		lo, hi = math.Min(lo, f(x)), math.Max(hi, f(x))
	}
	return lo, hi
}

func (r report) writeAnswers(b *strings.Builder) {
	b.WriteString("## Answers (checked before measuring)\n\n| query | name |")
	for _, srv := range r.servers {
		b.WriteString(" " + srv + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(r.servers)) + "\n")
	for _, c := range answerChecks() {
		fmt.Fprintf(b, "| %s | `%s` |", c.what, c.name)
		for _, srv := range r.servers {
			fmt.Fprintf(b, " %s |", r.answers[c.name][srv])
		}
		b.WriteString("\n")
	}
}

// scenarioLabel names a scenario, with its rate when it ran at a fixed one.
func (r report) scenarioLabel(sc scenario, s []sample) string {
	if sc.fixedRate && len(s) > 0 {
		return fmt.Sprintf("%s (%s q/s)", sc.name, fmtQPS(float64(s[0].rate)))
	}
	return sc.name
}

func qps(s sample) float64         { return s.qps }
func cpuMicros(s sample) float64   { return micros(s.cpuPerQuery()) }
func p99(s sample) float64         { return s.p99Latency.Seconds() }
func avgLatency(s sample) float64  { return s.avgLatency.Seconds() }
func serverLoad(s sample) float64  { return 100 * s.serverCPU.Seconds() / s.wall.Seconds() }
func dnsperfLoad(s sample) float64 { return 100 * s.dnsperfCPU.Seconds() / s.wall.Seconds() }
func rssMiB(s sample) float64      { return float64(s.rss) / (1 << 20) }

func medianDuration(s []sample, f func(sample) float64) time.Duration {
	return time.Duration(math.Round(median(s, f) * float64(time.Second)))
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// lostSummary is the lost queries of all rounds, with their share of those sent.
func lostSummary(s []sample) string {
	var lost, sent int64
	for _, x := range s {
		lost, sent = lost+x.lost, sent+x.sent
	}
	if lost == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.3f%%)", lost, 100*float64(lost)/float64(sent))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("**%.2fx**", a/b)
}

// fmtQPS prints 123456.7 as "123,457".
func fmtQPS(q float64) string {
	s := fmt.Sprintf("%.0f", q)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func fmtLatency(d time.Duration) string {
	if d >= dnsperfTimeout {
		return "lost"
	}
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", micros(d))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
