package controller_test

// The agent's memory against a Kubernetes watcher's, for the same objects, each measured in a
// process of its own (the test binary started again) after a GC: the agent holding what it
// received from a controller and the table built from it, and the records a Kubernetes
// source's informers keep (client-go's store of the source's records) with the table built
// from them. See BENCHMARKS.md, "Controller and agents".

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/meshdns/meshdns/internal/agent"
	"github.com/meshdns/meshdns/internal/controller"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/testutil"
)

var (
	memoryMode     = flag.String("memory.mode", "", "run as a BenchmarkAgentMemory process: agent, kube or idle (internal)")
	memoryAddr     = flag.String("memory.addr", "", "memory process: the controller's address (internal)")
	memoryServices = flag.Int("memory.services", 0, "memory process: Services (and EndpointSlices) (internal)")
)

// memoryFigures are what a memory process reports.
type memoryFigures struct {
	HeapBytes uint64 // live heap after GC
	// SourceHeapBytes is the live heap before the table was built: what the agent received,
	// or the informers' stores.
	SourceHeapBytes uint64
	RSSBytes        int64 // after GC and returning freed memory to the OS
	// AnonBytes is the anonymous part of RSSBytes (RssAnon): the process's own memory, without
	// the pages of its binary, which processes running the same file share.
	AnonBytes int64
	Names     int
	Err       string
}

// tableOptions are serve's for a cluster source (agent or Kubernetes).
var tableOptions = table.Options{Zone: "cluster.local", TTL: 30 * time.Second, NoPodRecords: true, StatusFirst: true}

// runMemoryProcess holds what its mode holds, then prints its memory and waits for stdin to
// close (the parent reads the figures first).
func runMemoryProcess() int {
	var keep []any
	var names int
	var sourceHeap uint64
	var err error
	switch *memoryMode {
	case "agent":
		keep, names, sourceHeap, err = holdAgent(*memoryAddr)
	case "kube":
		keep, names, sourceHeap = holdKube(*memoryServices)
	case "idle":
	default:
		err = fmt.Errorf("unknown -memory.mode %q", *memoryMode)
	}
	fig := memoryFigures{Names: names, SourceHeapBytes: sourceHeap}
	if err != nil {
		fig.Err = err.Error()
	}
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fig.HeapBytes, fig.RSSBytes, fig.AnonBytes = ms.HeapAlloc, vmRSS(os.Getpid()), procStatus(os.Getpid(), "RssAnon")
	b, _ := json.Marshal(fig)
	fmt.Println(string(b))
	_, _ = os.Stdin.Read(make([]byte, 1))
	runtime.KeepAlive(keep)
	return 0
}

// holdAgent is `serve --controller`'s steady state: the agent with what it received (and the
// snapshot it hands the builder, which it keeps until the next change) and the table.
func holdAgent(addr string) ([]any, int, uint64, error) {
	a, err := agent.New(agent.Options{Addrs: []string{addr}, Namespace: "ns-0", NodeID: "memory"})
	if err != nil {
		return nil, 0, 0, err
	}
	a.Start(context.Background())
	for deadline := time.Now().Add(10 * time.Minute); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		synced := a.WaitSynced(ctx)
		cancel()
		if synced {
			break
		}
		// A response the agent cannot take is refused again on every reconnection.
		if st := a.Status(); time.Now().After(deadline) || slices.ContainsFunc(st, func(s string) bool {
			return strings.Contains(s, "ResourceExhausted")
		}) {
			return nil, 0, 0, fmt.Errorf("the agent did not sync: %q", st)
		}
	}
	snap := a.Snapshot()
	source := liveHeap()
	t, err := table.Build(snap, tableOptions)
	if err != nil {
		return nil, 0, 0, err
	}
	return []any{a, t}, t.Len(), source, nil
}

// kubeRecord is what the Kubernetes source's informers keep per object: a record with the
// object's key fields and its model value (internal/source/kube's record).
type kubeRecord struct {
	metav1.ObjectMeta
	value any
}

