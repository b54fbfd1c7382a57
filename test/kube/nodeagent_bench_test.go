package kube_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshdns/meshdns/internal/testutil"
)

// The node-agent benchmarks (BENCHMARKS.md, "Node agent"). Not part of the test suite:
//
//	go test -v -run '^$' -bench NodeAgent -benchtime 1x -timeout 90m ./test/kube
//
// (-v: the summary is longer than the 10 lines a benchmark's log is cut to without it; one
// progress line per measurement goes to stderr as it happens.)
//
// Both run against one world loaded into the API server once per process: Services in
// namespaces ns-0..ns-3 (svc-N in ns-(N%4), each with an EndpointSlice of one ready endpoint),
// 110 pods (the kubelet's default maximum) on node node-1 with loopback addresses
// 127.0.1.1-127.0.1.110, and 110 pods on each of 90 other nodes (10.244.N.x): 10,010 pods.
var (
	nbServices  = flag.Int("nodebench.services", 10_000, "node-agent benchmarks: `number` of Services (and EndpointSlices)")
	nbRounds    = flag.Int("nodebench.rounds", 5, "node-agent benchmarks: rounds; medians are reported")
	nbDuration  = flag.Duration("nodebench.duration", 4*time.Second, "node-agent dnsperf benchmark: measured dnsperf run")
	nbMemRounds = flag.Int("nodebench.memory-rounds", 3, "node-agent memory benchmark: rounds; medians are reported")
)

const (
	nbNode       = "node-1"
	nbNamespaces = 4
	nbNodePods   = 110 // the kubelet's default --max-pods
	nbOtherNodes = 90
	// nbSources is how many pods of the node send queries, one dnsperf each (4 per namespace).
	nbSources = 16
	// nbOutstanding is each dnsperf's -q: 192 queries in flight in all, as bench/ has 200.
	nbOutstanding = 12
	// nbTimeout bounds each benchmark as a whole: loading the world, every server start and
	// every dnsperf run take their time from it.
	nbTimeout = 45 * time.Minute
	// corednsVersion is the release compared against, as in bench/.
	corednsVersion = "v1.12.4"
	// corednsCacheCapacity lets CoreDNS's cache hold every name asked (its default, 9,984,
	// would evict part of them), as in bench/.
	corednsCacheCapacity = 100_000
	// nbTTL is meshdns's default --ttl, given to CoreDNS's kubernetes plugin too (its default
	// is 5 s): the same answers, cached as long.
	nbTTL = 30
	// nbWarmupLimit bounds the warm-up pass.
	nbWarmupLimit = 2 * time.Minute
)

func nbNS(k int) string        { return fmt.Sprintf("ns-%d", k%nbNamespaces) }
func nbClusterIP(i int) string { return fmt.Sprintf("10.96.%d.%d", 128+i/256, i%256) }
func nbPodIP(j int) string     { return fmt.Sprintf("127.0.1.%d", j+1) }
func nbServiceFQDN(i int) string {
	return fmt.Sprintf("svc-%d.%s.svc.cluster.local", i, nbNS(i))
}
func nbAutopathQName(i int, ns string) string {
	return fmt.Sprintf("svc-%d.%s.%s.svc.cluster.local", i, nbNS(i), ns)
}

var (
	nbWorldOnce sync.Once
	nbWorldErr  error
)

// loadNodeWorld loads the benchmarks' objects into the API server, once per process.
func loadNodeWorld(b *testing.B, ctx context.Context) {
	b.Helper()
	n := *nbServices
	if n < 1 || n > 128*256 {
		b.Fatalf("-nodebench.services %d: want 1..%d (cluster IPs 10.96.128.0-10.96.255.255)", n, 128*256)
	}
	nbWorldOnce.Do(func() {
		nbWorldErr = errors.New("loading the objects failed in an earlier benchmark")
		createNodeWorld(b, ctx, n) // fails b on an error
		nbWorldErr = nil
	})
	if nbWorldErr != nil {
		b.Fatal(nbWorldErr)
	}
}

