// Command bench compares meshdns with CoreDNS under dnsperf on this machine.
//
//	go run ./bench [-duration 4s] [-rounds 3] [-scenarios hit,mix] [-pin=false] [-nopin=false] [-out report.md]
//
// It installs what it needs (dnsperf and dnsmasq from Debian; CoreDNS v1.12.4 with go install
// into a cache directory, reused on later runs), builds meshdns, and generates a mesh into a
// temporary directory: 10,000 ClusterIP Services, 500 headless Services with 3 endpoints each,
// 500 ServiceEntries with addresses; for CoreDNS the same A records as zone files (`file`
// plugin), `autopath` on the same search list, and `forward` to the same upstream, each with
// `cache` in front. A dnsmasq on loopback is the upstream of both for 300 external names.
//
// Scenarios (dnsperf query files): hit, autopath, external (cached), nxdomain, mix, and
// latency (the hit queries at half of meshdns's median hit QPS, dnsperf -Q). Before
// measuring, both servers are asked one name of each kind and must answer alike. Each
// measurement starts the server fresh, primes and warms it up, and runs dnsperf once; meshdns
// and CoreDNS alternate, -rounds times per scenario, first pinned (server on CPU 1, dnsperf on
// CPU 0) and then unpinned. In the hit and latency scenarios a dnsmasq serving the same names
// from a hosts file is measured too, as a reference for what the machine and dnsperf allow.
//
// Reported per scenario: median QPS, average and p99 latency (p99 from dnsperf -v's
// per-query latencies), lost queries and UDP receive-buffer drops, server CPU time per query
// (/proc/PID/stat utime+stime over the dnsperf run), server and dnsperf CPU, how busy each
// CPU was and the hypervisor's steal time (/proc/stat), RSS after the run (/proc/PID/status
// VmRSS); and the ratios meshdns/CoreDNS of QPS and CoreDNS/meshdns of CPU per query.
//
// Only loopback is used. Every process started is stopped at the end, on error and on
// Ctrl-C (and killed by the kernel should the harness die), and the whole run is bounded by
// -timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	duration, warmup     time.Duration
	rounds               int
	out                  string
	scenarios            string
	pin, nopin           bool
	cacheDir             string
	clients, outstanding int
	timeout              time.Duration
	keep                 bool
}

func parseFlags() config {
	var c config
	flag.DurationVar(&c.duration, "duration", 4*time.Second, "dnsperf run per measurement")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "warm-up run before each measurement")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds per scenario (meshdns and CoreDNS alternate)")
	flag.StringVar(&c.out, "out", "", "also write the markdown report to this file")
	flag.StringVar(&c.scenarios, "scenarios", scenarioNames(allScenarios), "comma-separated scenarios to run")
	flag.BoolVar(&c.pin, "pin", true, "measure with the server on CPU 1 and dnsperf on CPU 0")
	flag.BoolVar(&c.nopin, "nopin", true, "measure without pinning")
	flag.StringVar(&c.cacheDir, "cache", defaultCacheDir(), "where CoreDNS is installed (env MESHDNS_BENCH_CACHE)")
	flag.IntVar(&c.clients, "clients", 16, "dnsperf -c: clients (source ports)")
	flag.IntVar(&c.outstanding, "outstanding", 200, "dnsperf -q: queries outstanding")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "bound of the whole run")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (workload, logs)")
	flag.Parse()
	return c
}

// validate checks the flags and returns the modes and scenarios they select.
func (c config) validate() ([]mode, []scenario, error) {
	if c.rounds < 1 || c.duration < time.Second || c.warmup < 0 || c.clients < 1 || c.outstanding < 1 {
		return nil, nil, errors.New("-rounds, -clients and -outstanding must be at least 1, -duration at least 1s")
	}
	var modes []mode
	if c.pin {
		if runtime.NumCPU() < 2 {
			return nil, nil, errors.New("-pin needs 2 CPUs; use -pin=false")
		}
		modes = append(modes, pinned)
	}
	if c.nopin {
		modes = append(modes, unpinned)
	}
	if len(modes) == 0 {
		return nil, nil, errors.New("-pin=false -nopin=false leaves nothing to measure")
	}
	scenarios, err := selectScenarios(c.scenarios)
	return modes, scenarios, err
}

func selectScenarios(list string) ([]scenario, error) {
	var out []scenario
	for _, name := range strings.Split(list, ",") {
		i := indexScenario(strings.TrimSpace(name))
		if i < 0 {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", name, scenarioNames(allScenarios))
		}
		out = append(out, allScenarios[i])
	}
	return out, nil
}

func indexScenario(name string) int {
	for i, sc := range allScenarios {
		if sc.name == name {
			return i
		}
	}
	return -1
}

func scenarioNames(s []scenario) string {
	names := make([]string, len(s))
	for i, sc := range s {
		names[i] = sc.name
	}
	return strings.Join(names, ",")
}

// flagLine is the command line's flags, for the report.
func (c config) flagLine() string { return strings.Join(os.Args[1:], " ") }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	cfg := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		cancel()
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	started := time.Now()
	modes, scenarios, err := cfg.validate()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "meshdns-bench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	t, err := installTools(ctx, cfg, dir)
	if err != nil {
		return err
	}
	b, err := prepare(ctx, cfg, dir, t)
	defer b.close()
	if err != nil {
		return err
	}
	rep := report{cfg: cfg, machine: describeMachine(ctx, t), started: started, modes: modes,
		scenarios: scenarios, servers: []string{b.servers[0].name, b.servers[1].name}, reference: b.reference.name}
	if rep.answers, err = b.checkAnswers(ctx); err != nil {
		return err
	}
	if rep.results, err = b.runAll(ctx, modes, scenarios); err != nil {
		return err
	}
	rep.wall = time.Since(started)
	return publish(rep.markdown(), cfg.out)
}

// tools are the programs run by path.
type tools struct{ meshdns, coredns, dnsmasq string }

// installTools installs what is missing and builds meshdns into dir.
func installTools(ctx context.Context, cfg config, dir string) (tools, error) {
	var t tools
	if err := ensureDebianTools(ctx); err != nil {
		return t, err
	}
	var err error
	if t.coredns, err = ensureCoreDNS(ctx, cfg.cacheDir); err != nil {
		return t, err
	}
	if t.dnsmasq, err = lookPath("dnsmasq"); err != nil {
		return t, err
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return t, err
	}
	logf("building meshdns and generating the workload in %s", dir)
	t.meshdns, err = buildMeshdns(ctx, root, dir)
	return t, err
}

// prepare writes the workload and starts the upstream. The bench it returns must be closed,
// also with an error.
func prepare(ctx context.Context, cfg config, dir string, t tools) (*bench, error) {
	b := &bench{cfg: cfg, logDir: dir}
	var err error
	if b.work, err = generate(filepath.Join(dir, "work")); err != nil {
		return b, err
	}
	if b.clockTick, err = clockTick(ctx); err != nil {
		return b, err
	}
	if b.upstream, err = upstreamServer(t.dnsmasq, b.work).start(ctx, "", dir); err != nil {
		return b, err
	}
	corefile, err := writeCorefile(b.work, b.upstream.addr)
	if err != nil {
		return b, err
	}
	b.servers = []server{meshdnsServer(t.meshdns, b.work, b.upstream.addr), corednsServer(t.coredns, corefile)}
	b.reference = referenceServer(t.dnsmasq, b.work)
	return b, nil
}

// publish prints the report and writes it to path, if one is given.
func publish(md, path string) error {
	fmt.Print(md)
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	logf("report written to %s", path)
	return nil
}