// holdKube is `serve --kubeconfig`'s steady state: informer stores of records, and the table
// built from a snapshot of them (the snapshot is dropped once the table is built).
func holdKube(n int) ([]any, int, uint64) {
	snap := fanoutSnapshot(n)
	var stores []cache.Store
	add := func(ns, name string, v any) {
		store := stores[len(stores)-1]
		_ = store.Add(&kubeRecord{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1234567"}, value: v})
	}
	stores = append(stores, cache.NewStore(cache.MetaNamespaceKeyFunc))
	for _, ns := range snap.Namespaces {
		add("", ns.Name, ns)
	}
	stores = append(stores, cache.NewStore(cache.MetaNamespaceKeyFunc))
	for _, s := range snap.Services {
		add(s.Namespace, s.Name, s)
	}
	stores = append(stores, cache.NewStore(cache.MetaNamespaceKeyFunc))
	for _, s := range snap.EndpointSlices {
		add(s.Namespace, s.Name, s)
	}
	source := liveHeap()
	t, _ := table.Build(kubeSnapshot(stores), tableOptions)
	return []any{stores, t}, t.Len(), source
}

// liveHeap is the heap in use after a GC.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// kubeSnapshot is the Kubernetes source's Snapshot: every record, sorted per kind.
func kubeSnapshot(stores []cache.Store) model.Snapshot {
	var snap model.Snapshot
	for _, st := range stores {
		for _, o := range st.List() {
			switch v := o.(*kubeRecord).value.(type) {
			case model.Namespace:
				snap.Namespaces = append(snap.Namespaces, v)
			case model.Service:
				snap.Services = append(snap.Services, v)
			case model.EndpointSlice:
				snap.EndpointSlices = append(snap.EndpointSlices, v)
			}
		}
	}
	byName := func(a, b model.Meta) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	}
	slices.SortFunc(snap.Namespaces, func(a, b model.Namespace) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(snap.Services, func(a, b model.Service) int { return byName(a.Meta, b.Meta) })
	slices.SortFunc(snap.EndpointSlices, func(a, b model.EndpointSlice) int { return byName(a.Meta, b.Meta) })
	return snap
}

// child starts this test binary again with args (a process of its own, killed with the
// test's), its standard input and output piped to the test.
func child(tb testing.TB, args ...string) (*exec.Cmd, io.WriteCloser, io.Reader) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return cmd, in, out
}

// measureMemory runs a memory process and returns its figures.
func measureMemory(tb testing.TB, args ...string) memoryFigures {
	tb.Helper()
	cmd, in, out := child(tb, args...)
	defer func() { _ = in.Close(); _ = cmd.Wait() }()
	var fig memoryFigures
	if err := json.NewDecoder(out).Decode(&fig); err != nil {
		tb.Fatalf("memory process %v: %v", args, err)
	}
	if fig.Err != "" {
		tb.Fatalf("memory process %v: %s", args, fig.Err)
	}
	return fig
}

// serveMemSource serves src from a controller in this process, on a loopback port.
func serveMemSource(tb testing.TB, src *memSource) string {
	tb.Helper()
	ctrl := controller.New(controller.Options{Source: src, Debounce: time.Millisecond})
	s := grpc.NewServer()
	ctrl.Register(s)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go ctrl.Run(ctx)
	go func() { _ = s.Serve(l) }()
	tb.Cleanup(func() { cancel(); s.Stop() })
	for !ctrl.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	return l.Addr().String()
}

// TestAgentMemoryProcesses runs the memory benchmark's processes on 200 Services: the agent
// builds the table the Kubernetes watcher builds from the same objects.
func TestAgentMemoryProcesses(t *testing.T) {
	const n = 200
	addr := serveMemSource(t, newMemSource(fanoutSnapshot(n)))
	ag := measureMemory(t, "-memory.mode=agent", "-memory.addr="+addr)
	kube := measureMemory(t, "-memory.mode=kube", "-memory.services="+strconv.Itoa(n))
	if ag.Names == 0 || ag.Names != kube.Names {
		t.Errorf("the agent's table has %d names, the Kubernetes watcher's %d", ag.Names, kube.Names)
	}
	t.Logf("agent %+v, kube %+v", ag, kube)
}

// BenchmarkAgentMemory reports the live heap and resident memory of an agent holding 10k and
// 100k Services (and as many EndpointSlices) received from a controller, and of a Kubernetes
// watcher's stores and table for the same objects, each in a fresh process, and of an idle
// process (the test binary's own share). Not part of the test suite:
//
//	go test -run '^$' -bench AgentMemory -benchtime 1x -timeout 30m ./internal/controller
func BenchmarkAgentMemory(b *testing.B) {
	idle := measureMemory(b, "-memory.mode=idle")
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk services", n/1000), func(b *testing.B) {
			addr := serveMemSource(b, newMemSource(fanoutSnapshot(n)))
			var ag, kube memoryFigures
			for b.Loop() {
				ag = measureMemory(b, "-memory.mode=agent", "-memory.addr="+addr)
				kube = measureMemory(b, "-memory.mode=kube", "-memory.services="+strconv.Itoa(n))
			}
			mib := func(v float64) float64 { return v / (1 << 20) }
			b.ReportMetric(mib(float64(ag.HeapBytes)), "agent-heap-MiB")
			b.ReportMetric(mib(float64(ag.SourceHeapBytes)), "agent-source-MiB")
			b.ReportMetric(mib(float64(kube.SourceHeapBytes)), "kube-source-MiB")
			b.ReportMetric(mib(float64(ag.RSSBytes)), "agent-RSS-MiB")
			b.ReportMetric(mib(float64(ag.AnonBytes)), "agent-anon-MiB")
			b.ReportMetric(mib(float64(kube.HeapBytes)), "kube-heap-MiB")
			b.ReportMetric(mib(float64(kube.RSSBytes)), "kube-RSS-MiB")
			b.ReportMetric(float64(ag.Names), "names")
			b.Logf("idle process: heap %.1f MiB, RSS %.1f MiB (anonymous %.1f); agent %+v; kube %+v",
				mib(float64(idle.HeapBytes)), mib(float64(idle.RSSBytes)), mib(float64(idle.AnonBytes)), ag, kube)
		})
	}
}