func createNodeWorld(b *testing.B, ctx context.Context, n int) {
	c := fastClients(b)
	start := time.Now()
	for k := range nbNamespaces {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nbNS(k)}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	parallel(b, n, func(i int) error {
		ns, name := nbNS(i), fmt.Sprintf("svc-%d", i)
		svc := service(ns, name, corev1.ServiceSpec{ClusterIP: nbClusterIP(i), Ports: httpPort()})
		if _, err := c.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return err
		}
		es := endpointSlice(ns, name, endpoint(fmt.Sprintf("10.250.%d.%d", i/256, i%256), true, ""))
		_, err := c.DiscoveryV1().EndpointSlices(ns).Create(ctx, es, metav1.CreateOptions{})
		return err
	})
	pods := nbNodePods * (1 + nbOtherNodes)
	parallel(b, pods, func(p int) error {
		node, j := p/nbNodePods, p%nbNodePods
		if node == 0 {
			return createNodePod(ctx, c, nbNode, nbNS(j), fmt.Sprintf("pod-%d", j), nbPodIP(j), corev1.DNSClusterFirst)
		}
		return createNodePod(ctx, c, fmt.Sprintf("node-%d", node+1), nbNS(j), fmt.Sprintf("pod-%d-%d", node+1, j),
			fmt.Sprintf("10.244.%d.%d", node, j+1), corev1.DNSClusterFirst)
	})
	b.Logf("loaded %d Services, %d EndpointSlices, %d pods (%d on %s) in %v", n, n, pods, nbNodePods, nbNode,
		time.Since(start).Round(time.Second))
}

// nbServer is a DNS server the benchmarks start: how, and which namespace the first
// search-list query of a pod of namespace podNS names.
type nbServer struct {
	name       string
	start      func(b *testing.B, ctx context.Context) *nbRunning
	autopathNS func(podNS string) string
}

// nbRunning is a started server, answering.
type nbRunning struct {
	addr    string
	pid     int
	stop    func()
	log     fmt.Stringer
	metrics string // URL of its Prometheus metrics, "" without
}

// nbEnv is what starting the servers needs.
type nbEnv struct {
	meshdns, coredns string
	dir              string
	nodeResolvConf   string // a node's resolv.conf: no cluster search domains
	pin              []string
	// corednsMetrics gives CoreDNS the prometheus plugin (meshdns always has its metrics).
	corednsMetrics bool
}

