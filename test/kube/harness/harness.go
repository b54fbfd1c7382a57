// Package harness starts what the Kubernetes tests run meshdns against: a real kube-apiserver
// and etcd (built from k8s.io/kubernetes and go.etcd.io/etcd by scripts/kube-tools.sh) started
// by envtest, optionally with the Istio CRDs of istio.io/api; and meshdns processes, with
// helpers to ask them questions. There is no controller-manager: tests create EndpointSlices
// themselves, as the EndpointSlice controller would.
package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/meshdns/meshdns/internal/testutil"
)

// Cluster is a running API server and what tests need to use it.
type Cluster struct {
	Env        *envtest.Environment
	Config     *rest.Config
	Kubeconfig string // a cluster-admin kubeconfig file, for meshdns
	Clients    kubernetes.Interface
	Dyn        dynamic.Interface
	RepoRoot   string
	meshdns    string // the binary
	// agentOnce builds agent, the -tags nokube binary, or fails with agentErr.
	agentOnce sync.Once
	agent     string
	agentErr  string
}

// Start starts etcd and kube-apiserver (with Istio's CRDs when istio is true) and builds
// meshdns (with the race detector: informers and builder run concurrently for real here).
// stop ends them and removes the temporary files.
func Start(istio bool) (c *Cluster, stop func(), err error) {
	c = &Cluster{}
	if c.RepoRoot, err = repoRoot(); err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp("", "meshdns-kube-test")
	if err != nil {
		return nil, nil, err
	}
	stops := []func(){func() { os.RemoveAll(tmp) }}
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	tools, err := kubeTools(c.RepoRoot)
	if err != nil {
		return nil, nil, err
	}
	c.Env = &envtest.Environment{BinaryAssetsDirectory: tools}
	if istio {
		crds, err := IstioCRDs()
		if err != nil {
			return nil, nil, err
		}
		c.Env.CRDInstallOptions = envtest.CRDInstallOptions{Paths: []string{crds}, ErrorIfPathMissing: true}
	}
	// The example registry's services are dual-stack, in the usual kubeadm ranges.
	apiFlags := c.Env.ControlPlane.GetAPIServer().Configure()
	apiFlags.Set("service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112")
	// A bearer token, as a pod's service account presents one (the other users have client
	// certificates).
	tokens := filepath.Join(tmp, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(InClusterToken+",meshdns-in-cluster,1001,system:masters\n"), 0o600); err != nil {
		return nil, nil, err
	}
	apiFlags.Set("token-auth-file", tokens)
	if c.Config, err = c.Env.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	stops = append(stops, func() { c.Env.Stop() })
	if c.Kubeconfig, err = c.WriteKubeconfig(tmp, envtest.User{Name: "meshdns", Groups: []string{"system:masters"}}); err != nil {
		return nil, nil, err
	}
	c.meshdns = filepath.Join(tmp, "meshdns")
	build := exec.Command("go", "build", "-race", "-o", c.meshdns, "./cmd/meshdns")
	build.Dir, build.Stdout, build.Stderr = c.RepoRoot, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, nil, fmt.Errorf("building meshdns: %w", err)
	}
	c.Clients = kubernetes.NewForConfigOrDie(c.Config)
	c.Dyn = dynamic.NewForConfigOrDie(c.Config)
	return c, stop, nil
}

// repoRoot is the directory of meshdns's go.mod, above the test module.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(strings.TrimSpace(string(out))) // test/kube
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/meshdns/meshdns\n") {
			return d, nil
		}
	}
	return "", fmt.Errorf("no meshdns module above %s", dir)
}

