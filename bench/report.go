package main

import (
	"fmt"
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
	results   map[key][]sample
	answers   answers
}

func (r report) markdown() string {
	var b strings.Builder
	r.writeHeader(&b)
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
		"(`-c %d -q %d -t %d -v`); medians of %d rounds, servers alternating within each round. "+
		"CPU per query is the server's user+system time (/proc/PID/stat) over the dnsperf run "+
		"divided by the queries answered.\n\n", r.cfg.warmup, r.cfg.duration, r.cfg.clients,
		r.cfg.outstanding, int(dnsperfTimeout.Seconds()), r.cfg.rounds)
}

func (r report) writeRatios(b *strings.Builder) {
	a, c := r.servers[0], r.servers[1]
	fmt.Fprintf(b, "## Ratios %s/%s (medians)\n\n", a, c)
	fmt.Fprintf(b, "| mode | scenario | QPS %s | QPS %s | QPS ratio | CPU/query %s | CPU/query %s | "+
		"CPU ratio %s/%s | p99 %s | p99 %s |\n", a, c, a, c, c, a, a, c)
	fmt.Fprintf(b, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, m := range r.modes {
		for _, sc := range r.scenarios {
			sa, sc2 := r.results[key{m.name, sc.name, a}], r.results[key{m.name, sc.name, c}]
			if len(sa) == 0 || len(sc2) == 0 {
				continue
			}
			qa, qc := median(sa, qps), median(sc2, qps)
			ca, cc := median(sa, cpuMicros), median(sc2, cpuMicros)
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %.2f µs | %.2f µs | %s | %s | %s |\n",
				m.name, r.scenarioLabel(sc, sa), fmtQPS(qa), fmtQPS(qc), ratio(qa, qc), ca, cc, ratio(cc, ca),
				fmtLatency(medianDuration(sa, p99)), fmtLatency(medianDuration(sc2, p99)))
		}
	}
	b.WriteString("\n")
}

func (r report) writeDetails(b *strings.Builder, m mode) {
	where := "server and dnsperf on any CPU"
	if m.serverCPUs != "" {
		where = fmt.Sprintf("server on CPU %s, dnsperf on CPU %s (taskset)", m.serverCPUs, m.loadCPUs)
	}
	fmt.Fprintf(b, "## Details, %s: %s\n\n", m.name, where)
	b.WriteString("| scenario | server | QPS | avg latency | p99 latency | lost (all rounds) | CPU/query | " +
		"server CPU | dnsperf CPU | RSS after |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, sc := range r.scenarios {
		for _, srv := range r.servers {
			s := r.results[key{m.name, sc.name, srv}]
			if len(s) == 0 {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.2f µs | %.0f%% | %.0f%% | %.1f MiB |\n",
				r.scenarioLabel(sc, s), srv, fmtQPS(median(s, qps)), fmtLatency(medianDuration(s, avgLatency)),
				fmtLatency(medianDuration(s, p99)), lostSummary(s), median(s, cpuMicros),
				median(s, serverLoad), median(s, dnsperfLoad), median(s, rssMiB))
		}
	}
	b.WriteString("\n")
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
func serverLoad(s sample) float64  { return 100 * s.serverCPU.Seconds() / s.runTime.Seconds() }
func dnsperfLoad(s sample) float64 { return 100 * s.dnsperfCPU.Seconds() / s.runTime.Seconds() }
func rssMiB(s sample) float64      { return float64(s.rss) / (1 << 20) }

func medianDuration(s []sample, f func(sample) float64) time.Duration {
	return time.Duration(median(s, f) * float64(time.Second))
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
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", micros(d))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
