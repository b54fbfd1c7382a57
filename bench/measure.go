package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// scenario is one workload: a query set, at full speed or at a fixed rate.
type scenario struct {
	name    string
	queries string // query set (see generate.go)
	about   string
	// fixedRate runs at half of meshdns's median peak of the hit scenario in the same mode.
	fixedRate bool
	// primeCache asks every upstream name once before the warm-up.
	primeCache bool
	// reference also measures the dnsmasq reference (it knows the hit names only).
	reference bool
}

var allScenarios = []scenario{
	{name: "hit", queries: setHit, reference: true,
		about: "A of svc-N.ns-K.svc.cluster.local, 10,000 ClusterIP services"},
	{name: "autopath", queries: setAutopath,
		about: "A of svc-N.ns-K.bench.svc.cluster.local, the first search-list query of a client in namespace bench: CNAME to svc-N.ns-K.svc.cluster.local + A"},
	{name: "external", queries: setExternal, primeCache: true,
		about: "A of ext-N.example.com, 300 names, from each server's cache of the dnsmasq upstream (primed and warm)"},
	{name: "nxdomain", queries: setNXDomain,
		about: "A of nx-N.ns-K.svc.cluster.local, 10,000 names that do not exist: NXDOMAIN + SOA"},
	{name: "mix", queries: setMix, primeCache: true,
		about: "60% hit, 20% autopath, 15% external, 5% nxdomain, shuffled"},
	{name: "latency", queries: setHit, fixedRate: true, reference: true,
		about: "the hit queries at a fixed rate, half of meshdns's median hit QPS in the same mode (dnsperf -Q)"},
}

// mode says where the servers and dnsperf run.
type mode struct {
	name       string
	serverCPUs string // taskset CPU list; "" = anywhere
	loadCPUs   string
}

var (
	pinned   = mode{name: "pinned", serverCPUs: "1", loadCPUs: "0"}
	unpinned = mode{name: "unpinned"}
)

// sample is one measurement: dnsperf's view plus, over the dnsperf run, the server's CPU
// time, how busy CPUs 0 and 1 were (pinned: dnsperf's and the server's), the hypervisor's
// steal time and the UDP receive-buffer drops; and the server's RSS after it.
type sample struct {
	loadResult
	rate               int // dnsperf -Q, 0 for full speed
	serverCPU          time.Duration
	cpu0Busy, cpu1Busy float64 // percent
	steal              float64 // percent of all CPUs' time
	rcvbufDrops        uint64  // system-wide, both directions
	rss                int64
}

// cpuPerQuery is the server's CPU time per answered query.
func (s sample) cpuPerQuery() time.Duration {
	if s.completed == 0 {
		return 0
	}
	return s.serverCPU / time.Duration(s.completed)
}

// bench holds what every measurement needs.
type bench struct {
	cfg       config
	work      *workload
	servers   []server // measured in this order within a round: meshdns, CoreDNS
	reference server   // measured after them in scenarios with reference set
	logDir    string
	clockTick time.Duration
	upstream  *running // dnsmasq, shared by both servers
}

// close stops the upstream.
func (b *bench) close() {
	if b.upstream != nil {
		b.upstream.stop()
	}
}

// measure starts srv fresh, primes its cache with the upstream's names if sc needs them, warms
// it up with the scenario's queries at full speed, and measures one dnsperf run.
func (b *bench) measure(ctx context.Context, srv server, sc scenario, m mode, rate int) (sample, error) {
	r, err := srv.start(ctx, m.serverCPUs, b.logDir)
	if err != nil {
		return sample{}, err
	}
	defer r.stop()
	if sc.primeCache {
		if err := prime(r.addr, b.work.externals); err != nil {
			return sample{}, r.failure(fmt.Errorf("priming the cache: %w", err))
		}
	}
	l := b.load(r.addr, sc, m)
	l.duration = b.cfg.warmup
	if _, err := runDnsperf(ctx, l, b.outPath()); err != nil {
		return sample{}, r.failure(fmt.Errorf("warm-up: %w", err))
	}
	l.duration, l.rate = b.cfg.duration, rate
	s, err := b.sampleRun(ctx, r, l)
	if err != nil {
		return sample{}, r.failure(err)
	}
	return s, nil
}