func newNBEnv(b *testing.B, ctx context.Context, pin []string) *nbEnv {
	e := &nbEnv{meshdns: cluster.PlainBinary(b), coredns: ensureCoreDNS(b, ctx), dir: b.TempDir(), pin: pin}
	e.nodeResolvConf = filepath.Join(e.dir, "node-resolv.conf")
	if err := os.WriteFile(e.nodeResolvConf, []byte("options ndots:1\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return e
}

// meshdnsServer runs meshdns serve against the API server with args.
func (e *nbEnv) meshdnsServer(name string, autopathNS func(string) string, args ...string) nbServer {
	return nbServer{name: name, autopathNS: autopathNS, start: func(b *testing.B, ctx context.Context) *nbRunning {
		argv := append([]string{"--kubeconfig", kubeconfig, "--log-level", "info"}, args...)
		m := cluster.RunWrapped(b, e.pin, nil, e.meshdns, argv...)
		waitReadyB(b, m)
		waitAnswerB(b, m, nbServiceFQDN(*nbServices-1))
		return &nbRunning{addr: m.DNS, pid: m.Pid(), stop: m.Kill, log: m.Log, metrics: "http://" + m.Admin + "/metrics"}
	}}
}

func (e *nbEnv) nodeAgent(args ...string) nbServer {
	return e.meshdnsServer("node agent", func(podNS string) string { return podNS },
		append([]string{"--node-agent", "--node-name", nbNode, "--resolv-conf", e.nodeResolvConf}, args...)...)
}

func (e *nbEnv) sidecar(args ...string) nbServer {
	return e.meshdnsServer("sidecar", func(string) string { return nbNS(0) }, append([]string{"--namespace", nbNS(0)}, args...)...)
}

// corednsServer runs CoreDNS with the kubernetes plugin against the API server: with
// verified, `pods verified` and its per-pod autopath; else `pods disabled` and no autopath.
func (e *nbEnv) corednsServer(verified bool) nbServer {
	name, pods, autopath := "CoreDNS", "verified", "autopath @kubernetes"
	if !verified {
		name, pods, autopath = "CoreDNS pods disabled", "disabled", ""
	}
	return nbServer{name: name, autopathNS: func(podNS string) string { return podNS },
		start: func(b *testing.B, ctx context.Context) *nbRunning {
			return e.startCoreDNS(b, ctx, pods, autopath)
		}}
}

func (e *nbEnv) startCoreDNS(b *testing.B, ctx context.Context, pods, autopath string) *nbRunning {
	b.Helper()
	addr, err := testutil.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	var metrics, prometheus string
	if e.corednsMetrics {
		maddr, err := testutil.FreePort()
		if err != nil {
			b.Fatal(err)
		}
		metrics, prometheus = "http://"+maddr.String()+"/metrics", "prometheus "+maddr.String()
	}
	corefile := filepath.Join(b.TempDir(), "Corefile")
	conf := fmt.Sprintf(`cluster.local {
	bind 127.0.0.1
	%s
	kubernetes cluster.local {
		kubeconfig %s
		pods %s
		ttl %d
	}
	%s
	cache 30 {
		success %d
		denial %d
	}
}
`, prometheus, kubeconfig, pods, nbTTL, autopath, corednsCacheCapacity, corednsCacheCapacity)
	if err := os.WriteFile(corefile, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	argv := append(slices.Clone(e.pin), e.coredns, "-conf", corefile, "-dns.port", strconv.Itoa(int(addr.Port())), "-quiet")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() { cmd.Process.Kill(); <-exited }
	b.Cleanup(stop)
	last := nbServiceFQDN(*nbServices - 1)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got, err := askAt(addr.String(), "127.0.0.1", last)
		if err == nil && strings.HasPrefix(got, "NOERROR "+last+". A") {
			break
		}
		select {
		case <-exited:
			b.Fatalf("CoreDNS exited:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("CoreDNS does not answer %s: %q %v\n%s", last, got, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &nbRunning{addr: addr.String(), pid: cmd.Process.Pid, stop: stop, log: out, metrics: metrics}
}

// ensureCoreDNS returns the CoreDNS release bench/ compares against, from bench/'s cache
// ($MESHDNS_BENCH_CACHE or ~/.cache/meshdns-bench), installed with go install when missing.
func ensureCoreDNS(b *testing.B, ctx context.Context) string {
	b.Helper()
	dir := os.Getenv("MESHDNS_BENCH_CACHE")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			b.Fatal(err)
		}
		dir = filepath.Join(cache, "meshdns-bench")
	}
	bin := filepath.Join(dir, "bin", "coredns")
	if out, err := exec.CommandContext(ctx, bin, "-version").Output(); err == nil &&
		strings.Contains(string(out), "CoreDNS-"+strings.TrimPrefix(corednsVersion, "v")) {
		return bin
	}
	b.Logf("installing CoreDNS %s into %s (go install; several minutes)", corednsVersion, filepath.Dir(bin))
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/coredns/coredns@"+corednsVersion)
	cmd.Dir = dir // outside any module
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("installing CoreDNS: %v\n%s", err, out)
	}
	return bin
}

// ensureDnsperf installs the Debian package dnsperf when dnsperf is missing, as bench/ does.
func ensureDnsperf(b *testing.B, ctx context.Context) {
	b.Helper()
	if _, err := exec.LookPath("dnsperf"); err == nil {
		return
	}
	var sudo []string
	if os.Geteuid() != 0 {
		sudo = []string{"sudo"}
	}
	for _, argv := range [][]string{
		append(sudo, "apt-get", "update", "-qq"),
		append(sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "dnsperf"),
	} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("installing dnsperf: %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
}

// nbScenario is a query set: the question a pod of namespace podNS asks about service i, and
// the answer (rcode and records, as askAt prints them) every server must give.
type nbScenario struct {
	name   string
	qname  func(srv nbServer, podNS string, i int) string
	answer func(srv nbServer, podNS string, i int) string
}

var nbScenarios = []nbScenario{
	{name: "hit",
		qname: func(_ nbServer, _ string, i int) string { return nbServiceFQDN(i) },
		answer: func(_ nbServer, _ string, i int) string {
			return "NOERROR " + nbServiceFQDN(i) + ". A " + nbClusterIP(i)
		}},
	{name: "autopath",
		qname: func(srv nbServer, podNS string, i int) string { return nbAutopathQName(i, srv.autopathNS(podNS)) },
		answer: func(srv nbServer, podNS string, i int) string {
			rrs := []string{nbServiceFQDN(i) + ". A " + nbClusterIP(i),
				nbAutopathQName(i, srv.autopathNS(podNS)) + ". CNAME " + nbServiceFQDN(i) + "."}
			slices.Sort(rrs)
			return "NOERROR " + strings.Join(rrs, " | ")
		}},
}

// checkAnswers asks r, from one pod of each namespace, about three services, and fails
// unless every answer is the scenario's.
func checkAnswers(b *testing.B, srv nbServer, sc nbScenario, r *nbRunning) {
	b.Helper()
	n := *nbServices
	for j := range nbNamespaces {
		for _, i := range []int{0, n / 2, n - 1} {
			qname := sc.qname(srv, nbNS(j), i)
			got, err := askAt(r.addr, nbPodIP(j), qname)
			if want := sc.answer(srv, nbNS(j), i); err != nil || got != want {
				b.Fatalf("%s, %s, from %s: got %q (%v), want %q", srv.name, sc.name, nbPodIP(j), got, err, want)
			}
			checkTTLs(b, r.addr, nbPodIP(j), qname)
		}
	}
}

// checkTTLs fails unless every answer record of name has the TTL nbTTL (less the few seconds
// an answer may have spent in CoreDNS's cache).
func checkTTLs(b *testing.B, addr, src, name string) {
	b.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := dns.Client{Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}}
	resp, _, err := c.Exchange(q, addr)
	if err != nil {
		b.Fatal(err)
	}
	for _, rr := range resp.Answer {
		if ttl := rr.Header().Ttl; ttl > nbTTL || ttl < nbTTL-5 {
			b.Fatalf("%s from %s: TTL %d, want %d: %s", name, src, ttl, nbTTL, rr)
		}
	}
}

// queryFiles writes, for each source pod, the scenario's questions to srv about every
// service, in an order of the pod's own, and returns the files by pod.
func queryFiles(b *testing.B, dir string, srv nbServer, sc nbScenario) []string {
	files := make([]string, nbSources)
	for j := range nbSources {
		order := rand.New(rand.NewPCG(uint64(j), 14)).Perm(*nbServices)
		var buf bytes.Buffer
		for _, i := range order {
			fmt.Fprintf(&buf, "%s A\n", sc.qname(srv, nbNS(j), i))
		}
		files[j] = filepath.Join(dir, fmt.Sprintf("%s-%s-pod-%d.txt", sc.name, strings.ReplaceAll(srv.name, " ", "-"), j))
		if err := os.WriteFile(files[j], buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return files
}

// perfSample is one measurement: what the dnsperfs together saw, and the server's CPU time
// and the hypervisor's steal (percent of all CPUs) over their run.
type perfSample struct {
	completed, lost int64
	qps             float64
	cpu             time.Duration
	steal           float64
}

func (s perfSample) cpuPerQuery() time.Duration {
	if s.completed == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.completed)
}

// runDnsperfs runs one dnsperf per source pod at once, from the pod's address, on CPU 0, for
// d, or with d 0 once through its queries (within nbWarmupLimit).
func runDnsperfs(b *testing.B, ctx context.Context, r *nbRunning, files []string, d time.Duration) perfSample {
	b.Helper()
	host, port, _ := net.SplitHostPort(r.addr)
	limit := []string{"-l", strconv.FormatFloat(d.Seconds(), 'f', -1, 64)}
	if d == 0 {
		d, limit = nbWarmupLimit, []string{"-n", "1", "-l", strconv.Itoa(int(nbWarmupLimit.Seconds()))}
	}
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	cpu0, steal0 := processCPU(b, r.pid), readSteal(b)
	cmds := make([]*exec.Cmd, len(files))
	outs := make([]bytes.Buffer, len(files))
	for j, f := range files {
		argv := append([]string{"-c", "0", "dnsperf", "-a", nbPodIP(j), "-s", host, "-p", port, "-d", f,
			"-c", "1", "-q", strconv.Itoa(nbOutstanding), "-t", "2"}, limit...)
		cmds[j] = exec.CommandContext(ctx, "taskset", argv...)
		cmds[j].Stdout, cmds[j].Stderr = &outs[j], &outs[j]
		cmds[j].SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmds[j].Start(); err != nil {
			b.Fatal(err)
		}
	}
	var s perfSample
	for j, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			b.Fatalf("dnsperf from %s: %v\n%s", nbPodIP(j), err, &outs[j])
		}
		st, err := parseDnsperfStats(outs[j].String())
		if err != nil {
			b.Fatalf("dnsperf from %s: %v\n%s", nbPodIP(j), err, &outs[j])
		}
		s.completed, s.lost, s.qps = s.completed+st.completed, s.lost+st.lost, s.qps+st.qps
	}
	s.cpu = processCPU(b, r.pid) - cpu0
	s.steal = readSteal(b).since(steal0)
	return s
}

// parseDnsperfStats reads dnsperf's statistics block, and fails on any rcode but NOERROR.
func parseDnsperfStats(out string) (perfSample, error) {
	var s perfSample
	var seen int
	for line := range strings.SplitSeq(out, "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		f := strings.Fields(value)
		if len(f) == 0 {
			continue
		}
		var err error
		switch key {
		case "Queries completed":
			s.completed, err = strconv.ParseInt(f[0], 10, 64)
			seen++
		case "Queries lost":
			s.lost, err = strconv.ParseInt(f[0], 10, 64)
			seen++
		case "Queries per second":
			s.qps, err = strconv.ParseFloat(f[0], 64)
			seen++
		case "Response codes":
			if f[0] != "NOERROR" || len(f) != 3 {
				return s, fmt.Errorf("answers other than NOERROR: %s", strings.TrimSpace(value))
			}
		}
		if err != nil {
			return s, fmt.Errorf("%q: %w", line, err)
		}
	}
	if seen != 3 {
		return s, fmt.Errorf("no statistics")
	}
	return s, nil
}

// processCPU is the user + system time of a process so far.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and stime are the 12th
	// and 13th of them (fields 14 and 15 of proc(5)).
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * clockTick(b)
}