// processFigures are what /proc says of a running meshdns, what its metrics say of its heap,
// and what its memory cgroup says (0 without one).
type processFigures struct {
	RSS, Anon, File int64 // VmRSS, RssAnon, RssFile
	HeapInuse       float64
	Names           float64
	// WorkingSet is what the kubelet reports as a container's memory (cAdvisor's working set,
	// the figure evictions go by): the cgroup's usage less its inactive file pages. Usage
	// counts the file pages charged to the cgroup too.
	WorkingSet, Usage int64
}

// BenchmarkAgentProcessMemory reports the resident memory of `meshdns serve --controller`,
// the product's binary with the runtime's default settings, holding 10k Services, 100k names
// (16,667 Services) and 100k Services from a controller in this process: once synced, and
// after 10 changes (each a rebuild of the table), each time 10 s after the last change so that
// the runtime can return what it freed. It measures both builds as scripts/image.sh builds
// them (static, -trimpath, -s -w): the full one (/meshdns) and the agents' (-tags nokube,
// /meshdns-agent).
//
// Where this machine lets it make a memory cgroup (v1), the agent runs in one of its own, as a
// container does, and the benchmark reports the cgroup's working set too. A cgroup is charged
// for the file pages it brings into the page cache: the pages of the binary are charged to the
// first agent of an image on a node, and each further agent finds them there. The benchmark
// reads the binary before each agent starts, so that its figures are a further agent's, and
// the "first agent" case evicts the binary from the page cache instead. Not part of the test
// suite:
//
//	go test -run '^$' -bench AgentProcessMemory -benchtime 1x -timeout 60m ./internal/controller
func BenchmarkAgentProcessMemory(b *testing.B) {
	for _, build := range []struct{ name, tags string }{{"meshdns", ""}, {"meshdns-agent", "nokube"}} {
		bin := filepath.Join(b.TempDir(), build.name)
		cmd := exec.Command("go", "build", "-tags", build.tags, "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/meshdns/meshdns/cmd/meshdns")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
		for _, size := range []struct {
			name     string
			services int
			first    bool
		}{{"10k services", 10_000, false}, {"100k names", 16_667, false}, {"100k names, first agent", 16_667, true},
			{"100k services", 100_000, false}} {
			b.Run(build.name+"/"+size.name, func(b *testing.B) {
				src := newMemSource(fanoutSnapshot(size.services))
				addr := serveMemSource(b, src)
				var synced, changed processFigures
				for b.Loop() {
					pageCache(b, bin, !size.first)
					synced, changed = measureAgentProcess(b, bin, addr, src, size.services)
				}
				mib := func(v int64) float64 { return float64(v) / (1 << 20) }
				b.ReportMetric(mib(synced.RSS), "synced-RSS-MiB")
				b.ReportMetric(mib(synced.Anon), "synced-anon-MiB")
				b.ReportMetric(mib(changed.RSS), "changed-RSS-MiB")
				b.ReportMetric(mib(changed.Anon), "changed-anon-MiB")
				b.ReportMetric(mib(changed.File), "changed-file-MiB")
				b.ReportMetric(changed.HeapInuse/(1<<20), "changed-heap-inuse-MiB")
				b.ReportMetric(changed.Names, "names")
				if changed.WorkingSet > 0 {
					b.ReportMetric(mib(synced.WorkingSet), "synced-ws-MiB")
					b.ReportMetric(mib(changed.WorkingSet), "changed-ws-MiB")
					b.ReportMetric(mib(changed.Usage), "changed-usage-MiB")
				}
			})
		}
	}
}

