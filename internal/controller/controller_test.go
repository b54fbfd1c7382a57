package controller_test

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshdns/meshdns/internal/agent"
	"github.com/meshdns/meshdns/internal/controller"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/xds"
)

// memSource is a source whose snapshot the test sets.
type memSource struct {
	mu      sync.Mutex
	snap    model.Snapshot
	changed chan struct{}
}

func newMemSource(snap model.Snapshot) *memSource {
	return &memSource{snap: snap, changed: make(chan struct{}, 1)}
}

func (s *memSource) Snapshot() model.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

func (s *memSource) Changed() <-chan struct{} { return s.changed }

func (s *memSource) set(f func(*model.Snapshot)) {
	s.mu.Lock()
	f(&s.snap)
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

var created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func svc(ns, name, ip string) model.Service {
	return model.Service{Meta: model.Meta{Namespace: ns, Name: name, Created: created}, Type: model.ServiceTypeClusterIP,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(ip)}}
}

func se(ns, name, host string, exportTo ...string) model.ServiceEntry {
	return model.ServiceEntry{Meta: model.Meta{Namespace: ns, Name: name, Created: created}, Hosts: []string{host},
		Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, Resolution: model.ResolutionStatic, ExportTo: exportTo}
}

func baseSnapshot() model.Snapshot {
	return model.Snapshot{
		Namespaces:     []model.Namespace{{Name: "a"}, {Name: "b"}},
		Services:       []model.Service{svc("a", "web", "10.0.0.1"), svc("b", "db", "10.0.0.2")},
		ServiceEntries: []model.ServiceEntry{se("a", "mine", "mine.example.com", "."), se("b", "all", "all.example.com")},
	}
}

