package kube_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// rssBytes reads VmRSS of a process.
func rssBytes(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// fastClients is a clientset without client-side rate limits, to load objects quickly.
func fastClients(b *testing.B) kubernetes.Interface {
	cfg := rest.CopyConfig(restConfig)
	cfg.QPS, cfg.Burst = 5000, 10000
	return kubernetes.NewForConfigOrDie(cfg)
}

// parallel runs f(i) for i in [0, n) on 16 workers.
func parallel(b *testing.B, n int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkScale loads 10,000 Services and 10,000 EndpointSlices (one ready endpoint each)
// into the API server, then starts meshdns on them and reports how long it takes to be ready
// (process start, informers' first lists, first table), the first table's build time, and
// the resident memory per object (RSS above that of a meshdns watching an empty namespace).
// It then runs a controller on the same namespace and an agent of it (serve --controller),
// of the full build and of the agents' (-tags nokube), and reports their resident memory next
// to the API watcher's. meshdns is built
// without the race detector here (the controller, not measured, runs the race build).
// Not part of the test suite: go test -run '^$' -bench Scale -benchtime 1x ./test/kube
func BenchmarkScale(b *testing.B) {
	const n = 10_000
	const ns = "scale"
	c := fastClients(b)
	if _, err := c.CoreV1().Namespaces().Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CoreV1().Namespaces().Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "scale-empty"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	parallel(b, n, func(i int) error {
		name := fmt.Sprintf("svc-%d", i)
		ip := fmt.Sprintf("10.96.%d.%d", 64+i/256, i%256)
		svc := service(ns, name, corev1.ServiceSpec{ClusterIP: ip, Ports: httpPort()})
		if _, err := c.CoreV1().Services(ns).Create(b.Context(), svc, metav1.CreateOptions{}); err != nil {
			return err
		}
		es := endpointSlice(ns, name, endpoint(fmt.Sprintf("10.244.%d.%d", i/256, i%256), true, ""))
		_, err := c.DiscoveryV1().EndpointSlices(ns).Create(b.Context(), es, metav1.CreateOptions{})
		return err
	})
	b.Logf("created %d services and %d endpoint slices in %v", n, n, time.Since(start).Round(time.Millisecond))

	bin, agentBin := cluster.PlainBinary(b), cluster.PlainBinary(b, "nokube")
	b.ResetTimer()
	for b.Loop() {
		empty := cluster.Run(b, bin, "--kubeconfig", kubeconfig, "--namespaces", "scale-empty")
		t0 := time.Now()
		m := cluster.Run(b, bin, "--kubeconfig", kubeconfig, "--namespaces", ns)
		waitReadyB(b, m)
		ready := time.Since(t0)
		waitAnswerB(b, m, fmt.Sprintf("svc-%d.scale.svc.cluster.local", n-1))
		waitReadyB(b, empty)
		time.Sleep(settle)
		base, full := rssBytes(b, empty.Pid()), rssBytes(b, m.Pid())
		b.ReportMetric(ready.Seconds(), "s-to-ready")
		sum := metricB(b, m, "meshdns_table_build_duration_seconds_sum")
		count := metricB(b, m, "meshdns_table_build_duration_seconds_count")
		b.ReportMetric(1000*sum/count, "ms/build")
		b.ReportMetric(metricB(b, m, "meshdns_table_entries"), "names")
		b.ReportMetric(full/(1<<20), "MiB-RSS")
		b.ReportMetric(base/(1<<20), "MiB-RSS-empty")
		b.ReportMetric((full-base)/(2*n), "B/object")
		m.Kill()
		empty.Kill()
		b.ReportMetric(agentRSS(b, bin, ns, fmt.Sprintf("svc-%d.scale.svc.cluster.local", n-1))/(1<<20), "MiB-RSS-agent")
		b.ReportMetric(agentRSS(b, agentBin, ns, fmt.Sprintf("svc-%d.scale.svc.cluster.local", n-1))/(1<<20), "MiB-RSS-agent-nokube")
	}
}

// settle is how long a measurement waits after the last build: the builder returns the memory
// that builds freed a second after the last, and at most once every 10 s.
const settle = 12 * time.Second

// agentRSS runs a controller watching namespace ns and an agent of ns, and returns the
// agent's resident memory once it answers name (and settle more, as for the API watcher).
func agentRSS(b *testing.B, bin, ns, name string) float64 {
	dir := b.TempDir()
	ca, cert, key := controllerTLS(b, dir)
	xds := freeAddr(b)
	ctl := cluster.Controller(b, "--kubeconfig", kubeconfig, "--namespaces", ns, "--xds-listen", xds,
		"--tls-cert", cert, "--tls-key", key)
	waitReadyB(b, ctl)
	token := agentToken(b, ns, "agent", "meshdns", "")
	a := cluster.Run(b, bin, "--controller", xds, "--controller-ca", ca, "--token-file", token, "--namespace", ns)
	waitReadyB(b, a)
	waitAnswerB(b, a, name)
	time.Sleep(settle)
	rss := rssBytes(b, a.Pid())
	a.Kill()
	ctl.Kill()
	return rss
}

// BenchmarkUpdateToAnswer creates services one at a time in the API server and reports how
// long each takes to be answered: API write, watch delivery, meshdns's 50 ms debounce, build
// and publication (p50 and p99 over b.N). go test -run '^$' -bench UpdateToAnswer -benchtime 100x ./test/kube
func BenchmarkUpdateToAnswer(b *testing.B) {
	const ns = "latency"
	c := fastClients(b)
	if _, err := c.CoreV1().Namespaces().Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	m := cluster.Run(b, cluster.PlainBinary(b), "--kubeconfig", kubeconfig)
	waitReadyB(b, m)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("u-%d", i)
		ip := fmt.Sprintf("10.96.%d.%d", 120+i/256, i%256)
		i++
		t0 := time.Now()
		if _, err := c.CoreV1().Services(ns).Create(b.Context(), service(ns, name, corev1.ServiceSpec{ClusterIP: ip, Ports: httpPort()}), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitAnswerB(b, m, name+".latency.svc.cluster.local")
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// Waits without the harness's 30 s limit: a large first list takes longer on this machine.

func waitReadyB(b *testing.B, m *meshdns) {
	deadline := time.Now().Add(5 * time.Minute)
	for m.Readyz() != 200 {
		if time.Now().After(deadline) {
			b.Fatal("meshdns not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitAnswerB(b *testing.B, m *meshdns, name string) {
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := m.Ask(name, dns.TypeA)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not answered", name)
		}
		time.Sleep(time.Millisecond)
	}
}

func metricB(b *testing.B, m *meshdns, name string) float64 { return m.Metric(b, name) }
