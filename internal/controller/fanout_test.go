package controller_test

// The fan-out benchmark: one controller, as `meshdns controller` wires it (the table builder
// in front, TLS, the production debounces), in a process of its own, fed by an in-memory
// source; many agents in this process over real gRPC on loopback. Most agents are light delta
// xDS clients (they count what they receive and keep nothing, so a thousand fit in memory);
// a few are real agent.Source instances, whose Snapshot shows the change. See BENCHMARKS.md,
// "Controller and agents".

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/meshdns/meshdns/internal/agent"
	"github.com/meshdns/meshdns/internal/builder"
	"github.com/meshdns/meshdns/internal/controller"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/xds"
)

var (
	fanoutControllerMode = flag.Bool("fanout.controller", false, "run as the fan-out benchmark's controller process (internal)")
	fanoutServices       = flag.Int("fanout.services", 10_000, "BenchmarkFanOut: Services (and as many EndpointSlices) the controller serves")
	fanoutAgents         = flag.Int("fanout.agents", 1000, "BenchmarkFanOut: agents, real ones included")
	fanoutReal           = flag.Int("fanout.real", 4, "BenchmarkFanOut: how many of the agents are agent.Source instances")
	fanoutProfile        = flag.String("fanout.cpuprofile", "", "BenchmarkFanOut: write the controller's CPU profile of the change loop to this file")
	fanoutMemProfile     = flag.String("fanout.memprofile", "", "BenchmarkFanOut: write the controller's allocation profile after the change loop to this file")
	fanoutCert           = flag.String("fanout.cert", "", "controller process: TLS certificate (internal)")
	fanoutKey            = flag.String("fanout.key", "", "controller process: TLS key (internal)")
)

// fanoutSnapshot is testutil.ServicesSnapshot(n) with what the Kubernetes source keeps of real
// objects: namespaces and creation times (of Services and EndpointSlices, no labels).
func fanoutSnapshot(n int) model.Snapshot {
	s := testutil.ServicesSnapshot(n)
	for i := range min(n, 100) {
		s.Namespaces = append(s.Namespaces, model.Namespace{Name: fmt.Sprintf("ns-%d", i)})
	}
	for i := range s.Services {
		s.Services[i].Created = created
	}
	for i := range s.EndpointSlices {
		s.EndpointSlices[i].Created = created
	}
	return s
}

// fanoutPort is the port a change gives the changed Service: a new SRV record, a new
// resource version.
func fanoutPort(change int) int { return 9000 + change%1000 }

// fanoutChanged is the Service a change changes: a different one each time.
func fanoutChanged(change, services int) int { return (change * 7919) % services }

// runFanoutController is the controller process: it serves fanoutSnapshot(-fanout.services)
// with TLS on a loopback port, prints "ready ADDR", then answers one command per line of
// stdin (change, stats, profile, stop, memprofile) until stdin closes.
func runFanoutController() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "fan-out controller:", err); return 1 }
	cert, err := tls.LoadX509KeyPair(*fanoutCert, *fanoutKey)
	if err != nil {
		return fail(err)
	}
	src := newMemSource(fanoutSnapshot(*fanoutServices))
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// As cmd/meshdns wires it: the builder reads the source's signal and passes each published
	// table on to the controller.
	built := make(chan struct{}, 1)
	b := builder.New(builder.Options{Table: table.Options{Zone: "cluster.local", TTL: 30 * time.Second,
		NoPodRecords: true, StatusFirst: true}, Snapshot: src.Snapshot, Changed: src.Changed(),
		Publish: func(*table.Table) {
			select {
			case built <- struct{}{}:
			default:
			}
		}})
	go b.Run(ctx)
	ctrl := controller.New(controller.Options{Source: src, Changed: built, Metrics: controller.NewMetrics(reg)})
	go ctrl.Run(ctx)
	srv := grpc.NewServer(append(controller.ServerOptions(),
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))...)
	ctrl.Register(srv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	for !ctrl.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("ready", l.Addr().String())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		reply, err := fanoutCommand(strings.Fields(in.Text()), src, reg)
		if err != nil {
			return fail(err)
		}
		fmt.Println(reply)
	}
	return 0
}