var (
	clockTickOnce sync.Once
	clockTickLen  time.Duration
)

// clockTick is the unit of /proc's CPU times (getconf CLK_TCK).
func clockTick(b *testing.B) time.Duration {
	clockTickOnce.Do(func() {
		out, err := exec.Command("getconf", "CLK_TCK").Output()
		if hz, perr := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && perr == nil && hz > 0 {
			clockTickLen = time.Second / time.Duration(hz)
		}
	})
	if clockTickLen == 0 {
		b.Fatal("getconf CLK_TCK: no clock tick")
	}
	return clockTickLen
}

// stealTicks is the steal and total time of all CPUs from /proc/stat.
type stealTicks struct{ steal, total uint64 }

func readSteal(b *testing.B) stealTicks {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n") // "cpu  user nice system idle iowait irq softirq steal ..."
	var t stealTicks
	for i, s := range strings.Fields(line)[1:9] {
		v, _ := strconv.ParseUint(s, 10, 64)
		t.total += v
		if i == 7 {
			t.steal = v
		}
	}
	return t
}

// since is the percentage of CPU time stolen between before and t.
func (t stealTicks) since(before stealTicks) float64 {
	if t.total == before.total {
		return 0
	}
	return 100 * float64(t.steal-before.steal) / float64(t.total-before.total)
}

