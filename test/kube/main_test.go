// Package kube_test runs meshdns against a real kube-apiserver and etcd (built from
// k8s.io/kubernetes and go.etcd.io/etcd by scripts/kube-tools.sh), started by envtest, with
// the Istio CRDs of istio.io/api installed. There is no controller-manager: tests create
// EndpointSlices themselves, as the EndpointSlice controller would.
package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshdns/meshdns/internal/testutil"
)

var (
	env        *envtest.Environment
	restConfig *rest.Config
	kubeconfig string // a kubeconfig file for meshdns
	meshdnsBin string
	repoRoot   string
	clients    kubernetes.Interface
	dyn        dynamic.Interface
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "test/kube:", err)
		return 1
	}
	var err error
	if repoRoot, err = filepath.Abs("../.."); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp("", "meshdns-kube-test")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	tools, err := kubeTools()
	if err != nil {
		return fail(err)
	}
	crds, err := istioCRDs()
	if err != nil {
		return fail(err)
	}
	env = &envtest.Environment{
		BinaryAssetsDirectory: tools,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: []string{crds}, ErrorIfPathMissing: true},
	}
	// The example registry's services are dual-stack, in the usual kubeadm ranges.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112")
	if restConfig, err = env.Start(); err != nil {
		return fail(fmt.Errorf("starting kube-apiserver and etcd: %w", err))
	}
	defer env.Stop()
	if kubeconfig, err = writeKubeconfig(tmp); err != nil {
		return fail(err)
	}
	meshdnsBin = filepath.Join(tmp, "meshdns")
	// With the race detector: the informers and the builder run concurrently for real here.
	build := exec.Command("go", "build", "-race", "-o", meshdnsBin, "./cmd/meshdns")
	build.Dir, build.Stdout, build.Stderr = repoRoot, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fail(fmt.Errorf("building meshdns: %w", err))
	}
	clients = kubernetes.NewForConfigOrDie(restConfig)
	dyn = dynamic.NewForConfigOrDie(restConfig)
	return m.Run()
}

// kubeTools returns the directory with kube-apiserver and etcd: $MESHDNS_KUBE_TOOLS if it has
// them, else what scripts/kube-tools.sh builds (once; cached).
func kubeTools() (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "kube-tools.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/kube-tools.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// istioAPI is the istio.io/api module whose CRDs the tests install (no Go code of it is used,
// so it is fetched by version rather than required in go.mod).
const istioAPI = "istio.io/api@v1.31.1"

// istioCRDs is the file of Istio's CRDs in the istio.io/api module.
func istioCRDs() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", istioAPI).Output()
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", istioAPI, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("downloading %s: no directory in %q", istioAPI, out)
	}
	return filepath.Join(mod.Dir, "kubernetes", "customresourcedefinitions.gen.yaml"), nil
}

// writeKubeconfig writes a kubeconfig of a cluster-admin user for meshdns.
func writeKubeconfig(dir string) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "meshdns", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("adding a user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// meshdns is a running meshdns process.
type meshdns struct {
	dns, admin string
	log        *testutil.SyncBuffer
	cmd        *exec.Cmd
}

// startMeshdns runs meshdns serve with args (plus a listen and admin address and a resolv.conf
// without nameservers: these tests ask cluster names only) until the test ends.
func startMeshdns(t *testing.T, args ...string) *meshdns {
	t.Helper()
	dnsAddr, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("search default.svc.cluster.local svc.cluster.local cluster.local\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &meshdns{dns: dnsAddr.String(), admin: adminAddr.String(), log: &testutil.SyncBuffer{}}
	argv := append([]string{"serve", "--listen", m.dns, "--admin", m.admin, "--resolv-conf", rc, "--log-level", "debug"}, args...)
	cmd := exec.Command(meshdnsBin, argv...)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	m.cmd = cmd
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("meshdns log:\n%s", m.log)
		}
	})
	return m
}

// startWithKube runs meshdns against the test API server.
func startWithKube(t *testing.T, args ...string) *meshdns {
	t.Helper()
	return startMeshdns(t, append([]string{"--kubeconfig", kubeconfig}, args...)...)
}

// kill stops the process at once (SIGKILL: no lease released, no goodbye).
func (m *meshdns) kill() {
	m.cmd.Process.Kill()
	m.cmd.Wait()
}

// metric returns the value of the first sample of name in /metrics whose line contains all of
// labels, 0 when there is none.
func (m *meshdns) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + m.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
lines:
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		return v
	}
	return 0
}

// readyz returns the status code of /readyz, 0 when the admin endpoint does not answer.
func (m *meshdns) readyz() int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + m.admin + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (m *meshdns) waitReady(t *testing.T) {
	t.Helper()
	eventually(t, "meshdns ready", func() error {
		if code := m.readyz(); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d", code)
		}
		return nil
	})
}

// table returns /debug/table.
func (m *meshdns) table(t *testing.T) []tableEntry {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + m.admin + "/debug/table")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []tableEntry
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

type tableEntry struct {
	Name     string   `json:"name"`
	Origin   string   `json:"origin"`
	ExportTo []string `json:"exportTo"`
	Aliases  []string `json:"aliases"`
	Records  []string `json:"records"`
	VIPs     []struct {
		Address string `json:"address"`
	} `json:"vips"`
}

// ask sends one question over UDP.
func (m *meshdns) ask(name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(q, m.dns)
	return r, err
}

// answers returns the rcode and the answer records of name/qtype in presentation form, TTLs
// left out.
func (m *meshdns) answers(name string, qtype uint16) (string, []string, error) {
	r, err := m.ask(name, qtype)
	if err != nil {
		return "", nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		rr.Header().Ttl = 0
		out = append(out, rr.String())
	}
	return dns.RcodeToString[r.Rcode], out, nil
}

// expect waits until name/qtype is answered with rcode and exactly the records whose data
// (the last field) are want, in any order.
func (m *meshdns) expect(t *testing.T, name string, qtype uint16, rcode string, want ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s %s -> %s %v", name, dns.TypeToString[qtype], rcode, want), func() error {
		got, rrs, err := m.answers(name, qtype)
		if err != nil {
			return err
		}
		var data []string
		for _, rr := range rrs {
			f := strings.Fields(rr)
			data = append(data, f[len(f)-1])
		}
		if got != rcode || !sameSet(data, want) {
			return fmt.Errorf("got %s %v", got, rrs)
		}
		return nil
	})
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s]--; seen[s] < 0 {
			return false
		}
	}
	return true
}

// eventually retries f until it succeeds or 30 s pass (generous: informers, debounce and a
// busy 2-CPU machine; the wait ends as soon as the answer is right).
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