func fanoutCommand(cmd []string, src *memSource, reg *prometheus.Registry) (string, error) {
	switch {
	case len(cmd) == 3 && cmd[0] == "change":
		k, _ := strconv.Atoi(cmd[1])
		port, _ := strconv.Atoi(cmd[2])
		src.set(func(s *model.Snapshot) {
			// Copy on write: the builder and the controller may still read the last snapshot.
			svcs := slices.Clone(s.Services)
			svcs[k].Ports = []model.Port{{Name: "http", Protocol: "TCP", Number: uint16(port)}}
			s.Services = svcs
		})
		return "ok", nil
	case len(cmd) == 1 && cmd[0] == "stats":
		b, err := json.Marshal(readControllerStats(reg))
		return string(b), err
	case len(cmd) == 2 && cmd[0] == "profile":
		f, err := os.Create(cmd[1])
		if err != nil {
			return "", err
		}
		return "ok", pprof.StartCPUProfile(f)
	case len(cmd) == 1 && cmd[0] == "stop":
		pprof.StopCPUProfile()
		return "ok", nil
	case len(cmd) == 2 && cmd[0] == "memprofile":
		f, err := os.Create(cmd[1])
		if err != nil {
			return "", err
		}
		defer f.Close()
		return "ok", pprof.Lookup("allocs").WriteTo(f, 0)
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

// controllerStats are the controller process's counters, read between changes.
type controllerStats struct {
	CPU           time.Duration // user + system, the whole process
	Mallocs       uint64
	AllocBytes    uint64
	HeapBytes     uint64 // live heap after a GC
	RSSBytes      uint64
	SentBytes     float64 // meshdns_controller_sent_bytes_total, every type
	ResourcesSent float64
	RemovalsSent  float64
	Applies       float64 // meshdns_controller_apply_seconds count and sum
	ApplySeconds  float64
	Agents        float64
}

func readControllerStats(reg *prometheus.Registry) controllerStats {
	var st controllerStats
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	st.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.Mallocs, st.AllocBytes = ms.Mallocs, ms.TotalAlloc
	runtime.GC()
	runtime.ReadMemStats(&ms)
	st.HeapBytes = ms.HeapAlloc
	st.RSSBytes = uint64(vmRSS(os.Getpid()))
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "meshdns_controller_sent_bytes_total":
				st.SentBytes += m.GetCounter().GetValue()
			case "meshdns_controller_resources_sent_total":
				st.ResourcesSent += m.GetCounter().GetValue()
			case "meshdns_controller_removals_sent_total":
				st.RemovalsSent += m.GetCounter().GetValue()
			case "meshdns_controller_apply_seconds":
				st.Applies += float64(m.GetHistogram().GetSampleCount())
				st.ApplySeconds += m.GetHistogram().GetSampleSum()
			case "meshdns_controller_agents":
				st.Agents += m.GetGauge().GetValue()
			}
		}
	}
	return st
}

// vmRSS is a process's resident memory in bytes (0 when it cannot be read).
func vmRSS(pid int) int64 { return procStatus(pid, "VmRSS") }

// procStatus reads a memory figure (in kB there) of /proc/PID/status, in bytes; 0 when absent.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == field+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// fanoutController is the controller process as the benchmark drives it.
type fanoutController struct {
	tb     testing.TB
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	addr   string
	client *tls.Config
}

func startFanoutController(tb testing.TB, services int) *fanoutController {
	tb.Helper()
	certFile, keyFile, client := writeServerTLS(tb)
	cmd, in, out := child(tb, "-fanout.controller", "-fanout.services="+strconv.Itoa(services),
		"-fanout.cert="+certFile, "-fanout.key="+keyFile)
	c := &fanoutController{tb: tb, cmd: cmd, in: in, out: bufio.NewScanner(out), client: client}
	tb.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	ready := c.line()
	addr, ok := strings.CutPrefix(ready, "ready ")
	if !ok {
		tb.Fatalf("controller process: %q", ready)
	}
	c.addr = addr
	return c
}

func (c *fanoutController) line() string {
	c.tb.Helper()
	if !c.out.Scan() {
		c.tb.Fatalf("the controller process ended: %v", c.out.Err())
	}
	return c.out.Text()
}

// do sends one command and returns the reply.
func (c *fanoutController) do(format string, args ...any) string {
	c.tb.Helper()
	if _, err := fmt.Fprintf(c.in, format+"\n", args...); err != nil {
		c.tb.Fatalf("controller process: %v", err)
	}
	return c.line()
}