// sampleRun runs dnsperf between two snapshots, and reads the server's RSS after it.
func (b *bench) sampleRun(ctx context.Context, r *running, l load) (sample, error) {
	before, err := b.snapshot(r.pid())
	if err != nil {
		return sample{}, err
	}
	res, err := runDnsperf(ctx, l, b.outPath())
	if err != nil {
		return sample{}, err
	}
	after, err := b.snapshot(r.pid())
	if err != nil {
		return sample{}, err
	}
	rss, err := rssBytes(r.pid())
	if err != nil {
		return sample{}, err
	}
	return sample{loadResult: res, rate: l.rate, serverCPU: after.serverCPU - before.serverCPU,
		cpu0Busy: busyPercent(before.cpus, after.cpus, "0"), cpu1Busy: busyPercent(before.cpus, after.cpus, "1"),
		steal: stealPercent(before.cpus, after.cpus, "all"), rcvbufDrops: after.rcvbufErrors - before.rcvbufErrors,
		rss: rss}, nil
}

// snapshot is what sampleRun reads before and after dnsperf.
type snapshot struct {
	serverCPU    time.Duration
	cpus         cpuTimes
	rcvbufErrors uint64
}

func (b *bench) snapshot(pid int) (snapshot, error) {
	var s snapshot
	var err error
	if s.serverCPU, err = cpuTime(pid, b.clockTick); err != nil {
		return s, err
	}
	if s.cpus, err = readCPUTimes(); err != nil {
		return s, err
	}
	s.rcvbufErrors, err = udpRcvbufErrors()
	return s, err
}

func (b *bench) load(addr netip.AddrPort, sc scenario, m mode) load {
	return load{server: addr, queries: b.work.queries[sc.queries], clients: b.cfg.clients,
		outstanding: b.cfg.outstanding, cpus: m.loadCPUs}
}

func (b *bench) outPath() string { return filepath.Join(b.work.dir, "dnsperf.out") }

// prime asks each name once, so the measured runs find them in the cache.
func prime(addr netip.AddrPort, names []string) error {
	for _, name := range names {
		r, err := query(addr, name, time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if r.rcode != 0 || len(r.answer) == 0 {
			return fmt.Errorf("%s: %s, want NOERROR with an answer", name, r)
		}
	}
	return nil
}

// key identifies the samples of one row of the report.
type key struct{ mode, scenario, server string }

// runAll measures every scenario in every mode, alternating the servers round by round.
func (b *bench) runAll(ctx context.Context, modes []mode, scenarios []scenario) (map[key][]sample, error) {
	results := map[key][]sample{}
	for _, m := range modes {
		for _, sc := range scenarios {
			rate, err := b.rateFor(ctx, sc, m, results)
			if err != nil {
				return results, err
			}
			if err := b.runRounds(ctx, sc, m, rate, results); err != nil {
				return results, err
			}
		}
	}
	return results, nil
}

func (b *bench) runRounds(ctx context.Context, sc scenario, m mode, rate int, results map[key][]sample) error {
	servers := b.servers
	if sc.reference {
		servers = append(slices.Clip(servers), b.reference)
	}
	for round := 1; round <= b.cfg.rounds; round++ {
		for _, srv := range servers {
			s, err := b.measure(ctx, srv, sc, m, rate)
			if err != nil {
				return fmt.Errorf("%s, %s, round %d: %w", m.name, sc.name, round, err)
			}
			k := key{m.name, sc.name, srv.name}
			results[k] = append(results[k], s)
			logf("%-8s %-8s round %d/%d %-7s %s", m.name, sc.name, round, b.cfg.rounds, srv.name, s.summary())
		}
	}
	return nil
}

// rateFor is 0 (full speed) or, for a fixed-rate scenario, half of meshdns's median hit QPS in
// mode m; measured once here when the hit scenario is not part of the run.
func (b *bench) rateFor(ctx context.Context, sc scenario, m mode, results map[key][]sample) (int, error) {
	if !sc.fixedRate {
		return 0, nil
	}
	hit, meshdns := allScenarios[0], b.servers[0]
	peak := results[key{m.name, hit.name, meshdns.name}]
	if len(peak) == 0 {
		s, err := b.measure(ctx, meshdns, hit, m, 0)
		if err != nil {
			return 0, fmt.Errorf("%s, measuring meshdns's peak for %s: %w", m.name, sc.name, err)
		}
		peak = []sample{s}
	}
	return int(median(peak, qps) / 2), nil
}

func (s sample) summary() string {
	return fmt.Sprintf("%7.0f q/s %6.2f µs/q  avg %-8s p99 %-8s lost %-4d (rcvbuf drops %d)  "+
		"server %3.0f%%  dnsperf %3.0f%%  CPU0/1 busy %3.0f%%/%3.0f%%  steal %2.0f%%",
		s.qps, micros(s.cpuPerQuery()), fmtLatency(s.avgLatency), fmtLatency(s.p99Latency), s.lost,
		s.rcvbufDrops, serverLoad(s), dnsperfLoad(s), s.cpu0Busy, s.cpu1Busy, s.steal)
}

// median of f over samples (the mean of the middle two for an even count).
func median(samples []sample, f func(sample) float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	v := make([]float64, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