// kubeTools returns the directory with kube-apiserver and etcd: $MESHDNS_KUBE_TOOLS if it has
// them, else what scripts/kube-tools.sh builds (once; cached).
func kubeTools(repoRoot string) (string, error) {
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

// IstioCRDs is the file of Istio's CRDs in the istio.io/api module.
func IstioCRDs() (string, error) {
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

// WriteKubeconfig writes a kubeconfig authenticating as user (a client certificate) into dir.
func (c *Cluster) WriteKubeconfig(dir string, user envtest.User) (string, error) {
	u, err := c.Env.ControlPlane.AddUser(user, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", user.Name, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig-"+strings.ReplaceAll(user.Name, ":", "-"))
	return path, os.WriteFile(path, data, 0o600)
}

// Meshdns is a running meshdns process.
type Meshdns struct {
	DNS, Admin string
	Log        *testutil.SyncBuffer
	cmd        *exec.Cmd
}

// Meshdns runs meshdns serve with args (plus a listen and admin address and a resolv.conf
// without nameservers: these tests ask cluster names only) until the test ends.
func (c *Cluster) Meshdns(t testing.TB, args ...string) *Meshdns {
	t.Helper()
	return c.Run(t, c.meshdns, args...)
}

// Binary is the meshdns the tests run (built with the race detector).
func (c *Cluster) Binary() string { return c.meshdns }

// PlainBinary builds meshdns without the race detector (for measurements: the detector
// multiplies time and memory), with build tags tags, and returns its path.
func (c *Cluster) PlainBinary(t testing.TB, tags ...string) string {
	t.Helper()
	bin := c.meshdns + "-plain" + strings.Join(tags, "-")
	build := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", bin, "./cmd/meshdns")
	build.Dir = c.RepoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building meshdns: %v\n%s", err, out)
	}
	return bin
}

// AgentBinary returns meshdns built with -tags nokube, the build for agents without
// Kubernetes client code (the image's /meshdns-agent), with the race detector; built on first
// use.
func (c *Cluster) AgentBinary(t testing.TB) string {
	t.Helper()
	c.agentOnce.Do(func() {
		bin := c.meshdns + "-agent"
		build := exec.Command("go", "build", "-race", "-tags", "nokube", "-o", bin, "./cmd/meshdns")
		build.Dir = c.RepoRoot
		if out, err := build.CombinedOutput(); err != nil {
			c.agentErr = fmt.Sprintf("building meshdns -tags nokube: %v\n%s", err, out)
			return
		}
		c.agent = bin
	})
	if c.agentErr != "" {
		t.Fatal(c.agentErr)
	}
	return c.agent
}

// InClusterToken is accepted by the API server as user meshdns-in-cluster, a cluster admin.
const InClusterToken = "meshdns-test-token"

// Run runs the meshdns binary bin as Meshdns does.
func (c *Cluster) Run(t testing.TB, bin string, args ...string) *Meshdns {
	t.Helper()
	return c.RunWrapped(t, nil, nil, bin, args...)
}

// RunWrapped runs bin as Run does, started through the command prefix (which ends by running
// its remaining arguments) with env added to the environment.
func (c *Cluster) RunWrapped(t testing.TB, prefix, env []string, bin string, args ...string) *Meshdns {
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
	m := &Meshdns{DNS: dnsAddr.String(), Admin: adminAddr.String()}
	// --reuse-port off: a port another process took meanwhile fails the start loudly instead
	// of being shared with it.
	argv := append([]string{"serve", "--listen", m.DNS, "--admin", m.Admin, "--resolv-conf", rc, "--log-level", "debug",
		"--reuse-port=false"}, args...)
	m.start(t, "meshdns", append(append(slices.Clone(prefix), bin), argv...), env)
	return m
}

// Controller runs `meshdns controller` with args (plus an admin address) until the test ends;
// the returned process has no DNS address.
func (c *Cluster) Controller(t testing.TB, args ...string) *Meshdns {
	t.Helper()
	adminAddr, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	m := &Meshdns{Admin: adminAddr.String()}
	m.start(t, "controller", append([]string{c.meshdns, "controller", "--admin", m.Admin, "--log-level", "debug"}, args...), nil)
	return m
}

// start runs argv with env added to the environment until the test ends, its output in
// m.Log (shown, named label, when the test fails).
func (m *Meshdns) start(t testing.TB, label string, argv, env []string) {
	t.Helper()
	m.Log = &testutil.SyncBuffer{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = m.Log, m.Log
	m.cmd = cmd
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", label, m.Log)
		}
	})
}