func (c *fanoutController) stats() controllerStats {
	c.tb.Helper()
	var st controllerStats
	if err := json.Unmarshal([]byte(c.do("stats")), &st); err != nil {
		c.tb.Fatal(err)
	}
	return st
}

// writeServerTLS writes a certificate for 127.0.0.1 and its key, and returns a client config
// trusting it.
func writeServerTLS(tb testing.TB) (certFile, keyFile string, client *tls.Config) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshdns-controller"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, &tls.Config{RootCAs: pool}
}

// applied is an agent having received (light) or applied (real) a changed Service.
type applied struct {
	agent int
	name  string // resource name
	at    time.Time
}

// lightAgent is a delta xDS client that subscribes to every type as agent.Source does, ACKs
// every response, counts what it receives, and keeps nothing but, when keep is set, the
// versions it holds (to reconnect with them).
type lightAgent struct {
	id        int
	namespace string
	keep      bool
	events    chan<- applied

	wire                           atomic.Int64 // bytes read from the TCP connection (TLS records)
	payload                        atomic.Int64 // encoded size of the responses
	responses, resources, removals atomic.Int64
	versions                       map[string]map[string]string // by type, then name; only with keep
	synced                         chan struct{}                // closed once every type's first response came
	stop                           func()
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// connect opens the agent's stream; it runs until stop is called.
func (a *lightAgent) connect(addr string, client *tls.Config) error {
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &a.wire}, nil
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(client)), grpc.WithContextDialer(dial),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30))) // as agent.Source: a first response holds a whole type
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		conn.Close()
		return err
	}
	a.synced = make(chan struct{})
	for i, t := range xds.Types {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: []string{"*"},
			InitialResourceVersions: orEmpty(a.versions[t])}
		if i == 0 {
			req.Node = xds.NodeOf(fmt.Sprintf("light-%d", a.id), a.namespace)
		}
		if err := st.Send(req); err != nil {
			cancel()
			conn.Close()
			return err
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.receive(st)
	}()
	a.stop = func() { cancel(); <-done; conn.Close() }
	return nil
}

// orEmpty is m, or an empty map for nil (initial_resource_versions of an agent holding none).
func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (a *lightAgent) receive(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) {
	first := map[string]bool{}
	for {
		resp, err := st.Recv()
		if err != nil {
			return
		}
		at := time.Now()
		a.responses.Add(1)
		a.payload.Add(int64(proto.Size(resp)))
		a.resources.Add(int64(len(resp.GetResources())))
		a.removals.Add(int64(len(resp.GetRemovedResources())))
		t := resp.GetTypeUrl()
		if a.keep {
			if a.versions == nil {
				a.versions = map[string]map[string]string{}
			}
			if a.versions[t] == nil {
				a.versions[t] = map[string]string{}
			}
			for _, r := range resp.GetResources() {
				a.versions[t][r.GetName()] = r.GetVersion()
			}
			for _, name := range resp.GetRemovedResources() {
				delete(a.versions[t], name)
			}
		}
		if len(first) == len(xds.Types) && t == xds.TypeService && len(resp.GetResources()) <= 8 {
			for _, r := range resp.GetResources() {
				a.events <- applied{agent: a.id, name: r.GetName(), at: at}
			}
		}
		if !first[t] {
			first[t] = true
			if len(first) == len(xds.Types) {
				close(a.synced)
			}
		}
		if err := st.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
			return
		}
	}
}

// realAgent is an agent.Source; it reports a change once its Snapshot shows the Service with
// the port the coordinator expects.
type realAgent struct {
	*agent.Source
	reg  *prometheus.Registry
	stop func()
}

// fanout is one run: the controller process and its agents.
type fanout struct {
	tb     testing.TB
	ctl    *fanoutController
	light  []*lightAgent
	real   []*realAgent
	events chan applied
	want   atomic.Pointer[expected] // the change real agents look for

	services int
	changes  int
	perAgent []time.Duration // change to applied, every agent of every change
	perAll   []time.Duration // change to applied on all agents, per change

	syncWall  time.Duration
	syncStats controllerStats // after every agent synced
	syncWire  int64
	syncPay   int64
	base      controllerStats // after every agent synced and settled
	baseLight lightTotals
}

type expected struct {
	name string // "namespace/name"
	port uint16
}

type lightTotals struct{ wire, payload, responses, resources, removals int64 }

