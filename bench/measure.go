package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
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
}

var allScenarios = []scenario{
	{name: "hit", queries: setHit, about: "A of svc-N.ns-K.svc.cluster.local (10,000 ClusterIP services)"},
	{name: "autopath", queries: setAutopath, about: "A of svc-N.ns-K.bench.svc.cluster.local: the first search-list query of a client in namespace bench"},
	{name: "external", queries: setExternal, primeCache: true, about: "A of ext-N.example.com (300 names), answered from each server's warm cache of the dnsmasq upstream"},
	{name: "nxdomain", queries: setNXDomain, about: "A of nx-N.ns-K.svc.cluster.local (10,000 names that do not exist)"},
	{name: "mix", queries: setMix, primeCache: true, about: "60% hit, 20% autopath, 15% external, 5% nxdomain"},
	{name: "latency", queries: setHit, fixedRate: true, about: "the hit queries at a fixed rate: half of meshdns's median hit QPS in the same mode (dnsperf -Q)"},
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

// sample is one measurement: dnsperf's view plus the server's CPU time over the run and its
// RSS after it.
type sample struct {
	loadResult
	rate      int // dnsperf -Q, 0 for full speed
	serverCPU time.Duration
	rss       int64
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

// measure starts srv fresh, primes its cache with the upstream's names if sc needs them, warms it up with the
// scenario's queries at full speed, and measures one dnsperf run.
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
	before, err := cpuTime(r.pid(), b.clockTick)
	if err != nil {
		return sample{}, err
	}
	res, err := runDnsperf(ctx, l, b.outPath())
	if err != nil {
		return sample{}, r.failure(err)
	}
	after, err := cpuTime(r.pid(), b.clockTick)
	if err != nil {
		return sample{}, r.failure(err)
	}
	rss, err := rssBytes(r.pid())
	if err != nil {
		return sample{}, r.failure(err)
	}
	return sample{loadResult: res, rate: rate, serverCPU: after - before, rss: rss}, nil
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
	for round := 1; round <= b.cfg.rounds; round++ {
		for _, srv := range b.servers {
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
	peak := results[key{m.name, "hit", "meshdns"}]
	if len(peak) == 0 {
		s, err := b.measure(ctx, b.servers[0], allScenarios[0], m, 0)
		if err != nil {
			return 0, fmt.Errorf("%s, measuring meshdns's peak for %s: %w", m.name, sc.name, err)
		}
		peak = []sample{s}
	}
	return int(median(peak, func(s sample) float64 { return s.qps }) / 2), nil
}

func (s sample) summary() string {
	return fmt.Sprintf("%8.0f q/s  %6.2f µs/q  avg %s  p99 %s  lost %d  dnsperf CPU %3.0f%%",
		s.qps, micros(s.cpuPerQuery()), fmtLatency(s.avgLatency), fmtLatency(s.p99Latency), s.lost,
		100*s.dnsperfCPU.Seconds()/s.runTime.Seconds())
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
