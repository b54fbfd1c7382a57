package kube_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshdns/meshdns/test/kube/harness"
)

var serviceEntriesV1 = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
var workloadEntriesV1 = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}

// TestIstioKinds: ServiceEntries and WorkloadEntries created, changed and deleted in the API
// server change the answers.
func TestIstioKinds(t *testing.T) {
	const ns = "mesh"
	createNamespace(t, ns)
	// Without VIPs, a ServiceEntry without addresses answers with its workloads' addresses.
	m := startWithKube(t, "--vip-cidr", "", "--vip-cidr6", "")
	m.WaitReady(t)
	ses := dyn.Resource(serviceEntriesV1).Namespace(ns)
	wes := dyn.Resource(workloadEntriesV1).Namespace(ns)

	se, err := ses.Create(ctx(t), harness.Object(t, harness.StaticServiceEntry(ns, "payments", "api.payments.istio-kinds.test", "203.0.113.10")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "api.payments.istio-kinds.test", dns.TypeA, "NOERROR", "203.0.113.10")

	// Update: another address.
	unstructured.SetNestedStringSlice(se.Object, []string{"203.0.113.11"}, "spec", "addresses")
	if _, err := ses.Update(ctx(t), se, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "api.payments.istio-kinds.test", dns.TypeA, "NOERROR", "203.0.113.11")

	// Workload selection: a ServiceEntry without addresses, resolution STATIC, selecting
	// WorkloadEntries: its host answers with their addresses as they come and go.
	if _, err := ses.Create(ctx(t), harness.Object(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: billing, namespace: mesh}
spec:
  hosts: [billing.istio-kinds.test]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  location: MESH_INTERNAL
  workloadSelector: {labels: {app: billing}}
`), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, we := range []string{"billing-1 192.0.2.50", "billing-2 192.0.2.51"} {
		name, addr, _ := strings.Cut(we, " ")
		if _, err := wes.Create(ctx(t), harness.Object(t, `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: `+name+`, namespace: mesh}
spec: {address: `+addr+`, labels: {app: billing}}
`), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	m.Expect(t, "billing.istio-kinds.test", dns.TypeA, "NOERROR", "192.0.2.50", "192.0.2.51")
	if err := wes.Delete(ctx(t), "billing-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "billing.istio-kinds.test", dns.TypeA, "NOERROR", "192.0.2.51")
	we, err := wes.Get(ctx(t), "billing-2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unstructured.SetNestedField(we.Object, "192.0.2.52", "spec", "address")
	if _, err := wes.Update(ctx(t), we, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "billing.istio-kinds.test", dns.TypeA, "NOERROR", "192.0.2.52")

	// Deletes.
	if err := ses.Delete(ctx(t), "payments", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "api.payments.istio-kinds.test gone", func() error {
		r, err := m.Ask("api.payments.istio-kinds.test", dns.TypeA)
		if err != nil {
			return err
		}
		if len(r.Answer) != 0 || r.Authoritative {
			return errStillThere
		}
		return nil
	})
}

type testError string

func (e testError) Error() string { return string(e) }

const (
	errNoAnswer   = testError("no answer")
	errStillThere = testError("still answered from the table")
)

// apiProxy forwards TCP connections to the API server. down closes its listener and every
// connection through it, as a stopped API server would; up listens again on the same address.
// meshdns reaches the API server through it, the tests' own clients directly.
type apiProxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newAPIProxy(t *testing.T) *apiProxy {
	t.Helper()
	u, err := url.Parse(restConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := &apiProxy{target: u.Host, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *apiProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *apiProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

func (p *apiProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *apiProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// kubeconfigVia writes a kubeconfig that reaches the API server at addr instead.
func kubeconfigVia(t *testing.T, addr string) string {
	t.Helper()
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(restConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), u.Host, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAPIServerGoneAndBack: while the API server is unreachable (its address refuses
// connections, through a proxy the test closes) meshdns keeps answering from its last table
// and stays ready; changes made meanwhile, deletions included, show up once it is reachable
// again, when the informers list anew.
func TestAPIServerGoneAndBack(t *testing.T) {
	const ns = "resilient"
	createNamespace(t, ns)
	svcs := clients.CoreV1().Services(ns)
	if _, err := svcs.Create(ctx(t), service(ns, "a", corev1.ServiceSpec{ClusterIP: "10.96.3.1", Ports: httpPort()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	proxy := newAPIProxy(t)
	m := startMeshdns(t, "--kubeconfig", kubeconfigVia(t, proxy.addr))
	m.WaitReady(t)
	m.Expect(t, "a.resilient.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.3.1")

	proxy.down()
	if _, err := svcs.Create(ctx(t), service(ns, "b", corev1.ServiceSpec{ClusterIP: "10.96.3.2", Ports: httpPort()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := svcs.Delete(ctx(t), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Gone for 3 s: long enough for the informers' watches to break and their retries to fail.
	for range 30 {
		m.Expect(t, "a.resilient.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.3.1")
		if code := m.Readyz(); code != http.StatusOK {
			t.Fatalf("/readyz %d while the API server is away: the last table still serves", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.Expect(t, "b.resilient.svc.cluster.local", dns.TypeA, "NXDOMAIN")

	proxy.up(t)
	m.Expect(t, "b.resilient.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.3.2")
	m.Expect(t, "a.resilient.svc.cluster.local", dns.TypeA, "NXDOMAIN")
}

// TestNotReadyUntilSynced: while the API server has never been reached, meshdns has no table:
// /readyz is 503 and cluster names get SERVFAIL (never a wrong NXDOMAIN). Once it can be
// reached, meshdns becomes ready and answers.
func TestNotReadyUntilSynced(t *testing.T) {
	const ns = "latecomer"
	createNamespace(t, ns)
	if _, err := clients.CoreV1().Services(ns).Create(ctx(t), service(ns, "c", corev1.ServiceSpec{ClusterIP: "10.96.4.1", Ports: httpPort()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	proxy := newAPIProxy(t)
	proxy.down()
	m := startMeshdns(t, "--kubeconfig", kubeconfigVia(t, proxy.addr))
	eventually(t, "admin endpoint up", func() error {
		if m.Readyz() == 0 {
			return errNoAnswer
		}
		return nil
	})
	for range 10 {
		if code := m.Readyz(); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d before any informer synced, want 503", code)
		}
		m.Expect(t, "c.latecomer.svc.cluster.local", dns.TypeA, "SERVFAIL")
		time.Sleep(100 * time.Millisecond)
	}
	proxy.up(t)
	m.WaitReady(t)
	m.Expect(t, "c.latecomer.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.4.1")
}