func (f *fanout) lightTotals() lightTotals {
	var t lightTotals
	for _, a := range f.light {
		t.wire += a.wire.Load()
		t.payload += a.payload.Load()
		t.responses += a.responses.Load()
		t.resources += a.resources.Load()
		t.removals += a.removals.Load()
	}
	return t
}

// startFanout starts the controller process and connects agents to it (real ones among
// them), 32 at a time, and waits until every one has synced.
func startFanout(tb testing.TB, services, agents, real int) *fanout {
	tb.Helper()
	f := &fanout{tb: tb, services: services, events: make(chan applied, 16*agents)}
	f.ctl = startFanoutController(tb, services)
	before := f.ctl.stats()
	start := time.Now()
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for i := range agents - real {
		a := &lightAgent{id: i, namespace: fmt.Sprintf("ns-%d", i%100), keep: i == 0, events: f.events}
		f.light = append(f.light, a)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := a.connect(f.ctl.addr, f.ctl.client); err != nil {
				failed.Store(&err)
				return
			}
			select {
			case <-a.synced:
			case <-time.After(5 * time.Minute):
				err := fmt.Errorf("light agent %d did not sync", a.id)
				failed.Store(&err)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
	tb.Cleanup(func() {
		for _, a := range f.light {
			if a.stop != nil {
				a.stop()
			}
		}
	})
	for i := range real {
		f.real = append(f.real, f.startReal(agents-real+i))
	}
	f.syncWall = time.Since(start)
	f.syncStats = f.ctl.stats()
	f.syncStats.CPU -= before.CPU
	f.syncStats.Mallocs -= before.Mallocs
	tot := f.lightTotals()
	f.syncWire, f.syncPay = tot.wire, tot.payload
	time.Sleep(time.Second) // the last ACKs
	f.base, f.baseLight = f.ctl.stats(), f.lightTotals()
	return f
}

func (f *fanout) startReal(id int) *realAgent {
	f.tb.Helper()
	reg := prometheus.NewRegistry()
	ns := fmt.Sprintf("ns-%d", id%100)
	a, err := agent.New(agent.Options{Addrs: []string{f.ctl.addr}, TLS: f.ctl.client, Namespace: ns,
		NodeID: fmt.Sprintf("real-%d", id), Metrics: agent.NewMetrics(reg)})
	if err != nil {
		f.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := a.Start(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.Changed():
			}
			if w := f.want.Load(); w != nil && hasPort(a.Snapshot(), w.name, w.port) {
				f.events <- applied{agent: id, name: w.name, at: time.Now()}
			}
		}
	}()
	r := &realAgent{Source: a, reg: reg, stop: func() { cancel(); wait(); <-watched }}
	f.tb.Cleanup(r.stop)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer scancel()
	if !a.WaitSynced(sctx) {
		f.tb.Fatalf("real agent %d did not sync", id)
	}
	return r
}

func hasPort(snap model.Snapshot, name string, port uint16) bool {
	for _, s := range snap.Services {
		if s.Key() == name {
			return len(s.Ports) == 1 && s.Ports[0].Number == port
		}
	}
	return false
}

// change changes one Service and waits until every agent has it.
func (f *fanout) change(i int) {
	f.tb.Helper()
	k := fanoutChanged(i, f.services)
	want := &expected{name: fmt.Sprintf("ns-%d/svc-%d", k%100, k), port: uint16(fanoutPort(i))}
	f.want.Store(want)
	agents := len(f.light) + len(f.real)
	start := time.Now()
	f.ctl.do("change %d %d", k, want.port)
	seen := make(map[int]bool, agents)
	var last time.Duration
	timeout := time.After(2 * time.Minute)
	for len(seen) < agents {
		select {
		case e := <-f.events:
			if e.name != want.name || seen[e.agent] {
				continue
			}
			seen[e.agent] = true
			d := e.at.Sub(start)
			f.perAgent = append(f.perAgent, d)
			last = max(last, d)
		case <-timeout:
			f.tb.Fatalf("change %d: %d of %d agents have it after 2 minutes", i, len(seen), agents)
		}
	}
	f.perAll = append(f.perAll, last)
	f.changes++
}

// settle waits for the ACKs of the last change to be handled, so that the next change is a
// burst of its own and the controller's CPU time of this one is all counted.
func (f *fanout) settle() { time.Sleep(300 * time.Millisecond) }

// fanoutResult is what a run measured, per change and per agent.
type fanoutResult struct {
	Agents, Services, Changes int

	SyncWall          time.Duration
	SyncCPU           time.Duration // controller, every agent's first sync
	SyncWirePerAgent  float64
	SyncBytesPerAgent float64 // encoded responses

	WirePerAgent      float64 // per change: TLS bytes read by an agent
	PayloadPerAgent   float64 // per change: encoded responses an agent received
	SentPerAgent      float64 // per change: meshdns_controller_sent_bytes_total / agents
	ResourcesPerAgent float64 // per change
	RemovalsPerAgent  float64
	ResponsesPerAgent float64
	CPUPerChange      time.Duration // controller process
	MallocsPerChange  float64
	AllocPerChange    float64 // bytes
	ApplyMean         time.Duration
	ControllerHeap    uint64
	ControllerRSS     uint64

	AgentP50, AgentP99, AllP50, AllP99, AllMax time.Duration

	ReconnectResources, ReconnectRemovals int64 // light agent 0 reconnecting with its versions
	ReconnectBytes                        int64
	RealReconnectResources                float64 // a real agent stopped and started again
}

// finish measures the reconnections and returns the figures; call it after the changes.
func (f *fanout) finish() fanoutResult {
	f.tb.Helper()
	st, lt := f.ctl.stats(), f.lightTotals()
	agents := float64(len(f.light) + len(f.real))
	nl, n := float64(len(f.light)), float64(max(f.changes, 1))
	r := fanoutResult{Agents: len(f.light) + len(f.real), Services: f.services, Changes: f.changes,
		SyncWall: f.syncWall, SyncCPU: f.syncStats.CPU,
		SyncWirePerAgent: float64(f.syncWire) / nl, SyncBytesPerAgent: float64(f.syncPay) / nl,
		WirePerAgent:      float64(lt.wire-f.baseLight.wire) / nl / n,
		PayloadPerAgent:   float64(lt.payload-f.baseLight.payload) / nl / n,
		SentPerAgent:      (st.SentBytes - f.base.SentBytes) / agents / n,
		ResourcesPerAgent: float64(lt.resources-f.baseLight.resources) / nl / n,
		RemovalsPerAgent:  float64(lt.removals-f.baseLight.removals) / nl / n,
		ResponsesPerAgent: float64(lt.responses-f.baseLight.responses) / nl / n,
		CPUPerChange:      (st.CPU - f.base.CPU) / time.Duration(n),
		MallocsPerChange:  float64(st.Mallocs-f.base.Mallocs) / n,
		AllocPerChange:    float64(st.AllocBytes-f.base.AllocBytes) / n,
		ControllerHeap:    st.HeapBytes, ControllerRSS: st.RSSBytes,
	}
	if d := st.Applies - f.base.Applies; d > 0 {
		r.ApplyMean = time.Duration((st.ApplySeconds - f.base.ApplySeconds) / d * float64(time.Second))
	}
	r.AgentP50, r.AgentP99 = quantile(f.perAgent, 0.50), quantile(f.perAgent, 0.99)
	r.AllP50, r.AllP99, r.AllMax = quantile(f.perAll, 0.50), quantile(f.perAll, 0.99), quantile(f.perAll, 1)

	// Light agent 0 kept its versions: it reconnects naming them.
	a := f.light[0]
	a.stop()
	before := struct{ responses, resources, removals, payload int64 }{a.responses.Load(), a.resources.Load(), a.removals.Load(), a.payload.Load()}
	if err := a.connect(f.ctl.addr, f.ctl.client); err != nil {
		f.tb.Fatal(err)
	}
	select {
	case <-a.synced:
	case <-time.After(time.Minute):
		f.tb.Fatal("the reconnected agent got no response of every type")
	}
	r.ReconnectResources = a.resources.Load() - before.resources
	r.ReconnectRemovals = a.removals.Load() - before.removals
	r.ReconnectBytes = a.payload.Load() - before.payload

	if len(f.real) > 0 {
		r.RealReconnectResources = f.reconnectReal(f.real[0])
	}
	return r
}

// reconnectReal stops a real agent and starts it again, and returns how many resources it
// received from its new stream (the controller's count: nothing else is sent meanwhile).
func (f *fanout) reconnectReal(ra *realAgent) float64 {
	f.tb.Helper()
	ra.stop()
	before := f.ctl.stats().ResourcesSent
	ctx, cancel := context.WithCancel(context.Background())
	wait := ra.Start(ctx)
	f.tb.Cleanup(func() { cancel(); wait() })
	deadline := time.Now().Add(time.Minute)
	for counter(f.tb, ra.reg, "meshdns_agent_controller_connected") != 1 {
		if time.Now().After(deadline) {
			f.tb.Fatal("the restarted real agent did not reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // the responses of the other types
	return f.ctl.stats().ResourcesSent - before
}

// counter sums the series of a metric.
func counter(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// quantile is the nearest-rank q-quantile of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// TestFanOut is a small fan-out run (10 agents, 200 Services) that holds the properties the
// benchmark measures at scale: a changed Service costs each agent that one resource and at
// most 2 KB, and an agent that reconnects having missed nothing is sent nothing.
func TestFanOut(t *testing.T) {
	f := startFanout(t, 200, 10, 2)
	for i := range 3 {
		f.change(i)
		f.settle()
	}
	r := f.finish()
	t.Logf("%+v", r)
	if r.ResourcesPerAgent != 1 || r.RemovalsPerAgent != 0 {
		t.Errorf("per change and agent: %v resources and %v removals sent, want 1 and 0", r.ResourcesPerAgent, r.RemovalsPerAgent)
	}
	if r.PayloadPerAgent > 2048 {
		t.Errorf("per change and agent: %.0f bytes sent, want at most 2 KB", r.PayloadPerAgent)
	}
	if r.ReconnectResources != 0 || r.ReconnectRemovals != 0 {
		t.Errorf("an agent reconnecting with what it holds got %d resources and %d removals, want none",
			r.ReconnectResources, r.ReconnectRemovals)
	}
	if r.RealReconnectResources != 0 {
		t.Errorf("a restarted agent.Source was sent %v resources, want none", r.RealReconnectResources)
	}
}

// BenchmarkFanOut measures one controller serving -fanout.agents agents (default 1,000, of
// which -fanout.real are agent.Source instances) -fanout.services Services and as many
// EndpointSlices (default 10,000 each): per changed Service, the bytes each agent receives,
// the controller's CPU time and allocations, and the time until every agent has the change
// (debounces included); then the resources resent to agents reconnecting with what they hold.
// Not part of the test suite:
//
//	go test -run '^$' -bench FanOut -benchtime 20x -timeout 60m ./internal/controller
func BenchmarkFanOut(b *testing.B) {
	f := startFanout(b, *fanoutServices, *fanoutAgents, *fanoutReal)
	b.Logf("%d agents synced in %v: controller CPU %v, %.0f bytes per agent (%.0f on the wire)",
		*fanoutAgents, f.syncWall.Round(time.Millisecond), f.syncStats.CPU.Round(time.Millisecond), float64(f.syncPay)/float64(len(f.light)),
		float64(f.syncWire)/float64(len(f.light)))
	if *fanoutProfile != "" {
		f.ctl.do("profile %s", *fanoutProfile)
	}
	if *fanoutMemProfile != "" {
		f.ctl.do("memprofile %s", *fanoutMemProfile+".base") // pprof -base: the change loop's allocations alone
	}
	for i := 0; b.Loop(); i++ {
		f.change(i)
		b.StopTimer()
		f.settle()
		b.StartTimer()
	}
	if *fanoutProfile != "" {
		f.ctl.do("stop")
	}
	if *fanoutMemProfile != "" {
		f.ctl.do("memprofile %s", *fanoutMemProfile)
	}
	r := f.finish()
	b.ReportMetric(r.PayloadPerAgent, "B/agent/change")
	b.ReportMetric(r.WirePerAgent, "wire-B/agent/change")
	b.ReportMetric(float64(r.CPUPerChange.Microseconds())/1000, "ctl-cpu-ms/change")
	b.ReportMetric(r.MallocsPerChange, "ctl-allocs/change")
	b.ReportMetric(float64(r.AllP99.Microseconds())/1000, "p99-all-ms")
	b.ReportMetric(float64(r.AgentP99.Microseconds())/1000, "p99-agent-ms")
	b.ReportMetric(float64(r.ReconnectResources), "resent-on-reconnect")
	b.Logf("%+v", r)
}