// measureAgentProcess runs an agent of namespace ns-0 against addr and returns its figures
// once synced and after 10 changes to src.
func measureAgentProcess(tb testing.TB, bin, addr string, src *memSource, services int) (synced, changed processFigures) {
	tb.Helper()
	dnsAddr, err := testutil.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	admin, err := testutil.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	args := []string{bin, "serve", "--controller", addr, "--namespace", "ns-0", "--listen", dnsAddr.String(),
		"--admin", admin.String(), "--upstream", "127.0.0.1"}
	cg := memoryCgroup(tb)
	if cg != "" {
		// The shell joins the cgroup, then becomes meshdns: every page meshdns touches is the
		// cgroup's.
		args = append([]string{"/bin/sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	metric := func(name string) float64 {
		resp, err := http.Get("http://" + admin.String() + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for line := range strings.Lines(string(body)) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return f
			}
		}
		return -1
	}
	// waitGeneration waits until the table's generation has passed gen and returns it.
	waitGeneration := func(gen float64) float64 {
		for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if g := metric("meshdns_table_generation"); g > gen && metric("meshdns_table_entries") > float64(services) {
				return g
			}
		}
		tb.Fatalf("the agent did not build a table of %d Services", services)
		return 0
	}
	figures := func() processFigures {
		time.Sleep(10 * time.Second)
		pid := cmd.Process.Pid
		fig := processFigures{RSS: vmRSS(pid), Anon: procStatus(pid, "RssAnon"), File: procStatus(pid, "RssFile"),
			HeapInuse: metric("go_memstats_heap_inuse_bytes"), Names: metric("meshdns_table_entries"),
		}
		fig.Usage, fig.WorkingSet = workingSet(cg)
		return fig
	}
	gen := waitGeneration(0)
	synced = figures()
	for i := range 10 {
		k := fanoutChanged(i, services)
		src.set(func(s *model.Snapshot) {
			svcs := slices.Clone(s.Services)
			svcs[k].Ports = []model.Port{{Name: "http", Protocol: "TCP", Number: uint16(fanoutPort(i))}}
			s.Services = svcs
		})
		gen = waitGeneration(gen)
	}
	return synced, figures()
}

// memoryCgroup makes a cgroup v1 memory cgroup for one process, removed at the end of the test
// (after the process); "" when this machine offers none.
func memoryCgroup(tb testing.TB) string {
	dir := fmt.Sprintf("/sys/fs/cgroup/memory/meshdns-bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Logf("no memory cgroup (%v): working sets left out", err)
		return ""
	}
	tb.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			tb.Logf("memory cgroup: %v", err)
		}
	})
	return dir
}

// workingSet returns the usage of the memory cgroup dir and its working set, as cAdvisor
// computes it for cgroup v1: usage_in_bytes less total_inactive_file; 0 without a cgroup.
func workingSet(dir string) (usage, ws int64) {
	if dir == "" {
		return 0, 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		return 0, 0
	}
	usage, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	stat, _ := os.ReadFile(filepath.Join(dir, "memory.stat"))
	for line := range strings.Lines(string(stat)) {
		if v, ok := strings.CutPrefix(line, "total_inactive_file "); ok {
			inactive, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return usage, max(usage-inactive, 0)
		}
	}
	return usage, usage
}

// pageCache brings the file bin into the page cache (charged to this process's cgroup), or
// evicts it from there, so that the next agent is charged for the pages it reads.
func pageCache(tb testing.TB, bin string, cached bool) {
	tb.Helper()
	f, err := os.Open(bin)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if cached {
		if _, err := io.Copy(io.Discard, f); err != nil {
			tb.Fatal(err)
		}
		return
	}
	if err := f.Sync(); err != nil { // dirty pages are not dropped
		tb.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		tb.Fatal(err)
	}
}