func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkNodeAgentDNSPerf: dnsperf from 16 pods of the node (4 per namespace, each from its
// own loopback address) against a node agent, a sidecar (one context, namespace ns-0) and
// CoreDNS with the kubernetes plugin, `pods verified` and `autopath @kubernetes`, all three
// watching the same API server. Scenarios: table hits and autopath (each pod's first
// search-list query; the sidecar's pods ask with its namespace). Each measurement starts the
// server fresh on CPU 1 (taskset; dnsperf on CPU 0), checks its answers, warms it up (every
// pod asks each of its questions once) and measures one run of -nodebench.duration; the
// servers alternate within each round. Reported: medians of CPU per answered
// query (server utime + stime over the run) and QPS, and the ratios node agent / sidecar and
// CoreDNS / node agent of CPU per query.
func BenchmarkNodeAgentDNSPerf(b *testing.B) {
	ctx, cancel := context.WithTimeout(b.Context(), nbTimeout)
	defer cancel()
	ensureDnsperf(b, ctx)
	loadNodeWorld(b, ctx)
	e := newNBEnv(b, ctx, []string{"taskset", "-c", "1"})
	servers := []nbServer{e.nodeAgent(), e.sidecar(), e.corednsServer(true)}
	files := map[string][]string{}
	for _, sc := range nbScenarios {
		for _, srv := range servers {
			files[sc.name+"/"+srv.name] = queryFiles(b, e.dir, srv, sc)
		}
	}
	b.Logf("load average before measuring: %s", loadAvg())
	samples := map[string][]perfSample{}
	b.ResetTimer()
	for b.Loop() {
		for round := range *nbRounds {
			for _, sc := range nbScenarios {
				for k := range servers {
					srv := servers[(k+round)%len(servers)] // who goes first changes from round to round
					s := measurePerf(b, ctx, srv, sc, files[sc.name+"/"+srv.name])
					samples[sc.name+"/"+srv.name] = append(samples[sc.name+"/"+srv.name], s)
					progress("round %d %-8s %-10s %8.0f q/s %6.2f µs/query lost %d steal %.0f%% load %s", round+1, sc.name, srv.name,
						s.qps, micros(s.cpuPerQuery()), s.lost, s.steal, loadAvg())
				}
			}
		}
	}
	b.StopTimer()
	b.Logf("load average after measuring: %s", loadAvg())
	reportPerf(b, servers, samples)
}

func measurePerf(b *testing.B, ctx context.Context, srv nbServer, sc nbScenario, files []string) perfSample {
	b.Helper()
	r := srv.start(b, ctx)
	defer r.stop()
	checkAnswers(b, srv, sc, r)
	runDnsperfs(b, ctx, r, files, 0) // every pod asks each of its questions once
	return runDnsperfs(b, ctx, r, files, *nbDuration)
}

// progress writes one line per measurement to stderr as it happens (the benchmark's own log
// is printed at its end, and cut at 10 lines without -v).
func progress(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// reportPerf reports medians and ratios of medians, with the range of the per-round ratios
// in the log.
func reportPerf(b *testing.B, servers []nbServer, samples map[string][]perfSample) {
	unit := map[string]string{"node agent": "node-agent", "sidecar": "sidecar", "CoreDNS": "coredns"}
	for _, sc := range nbScenarios {
		cpq := map[string]float64{}
		perRound := map[string][]float64{}
		for _, srv := range servers {
			var cpus, qps []float64
			for _, s := range samples[sc.name+"/"+srv.name] {
				cpus, qps = append(cpus, micros(s.cpuPerQuery())), append(qps, s.qps)
			}
			perRound[srv.name] = cpus
			cpq[srv.name] = median(cpus)
			b.ReportMetric(cpq[srv.name], "µs/q-"+sc.name+"-"+unit[srv.name])
			b.ReportMetric(median(qps), "q/s-"+sc.name+"-"+unit[srv.name])
		}
		for _, ratio := range [][2]string{{"node agent", "sidecar"}, {"CoreDNS", "node agent"}} {
			num, den := ratio[0], ratio[1]
			var rounds []string
			for i := range perRound[num] {
				rounds = append(rounds, fmt.Sprintf("%.2f", perRound[num][i]/perRound[den][i]))
			}
			b.ReportMetric(cpq[num]/cpq[den], "x-"+sc.name+"-"+unit[num]+"/"+unit[den])
			b.Logf("%s: CPU per query %s / %s = %.2f (rounds: %s)", sc.name, num, den, cpq[num]/cpq[den], strings.Join(rounds, ", "))
		}
	}
}

// BenchmarkNodeAgentMemory: resident memory, with the world loaded, of a node agent (its 110
// pods, the kubelet's maximum, of 10,010 in the cluster), of a sidecar (one context) watching
// the same API server, of a node agent that does not watch every pod for pod names
// (--watch-pods=false), and of CoreDNS with `pods verified` (a watch of every pod, which its
// autopath needs) and with `pods disabled`. In each round the five are started one after the
// other, each waited for until it answers (the node agent: a bare name from the node's last
// pod; CoreDNS: autopath from it), then left idle for nbSettle together before their VmRSS
// and Go heap (go_memstats_heap_alloc_bytes: about the live heap, read after an idle forced
// collection; CoreDNS with the prometheus plugin for it) are read. Medians over the rounds.
func BenchmarkNodeAgentMemory(b *testing.B) {
	ctx, cancel := context.WithTimeout(b.Context(), nbTimeout)
	defer cancel()
	loadNodeWorld(b, ctx)
	e := newNBEnv(b, ctx, nil)
	e.corednsMetrics = true
	servers := []nbServer{e.nodeAgent(), e.sidecar(), e.nodeAgent("--watch-pods=false"), e.corednsServer(true), e.corednsServer(false)}
	servers[2].name = "node agent --watch-pods=false"
	unit := []string{"node-agent", "sidecar", "node-agent-no-pod-names", "coredns-pods-verified", "coredns-pods-disabled"}
	rss, heap := make([][]float64, len(servers)), make([][]float64, len(servers))
	b.Logf("load average before measuring: %s", loadAvg())
	b.ResetTimer()
	for b.Loop() {
		for range *nbMemRounds {
			running := make([]*nbRunning, len(servers))
			for k, srv := range servers {
				running[k] = startAnswering(b, ctx, srv)
			}
			time.Sleep(nbSettle)
			for k, r := range running {
				rss[k] = append(rss[k], rssBytes(b, r.pid))
				heap[k] = append(heap[k], promValue(b, r.metrics, "go_memstats_heap_alloc_bytes"))
				r.stop()
				progress("%-30s RSS %.1f MiB heap %.1f MiB load %s", servers[k].name, rss[k][len(rss[k])-1]/(1<<20),
					heap[k][len(heap[k])-1]/(1<<20), loadAvg())
			}
		}
	}
	b.StopTimer()
	b.Logf("load average after measuring: %s", loadAvg())
	mib, heapMiB := make([]float64, len(servers)), make([]float64, len(servers))
	for k, srv := range servers {
		mib[k], heapMiB[k] = median(rss[k])/(1<<20), median(heap[k])/(1<<20)
		b.ReportMetric(mib[k], "MiB-RSS-"+unit[k])
		b.ReportMetric(heapMiB[k], "MiB-heap-"+unit[k])
		b.Logf("%-30s RSS %.1f MiB (rounds: %s), heap %.1f MiB (rounds: %s)", srv.name, mib[k], formatMiB(rss[k]),
			heapMiB[k], formatMiB(heap[k]))
	}
	b.ReportMetric(mib[0]/mib[1], "x-RSS-node-agent/sidecar")
	b.ReportMetric(mib[3]/mib[0], "x-RSS-coredns-pods-verified/node-agent")
	b.ReportMetric(heapMiB[0]/heapMiB[1], "x-heap-node-agent/sidecar")
	b.ReportMetric(heapMiB[3]/heapMiB[0], "x-heap-coredns-pods-verified/node-agent")
}

// promValue reads the sample of an unlabelled metric from a Prometheus endpoint.
func promValue(b *testing.B, url, name string) float64 {
	b.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("%s %s: %v", url, line, err)
			}
			return f
		}
	}
	b.Fatalf("%s: no %s", url, name)
	return 0
}