// serverTLS returns a certificate for 127.0.0.1 and a client config trusting it.
func serverTLS(t *testing.T) (*tls.Config, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshdns-controller"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

type fixture struct {
	t      *testing.T
	src    *memSource
	ctrl   *controller.Controller
	reg    *prometheus.Registry
	addr   string
	client *tls.Config // nil: plain text
	stop   func()
}

func startController(t *testing.T, src *memSource, auth controller.Authenticator, withTLS bool, fullView ...controller.ServiceAccount) *fixture {
	t.Helper()
	f := &fixture{t: t, src: src, reg: prometheus.NewRegistry()}
	f.ctrl = controller.New(controller.Options{Source: src, Auth: auth, FullView: fullView, Debounce: time.Millisecond,
		Metrics: controller.NewMetrics(f.reg)})
	var opts []grpc.ServerOption
	if withTLS {
		var srvTLS *tls.Config
		srvTLS, f.client = serverTLS(t)
		opts = append(opts, grpc.Creds(credentials.NewTLS(srvTLS)))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	f.stop = serve(t, f.ctrl, l, opts...)
	return f
}

// serve runs ctrl and serves it on l until the test ends or stop is called.
func serve(t *testing.T, ctrl *controller.Controller, l net.Listener, opts ...grpc.ServerOption) (stop func()) {
	s := grpc.NewServer(opts...)
	ctrl.Register(s)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ctrl.Run(ctx) }()
	go func() { defer wg.Done(); _ = s.Serve(l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			s.Stop()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

type runningAgent struct {
	*agent.Source
	reg  *prometheus.Registry
	stop func()
}

func (f *fixture) agent(namespace, stateDir, tokenFile string) *runningAgent {
	f.t.Helper()
	reg := prometheus.NewRegistry()
	a, err := agent.New(agent.Options{Addrs: []string{f.addr}, TLS: f.client, TokenFile: tokenFile, Namespace: namespace,
		NodeID: "test-" + namespace, StateDir: stateDir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Metrics: agent.NewMetrics(reg)})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := a.Start(ctx)
	ra := &runningAgent{Source: a, reg: reg, stop: func() { cancel(); wait() }}
	f.t.Cleanup(ra.stop)
	return ra
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func entryNames(snap model.Snapshot) []string {
	var out []string
	for _, e := range snap.ServiceEntries {
		out = append(out, e.Key())
	}
	return out
}

func serviceNames(snap model.Snapshot) []string {
	var out []string
	for _, s := range snap.Services {
		out = append(out, s.Key()+"="+fmt.Sprint(s.ClusterIPs))
	}
	return out
}

func waitSynced(t *testing.T, a *runningAgent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !a.WaitSynced(ctx) {
		t.Fatal("agent did not sync")
	}
}

func TestAgentsReceiveTheirNamespacesView(t *testing.T) {
	f := startController(t, newMemSource(baseSnapshot()), nil, false)
	a, b := f.agent("a", "", ""), f.agent("b", "", "")
	waitSynced(t, a)
	waitSynced(t, b)
	if got, want := entryNames(a.Snapshot()), []string{"a/mine", "b/all"}; !slices.Equal(got, want) {
		t.Errorf("agent of a holds %v, want %v", got, want)
	}
	if got, want := entryNames(b.Snapshot()), []string{"b/all"}; !slices.Equal(got, want) {
		t.Errorf("agent of b holds %v, want %v: a's exportTo . entry reached it", got, want)
	}
	if got := a.Snapshot(); !reflect.DeepEqual(got.Services, baseSnapshot().Services) || !reflect.DeepEqual(got.Namespaces, baseSnapshot().Namespaces) {
		t.Errorf("agent of a: services %v namespaces %v", got.Services, got.Namespaces)
	}
}

func TestAChangeSendsOnlyThatChange(t *testing.T) {
	src := newMemSource(baseSnapshot())
	for i := range 200 {
		src.snap.Services = append(src.snap.Services, svc("c", fmt.Sprintf("s%03d", i), "10.1.0.1"))
	}
	f := startController(t, src, nil, false)
	a := f.agent("a", "", "")
	waitSynced(t, a)
	before := metric(t, f.reg, "meshdns_controller_resources_sent_total", "Service")
	src.set(func(s *model.Snapshot) { s.Services[0].ClusterIPs = []netip.Addr{netip.MustParseAddr("10.0.0.9")} })
	eventually(t, "the change reaches the agent", func() error {
		if got := serviceNames(a.Snapshot())[0]; got != "a/web=[10.0.0.9]" {
			return fmt.Errorf("first service %s", got)
		}
		return nil
	})
	if sent := metric(t, f.reg, "meshdns_controller_resources_sent_total", "Service") - before; sent != 1 {
		t.Errorf("%v Service resources sent for one changed Service, want 1", sent)
	}
	src.set(func(s *model.Snapshot) { s.Services = s.Services[1:] })
	eventually(t, "the removal reaches the agent", func() error {
		if got := serviceNames(a.Snapshot())[0]; got != "b/db=[10.0.0.2]" {
			return fmt.Errorf("first service %s", got)
		}
		return nil
	})
	if got := metric(t, f.reg, "meshdns_controller_removals_sent_total", "Service"); got != 1 {
		t.Errorf("%v removals sent, want 1", got)
	}
}

func TestExportToChangesMoveAnEntryBetweenViews(t *testing.T) {
	src := newMemSource(baseSnapshot())
	f := startController(t, src, nil, false)
	b := f.agent("b", "", "")
	waitSynced(t, b)
	src.set(func(s *model.Snapshot) { s.ServiceEntries[0].ExportTo = []string{"*"} })
	eventually(t, "b sees a's entry once exported to all", func() error {
		if got := entryNames(b.Snapshot()); !slices.Equal(got, []string{"a/mine", "b/all"}) {
			return fmt.Errorf("b holds %v", got)
		}
		return nil
	})
	src.set(func(s *model.Snapshot) { s.ServiceEntries[0].ExportTo = []string{"a"} })
	eventually(t, "b loses a's entry once exported to a only", func() error {
		if got := entryNames(b.Snapshot()); !slices.Equal(got, []string{"b/all"}) {
			return fmt.Errorf("b holds %v", got)
		}
		return nil
	})
}

func TestReconnectWithNothingMissedResendsNothing(t *testing.T) {
	src := newMemSource(baseSnapshot())
	f := startController(t, src, nil, false)
	dir := t.TempDir()
	a := f.agent("a", dir, "")
	waitSynced(t, a)
	eventually(t, "the state is saved", func() error {
		_, err := os.Stat(filepath.Join(dir, agent.StateFile))
		return err
	})
	a.stop()
	sent := func() float64 {
		n := 0.0
		for _, typ := range []string{"Namespace", "Service", "ServiceEntry", "ScopedServiceEntry"} {
			n += metric(t, f.reg, "meshdns_controller_resources_sent_total", typ)
		}
		return n
	}
	before := sent()
	again := f.agent("a", dir, "")
	waitSynced(t, again)
	eventually(t, "the agent reconnects", func() error {
		if got := metric(t, again.reg, "meshdns_agent_controller_connected", ""); got != 1 {
			return fmt.Errorf("connected %v", got)
		}
		return nil
	})
	if after := sent(); after != before {
		t.Errorf("%v resources resent to an agent that missed nothing, want 0", after-before)
	}
}

func TestAnAgentStartsFromItsStateWithoutTheController(t *testing.T) {
	src := newMemSource(baseSnapshot())
	f := startController(t, src, nil, false)
	dir := t.TempDir()
	a := f.agent("a", dir, "")
	waitSynced(t, a)
	want := a.Snapshot()
	eventually(t, "the state is saved", func() error {
		_, err := os.Stat(filepath.Join(dir, agent.StateFile))
		return err
	})
	a.stop()
	f.stop()
	// Meanwhile, a Service is added that the restarted agent cannot know yet.
	src.set(func(s *model.Snapshot) { s.Services = append(s.Services, svc("b", "new", "10.0.0.3")) })

	restarted, err := agent.New(agent.Options{Addrs: []string{f.addr}, Namespace: "a", StateDir: dir, MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if !restarted.WaitSynced(ctx) {
		t.Fatal("an agent with a saved state is not ready without the controller")
	}
	if got := restarted.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("restored snapshot:\n%+v\nwant\n%+v", got, want)
	}
	if st := restarted.Status(); len(st) != 2 {
		t.Errorf("status while the controller is away: %q", st)
	}

	// The controller comes back on the same address: the agent converges without a restart.
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		t.Skipf("the controller's port was taken meanwhile: %v", err)
	}
	serve(t, controller.New(controller.Options{Source: src, Debounce: time.Millisecond}), l)
	rctx, rcancel := context.WithCancel(context.Background())
	wait := restarted.Start(rctx)
	defer func() { rcancel(); wait() }()
	eventually(t, "the restarted agent converges", func() error {
		if got := serviceNames(restarted.Snapshot()); len(got) != 3 {
			return fmt.Errorf("services %v", got)
		}
		if st := restarted.Status(); len(st) != 0 {
			return fmt.Errorf("status %q", st)
		}
		return nil
	})
}

func TestAStateOfAnotherNamespaceIsNotUsed(t *testing.T) {
	f := startController(t, newMemSource(baseSnapshot()), nil, false)
	dir := t.TempDir()
	a := f.agent("a", dir, "")
	waitSynced(t, a)
	eventually(t, "the state is saved", func() error {
		_, err := os.Stat(filepath.Join(dir, agent.StateFile))
		return err
	})
	a.stop()
	other, err := agent.New(agent.Options{Addrs: []string{"127.0.0.1:1"}, Namespace: "b", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if other.WaitSynced(ctx) {
		t.Errorf("namespace b's agent took namespace a's saved names: %v", entryNames(other.Snapshot()))
	}
}

// tokens is an authenticator from a fixed table: token to "namespace/name".
type tokens map[string]string

func (tk tokens) Authenticate(_ context.Context, token string) (controller.ServiceAccount, error) {
	if sa, ok := tk[token]; ok {
		ns, name, _ := strings.Cut(sa, "/")
		return controller.ServiceAccount{Namespace: ns, Name: cmp.Or(name, "default")}, nil
	}
	if token == "unreachable" {
		return controller.ServiceAccount{}, errors.New("the API server is away")
	}
	return controller.ServiceAccount{}, fmt.Errorf("%w: unknown token", controller.ErrRejected)
}
func writeToken(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokensDecideTheView(t *testing.T) {
	f := startController(t, newMemSource(baseSnapshot()), tokens{"tok-a": "a", "tok-b": "b"}, true)
	good := f.agent("a", "", writeToken(t, "tok-a"))
	waitSynced(t, good)
	if got := entryNames(good.Snapshot()); !slices.Equal(got, []string{"a/mine", "b/all"}) {
		t.Errorf("agent of a holds %v", got)
	}
	for _, tc := range []struct{ name, namespace, token, wantStatus string }{
		{"another namespace's view", "a", "tok-b", "PermissionDenied"},
		{"a garbage token", "a", "garbage", "Unauthenticated"},
		{"a token that cannot be checked", "a", "unreachable", "Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := f.agent(tc.namespace, "", writeToken(t, tc.token))
			eventually(t, "the refusal", func() error {
				st := bad.Status()
				if len(st) == 0 || !strings.Contains(st[0], tc.wantStatus) {
					return fmt.Errorf("status %q, want %s", st, tc.wantStatus)
				}
				return nil
			})
			if len(bad.Snapshot().ServiceEntries) != 0 {
				t.Errorf("a refused agent holds %v", entryNames(bad.Snapshot()))
			}
		})
	}
}

func TestTheControllerRefusesAgentsUntilItHasReadTheCluster(t *testing.T) {
	// A source that never syncs.
	src := &neverReady{newMemSource(model.Snapshot{})}
	g := &fixture{t: t, src: src.memSource, reg: prometheus.NewRegistry()}
	g.ctrl = controller.New(controller.Options{Source: src})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = l.Addr().String()
	serve(t, g.ctrl, l)
	a := g.agent("a", "", "")
	eventually(t, "the refusal", func() error {
		if st := a.Status(); len(st) == 0 || !strings.Contains(st[0], "Unavailable") {
			return fmt.Errorf("status %q", st)
		}
		return nil
	})
}

type neverReady struct{ *memSource }

func (neverReady) WaitSynced(ctx context.Context) bool { <-ctx.Done(); return false }
func (neverReady) Ready() bool                         { return false }

// metric is the value of the series of name whose one label has value label ("": none).
func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestMetricsLint lints the controller's and an agent's metrics once each has series.
func TestMetricsLint(t *testing.T) {
	f := startController(t, newMemSource(baseSnapshot()), nil, false)
	a := f.agent("a", "", "")
	waitSynced(t, a)
	for name, reg := range map[string]*prometheus.Registry{"controller": f.reg, "agent": a.reg} {
		if mfs := testutil.LintMetrics(t, reg); len(mfs) < 5 {
			t.Errorf("%s: only %d metrics gathered", name, len(mfs))
		}
	}
}

// TestAnAgentTakesAFirstResponseOverFourMiB: the first response of a type holds every resource
// of it; gRPC's default receive limit (4 MiB) would refuse it and the agent would never sync.
func TestAnAgentTakesAFirstResponseOverFourMiB(t *testing.T) {
	snap := model.Snapshot{Namespaces: []model.Namespace{{Name: "a"}}}
	for i := range 40_000 {
		snap.Services = append(snap.Services, svc("a", fmt.Sprintf("service-with-a-long-name-%06d", i), "10.0.0.1"))
	}
	f := startController(t, newMemSource(snap), nil, false)
	a := f.agent("a", "", "")
	waitSynced(t, a)
	if got := len(a.Snapshot().Services); got != len(snap.Services) {
		t.Errorf("the agent holds %d services, want %d", got, len(snap.Services))
	}
	if sent := metric(t, f.reg, "meshdns_controller_sent_bytes_total", "Service"); sent <= 4<<20 {
		t.Errorf("the Service response was %v bytes: not over 4 MiB, the test proves nothing", sent)
	}
}

// TestNodeAgentsSeeEveryNamespace: a node agent asks for every namespace's names (it applies
// exportTo per pod itself); only the service accounts the controller names get them.
func TestNodeAgentsSeeEveryNamespace(t *testing.T) {
	snap := baseSnapshot()
	snap.ServiceEntries = append(snap.ServiceEntries, se("c", "theirs", "theirs.example.com", "c"))
	f := startController(t, newMemSource(snap), tokens{"node": "meshdns-system/node-agent", "tok-a": "a"}, true,
		controller.ServiceAccount{Namespace: "meshdns-system", Name: "node-agent"})
	node := f.agent(xds.AllNamespaces, "", writeToken(t, "node"))
	waitSynced(t, node)
	if got, want := entryNames(node.Snapshot()), []string{"a/mine", "b/all", "c/theirs"}; !slices.Equal(got, want) {
		t.Errorf("the node agent holds %v, want %v", got, want)
	}
	other := f.agent(xds.AllNamespaces, "", writeToken(t, "tok-a"))
	eventually(t, "the refusal", func() error {
		if st := other.Status(); len(st) == 0 || !strings.Contains(st[0], "PermissionDenied") {
			return fmt.Errorf("status %q", st)
		}
		return nil
	})
	if len(other.Snapshot().ServiceEntries) != 0 {
		t.Errorf("an agent of namespace a got every namespace's names: %v", entryNames(other.Snapshot()))
	}
}