// MeshdnsWithKube runs meshdns against the API server, as a cluster admin.
func (c *Cluster) MeshdnsWithKube(t testing.TB, args ...string) *Meshdns {
	t.Helper()
	return c.Meshdns(t, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// Pid is the process id.
func (m *Meshdns) Pid() int { return m.cmd.Process.Pid }

// Kill stops the process at once (SIGKILL: no lease released, no goodbye).
func (m *Meshdns) Kill() {
	m.cmd.Process.Kill()
	m.cmd.Wait()
}

// Metric returns the value of the first sample of name in /metrics whose line contains all of
// labels, 0 when there is none.
func (m *Meshdns) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return m.metric(t, name, labels, false)
}

// MetricSum returns the sum of every sample of name in /metrics, whatever its labels.
func (m *Meshdns) MetricSum(t testing.TB, name string) float64 {
	t.Helper()
	return m.metric(t, name, nil, true)
}

// metric reads /metrics: the first sample of name whose line contains all of labels, or with
// all, the sum of every sample of name.
func (m *Meshdns) metric(t testing.TB, name string, labels []string, all bool) float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + m.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
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
		if !all {
			return v
		}
		sum += v
	}
	return sum
}

// Readyz returns the status code of /readyz, 0 when the admin endpoint does not answer.
func (m *Meshdns) Readyz() int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + m.Admin + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (m *Meshdns) WaitReady(t testing.TB) {
	t.Helper()
	Eventually(t, "meshdns ready", func() error {
		if code := m.Readyz(); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d", code)
		}
		return nil
	})
}

// Table returns /debug/table?all=1: every name, whatever the client namespace sees.
func (m *Meshdns) Table(t testing.TB) []TableEntry { return m.table(t, "?all=1") }

// View returns /debug/table: the names its client namespace sees.
func (m *Meshdns) View(t testing.TB) []TableEntry { return m.table(t, "") }

func (m *Meshdns) table(t testing.TB, query string) []TableEntry {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + m.Admin + "/debug/table" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []TableEntry
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TableEntry is an entry of /debug/table.
type TableEntry struct {
	Name     string   `json:"name"`
	Origin   string   `json:"origin"`
	ExportTo []string `json:"exportTo"`
	Aliases  []string `json:"aliases"`
	Records  []string `json:"records"`
	VIPs     []struct {
		Address string `json:"address"`
	} `json:"vips"`
}

// Ask sends one question over UDP.
func (m *Meshdns) Ask(name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(q, m.DNS)
	return r, err
}

// Answers returns the rcode and the answer records of name/qtype in presentation form, TTLs
// left out.
func (m *Meshdns) Answers(name string, qtype uint16) (string, []string, error) {
	r, err := m.Ask(name, qtype)
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

// Expect waits until name/qtype is answered with rcode and exactly the records whose data
// (the last field) are want, in any order.
func (m *Meshdns) Expect(t testing.TB, name string, qtype uint16, rcode string, want ...string) {
	t.Helper()
	Eventually(t, fmt.Sprintf("%s %s -> %s %v", name, dns.TypeToString[qtype], rcode, want), func() error {
		got, rrs, err := m.Answers(name, qtype)
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

// Eventually retries f until it succeeds or 30 s pass (generous: informers, debounce and a
// busy 2-CPU machine; the wait ends as soon as the answer is right).
func Eventually(t testing.TB, what string, f func() error) {
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

// Ctx is a context for one API call of a test.
func Ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Object decodes a YAML manifest of one object.
func Object(t testing.TB, manifest string) *unstructured.Unstructured {
	t.Helper()
	var u unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	return &u
}

// StaticServiceEntry is the manifest of a ServiceEntry with one host and one address, as
// Istio's users write one for an external API.
func StaticServiceEntry(ns, name, host, addr string) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: %s}
spec:
  hosts: [%s]
  addresses: [%s]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints: [{address: %s}]
`, name, ns, host, addr, addr)
}