// nbSettle is how long the servers idle before their memory is read: past the Go runtime's
// forced collection (every 2 minutes without one), so that each has collected since the
// garbage of decoding its first lists, and its allocated heap is about its live heap. (RSS
// still depends on how much of the freed memory the runtime has returned to the kernel.)
const nbSettle = 150 * time.Second

func formatMiB(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf("%.1f", x/(1<<20)))
	}
	return strings.Join(s, ", ")
}

// startAnswering starts srv and waits until it answers as a server of the node's pods should.
func startAnswering(b *testing.B, ctx context.Context, srv nbServer) *nbRunning {
	b.Helper()
	r := srv.start(b, ctx)
	last := nbNodePods - 1
	switch {
	case strings.HasPrefix(srv.name, "node agent"):
		// A bare name from the node's last pod: its view is there.
		i := last % nbNamespaces // svc-i is in the pod's namespace
		want := fmt.Sprintf("NOERROR svc-%d. CNAME %s. | %s. A %s", i, nbServiceFQDN(i), nbServiceFQDN(i), nbClusterIP(i))
		waitAnswerFrom(b, r.addr, nbPodIP(last), fmt.Sprintf("svc-%d", i), want)
		if want := fmt.Sprintf("pods=%d", nbNodePods); !strings.Contains(r.log.String(), want) {
			b.Fatalf("%s: no %q in the log:\n%s", srv.name, want, r.log)
		}
	case srv.name == "CoreDNS":
		sc := nbScenarios[1] // autopath: the pod is known
		waitAnswerFrom(b, r.addr, nbPodIP(last), sc.qname(srv, nbNS(last), 0), sc.answer(srv, nbNS(last), 0))
	}
	return r
}

func waitAnswerFrom(b *testing.B, addr, src, name, want string) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := askAt(addr, src, name)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s from %s: got %q (%v), want %q", name, src, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
