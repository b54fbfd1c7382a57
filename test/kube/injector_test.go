package kube_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/meshdns/meshdns/internal/inject"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/test/kube/harness"
)

// injectorProc is a running meshdns injector serving HTTPS on 127.0.0.1 with a key pair
// signed by a CA of the test.
type injectorProc struct {
	webhook, admin string
	ca             *testutil.CA
	log            *testutil.SyncBuffer
	cmd            *exec.Cmd
}

// injectorManifest returns the objects of deploy/injector.yaml of the given kind.
func injectorManifest(t *testing.T, kind string, into any) {
	t.Helper()
	for _, u := range readManifests(t, filepath.Join(repoRoot, "deploy")) {
		if u.GetKind() == kind && strings.HasPrefix(u.GetName(), "meshdns-injector") {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("deploy/injector.yaml has no %s meshdns-injector", kind)
}

// startInjector runs the binary with the arguments of deploy/injector.yaml's Deployment (so
// they must be ones it accepts), its addresses and key pair replaced by the test's, and extra
// arguments after them.
func startInjector(t *testing.T, extra ...string) *injectorProc {
	t.Helper()
	var d appsv1.Deployment
	injectorManifest(t, "Deployment", &d)
	args := d.Spec.Template.Spec.Containers[0].Args
	ca := testutil.NewCA(t, "meshdns injector test CA")
	cert, key := ca.Issue(t, time.Now().Add(24*time.Hour), []string{"localhost"}, net.IPv4(127, 0, 0, 1))
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	webhook, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := &injectorProc{webhook: webhook.String(), admin: admin.String(), ca: ca, log: &testutil.SyncBuffer{}}
	// Later flags win: the manifest's addresses and files give way to the test's.
	args = append(slices.Clone(args), "--listen="+p.webhook, "--admin="+p.admin, "--log-level=debug",
		"--tls-cert="+filepath.Join(dir, "tls.crt"), "--tls-key="+filepath.Join(dir, "tls.key"))
	args = append(args, extra...)
	p.cmd = exec.Command(cluster.Binary(), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("injector log:\n%s", p.log)
		}
	})
	eventually(t, "injector ready", func() error {
		_, err := p.get("/readyz")
		return err
	})
	return p
}

func (p *injectorProc) stop() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// get fetches path of the admin endpoint.
func (p *injectorProc) get(path string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.admin + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	return string(body), err
}

// registerInjector registers deploy/injector.yaml's MutatingWebhookConfiguration as name with
// the API server, each entry calling p at its path instead of the Service, trusting the test's
// CA, and waits until the API server calls it for a pod of namespace probe (created here).
func registerInjector(t *testing.T, p *injectorProc, name, probe string) {
	t.Helper()
	registerConfig(t, p, name)
	createNamespace(t, probe)
	eventually(t, "the API server calls the injector", func() error {
		pod, err := clients.CoreV1().Pods(probe).Create(ctx(t), testPod("probe", map[string]string{"meshdns.io/inject": "true"}),
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if !injected(pod) {
			return errNoAnswer
		}
		return nil
	})
}

// registerConfig registers deploy/injector.yaml's MutatingWebhookConfiguration as name,
// calling p, until the test ends.
func registerConfig(t *testing.T, p *injectorProc, name string) {
	t.Helper()
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	injectorManifest(t, "MutatingWebhookConfiguration", &cfg)
	cfg.ObjectMeta = metav1.ObjectMeta{Name: name}
	for i := range cfg.Webhooks {
		w := &cfg.Webhooks[i]
		url := "https://" + p.webhook + *w.ClientConfig.Service.Path
		w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: p.ca.CertPEM}
	}
	api := clients.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := api.Create(ctx(t), &cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Delete(ctx(t), cfg.Name, metav1.DeleteOptions{}) })
}

// TestInjectorManualCABundle registers deploy/injector.yaml's MutatingWebhookConfiguration,
// which leaves caBundle to cert-manager, and applies the JSON patch docs/injection.md gives for
// setting it by hand: the API server must take it and store the CA in both entries.
func TestInjectorManualCABundle(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "injection.md"))
	if err != nil {
		t.Fatal(err)
	}
	const cmd = `kubectl patch mutatingwebhookconfiguration meshdns-injector --type=json -p "`
	_, rest, ok := strings.Cut(string(doc), cmd)
	patch, _, ok2 := strings.Cut(rest, "\"\n```")
	if !ok || !ok2 {
		t.Fatalf("docs/injection.md: no %s...\" block", cmd)
	}
	ca := testutil.NewCA(t, "meshdns injector test CA")
	patch = strings.NewReplacer(`\"`, `"`, "$ca", base64.StdEncoding.EncodeToString(ca.CertPEM)).Replace(patch)

	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	injectorManifest(t, "MutatingWebhookConfiguration", &cfg)
	cfg.ObjectMeta.Name = "meshdns-injector-manual-ca"
	for _, w := range cfg.Webhooks {
		if len(w.ClientConfig.CABundle) != 0 {
			t.Fatalf("webhook %s of deploy/injector.yaml has a caBundle; want it left to cert-manager", w.Name)
		}
	}
	api := clients.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := api.Create(ctx(t), &cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Delete(ctx(t), cfg.Name, metav1.DeleteOptions{}) })
	got, err := api.Patch(ctx(t), cfg.Name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("the patch of docs/injection.md: %v\n%s", err, patch)
	}
	for _, w := range got.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, ca.CertPEM) {
			t.Errorf("webhook %s: caBundle %q, want the CA", w.Name, w.ClientConfig.CABundle)
		}
	}
}

func testPod(name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "app:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "app:1"}},
		},
	}
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func injected(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == "meshdns" })
}

// checkInjected fails unless the stored pod has the capture step and the sidecar, once each,
// before its own init container, as the manifest's flags describe them.
func checkInjected(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if got, want := containerNames(pod.Spec.InitContainers), []string{"meshdns-capture", "meshdns", "migrate"}; !slices.Equal(got, want) {
		t.Fatalf("init containers %v, want %v", got, want)
	}
	capture, sidecar := pod.Spec.InitContainers[0], pod.Spec.InitContainers[1]
	if capture.Image != "meshdns-capture:dev" || !slices.Equal(capture.Args[:2], []string{"capture", "install"}) ||
		!slices.Contains(capture.SecurityContext.Capabilities.Add, "NET_ADMIN") {
		t.Errorf("capture step %s %v %+v", capture.Image, capture.Args, capture.SecurityContext)
	}
	if sidecar.Image != "meshdns:dev" || sidecar.Args[0] != "serve" || sidecar.RestartPolicy == nil ||
		*sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways || sidecar.StartupProbe == nil ||
		*sidecar.SecurityContext.RunAsUser != 1337 {
		t.Errorf("sidecar %s %v restartPolicy %v startupProbe %v", sidecar.Image, sidecar.Args, sidecar.RestartPolicy, sidecar.StartupProbe)
	}
	if got := containerNames(pod.Spec.Containers); !slices.Equal(got, []string{"app"}) {
		t.Errorf("containers %v, want [app]", got)
	}
	var volumes []string
	for _, v := range pod.Spec.Volumes {
		volumes = append(volumes, v.Name)
	}
	if !slices.Equal(volumes, []string{"meshdns-kube-api-access"}) {
		t.Errorf("volumes %v, want [meshdns-kube-api-access]", volumes)
	}
}

// TestInjector registers deploy/injector.yaml's webhook entries with the real API server,
// calling a running meshdns injector, and creates pods through it.
func TestInjector(t *testing.T) {
	p := startInjector(t)
	registerInjector(t, p, "meshdns-injector-test", "inject-probe")
	const plain, enabled = "inject-plain", "inject-enabled"
	createNamespace(t, plain)
	if _, err := clients.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: enabled,
		Labels: map[string]string{"meshdns.io/inject": "enabled"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	create := func(t *testing.T, ns string, pod *corev1.Pod) *corev1.Pod {
		t.Helper()
		got, err := clients.CoreV1().Pods(ns).Create(ctx(t), pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// What etcd holds, not only what Create answered.
		if got, err = clients.CoreV1().Pods(ns).Get(ctx(t), got.Name, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	istio := map[string]string{"proxy.istio.io/config": "proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"true\"\n"}

	t.Run("annotated pod is injected", func(t *testing.T) {
		checkInjected(t, create(t, plain, testPod("annotated", map[string]string{"meshdns.io/inject": "true"})))
	})
	t.Run("plain pod is untouched", func(t *testing.T) {
		pod := create(t, plain, testPod("plain", nil))
		if got := containerNames(pod.Spec.InitContainers); !slices.Equal(got, []string{"migrate"}) || len(pod.Spec.Volumes) != 0 {
			t.Errorf("init containers %v volumes %v, want [migrate] and none", got, pod.Spec.Volumes)
		}
	})
	t.Run("pod of a labelled namespace is injected", func(t *testing.T) {
		checkInjected(t, create(t, enabled, testPod("by-namespace", nil)))
	})
	t.Run("pod of a labelled namespace that opts out is untouched", func(t *testing.T) {
		if pod := create(t, enabled, testPod("opted-out", map[string]string{"meshdns.io/inject": "false"})); injected(pod) {
			t.Errorf("injected: %v", containerNames(pod.Spec.InitContainers))
		}
	})
	t.Run("Istio DNS capture pod is injected", func(t *testing.T) {
		checkInjected(t, create(t, plain, testPod("istio", istio)))
	})
	t.Run("Istio pod without DNS capture is untouched", func(t *testing.T) {
		pod := create(t, plain, testPod("istio-no-capture", map[string]string{"proxy.istio.io/config": "proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"false\"\n"}))
		if injected(pod) {
			t.Errorf("injected: %v", containerNames(pod.Spec.InitContainers))
		}
	})
	t.Run("an injected pod's spec is not injected again", func(t *testing.T) {
		first := create(t, enabled, testPod("first", map[string]string{"meshdns.io/inject": "true"}))
		again := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "again", Annotations: first.Annotations}, Spec: first.Spec}
		again.Spec.NodeName = ""
		checkInjected(t, create(t, enabled, again))
	})
	t.Run("a pod run through the webhook twice is injected once", func(t *testing.T) {
		// A second configuration calls the injector again after the first has injected, as
		// a reinvocation does.
		registerConfig(t, p, "meshdns-injector-test-twice")
		before := p.admissions(t, "already-injected")
		eventually(t, "the API server calls the second configuration", func() error {
			if _, err := clients.CoreV1().Pods(plain).Create(ctx(t), testPod("twice-probe", map[string]string{"meshdns.io/inject": "true"}),
				metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				return err
			}
			if p.admissions(t, "already-injected") == before {
				return errNoAnswer
			}
			return nil
		})
		checkInjected(t, create(t, plain, testPod("twice", map[string]string{"meshdns.io/inject": "true"})))
	})
	t.Run("admissions are counted", func(t *testing.T) {
		for _, result := range []string{"injected", "already-injected", "not-selected"} {
			if n := p.admissions(t, result); n == 0 {
				t.Errorf("meshdns_injector_admissions_total{result=%q} is 0", result)
			}
		}
	})
	t.Run("a bad AdmissionReview gets an error, not a crash", func(t *testing.T) {
		c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool()}}}
		resp, err := c.Post("https://"+p.webhook+"/inject", "application/json", bytes.NewReader([]byte(`{"kind":"AdmissionReview"`)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(string(body), "AdmissionReview: not JSON of one") {
			t.Errorf("got %d %q, want 400 and the reason", resp.StatusCode, body)
		}
		if _, err := p.get("/healthz"); err != nil {
			t.Errorf("after the bad review: %v", err)
		}
		checkInjected(t, create(t, plain, testPod("after-bad-review", map[string]string{"meshdns.io/inject": "true"})))
	})
	t.Run("with the injector down pods go through uninjected", func(t *testing.T) {
		p.stop()
		pod := create(t, plain, testPod("injector-down", map[string]string{"meshdns.io/inject": "true"}))
		if got := containerNames(pod.Spec.InitContainers); !slices.Equal(got, []string{"migrate"}) {
			t.Errorf("init containers %v, want [migrate]", got)
		}
	})
}

// admissions is the injector's count of admissions with result.
func (p *injectorProc) admissions(t *testing.T, result string) float64 {
	t.Helper()
	metrics, err := p.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	prefix := `meshdns_injector_admissions_total{result="` + result + `"} `
	for line := range strings.SplitSeq(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", prefix)
	return 0
}

// TestInjectorAgents runs the injector with --controller and --controller-ca, as the chart's
// sidecar mode does when it points at a controller, and creates pods through the real API
// server: the stored pods carry an agent sidecar (a token for the audience meshdns and the
// controller's CA, no API token), and that sidecar, run with what the kubelet would give it,
// answers from a running controller.
func TestInjectorAgents(t *testing.T) {
	ca, cert, key := controllerTLS(t, t.TempDir())
	xds := freeAddr(t)
	ctl := cluster.Controller(t, "--kubeconfig", kubeconfig, "--xds-listen", xds, "--tls-cert", cert, "--tls-key", key)
	ctl.WaitReady(t)
	p := startInjector(t, "--controller="+xds, "--controller-ca="+ca)
	registerInjector(t, p, "meshdns-injector-agents-test", "inject-agents-probe")
	const ns, labelled = "inject-agents", "inject-agents-enabled"
	createNamespace(t, ns)
	if _, err := clients.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: labelled,
		Labels: map[string]string{"meshdns.io/inject": "enabled"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := clients.CoreV1().Services(ns).Create(ctx(t), service(ns, "api", corev1.ServiceSpec{ClusterIP: "10.96.7.53", Ports: httpPort()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	create := func(t *testing.T, ns string, pod *corev1.Pod) *corev1.Pod {
		t.Helper()
		if _, err := clients.CoreV1().ServiceAccounts(ns).Create(ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "shop-app"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod.Spec.ServiceAccountName = "shop-app"
		pod.Spec.AutomountServiceAccountToken = ptr.To(false)
		if _, err := clients.CoreV1().Pods(ns).Create(ctx(t), pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := clients.CoreV1().Pods(ns).Get(ctx(t), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkAgentInjected(t, got, xds, string(caPEM))
		return got
	}

	t.Run("annotated pod gets an agent", func(t *testing.T) {
		pod := create(t, ns, testPod("agent", map[string]string{"meshdns.io/inject": "true"}))
		sidecar := runSidecar(t, pod)
		sidecar.WaitReady(t)
		sidecar.Expect(t, "api.inject-agents.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.7.53")
		if n := sidecar.Metric(t, "meshdns_agent_controller_connected"); n != 1 {
			t.Errorf("meshdns_agent_controller_connected %v, want 1", n)
		}
	})
	t.Run("pod without annotations of a labelled namespace gets an agent", func(t *testing.T) {
		create(t, labelled, testPod("agent", nil))
	})
}

// checkAgentInjected fails unless the stored pod has the capture step and an agent sidecar of
// the controller at xds, with a token for the audience meshdns and the CA caPEM (from the
// pod's annotation), and nothing that reaches the API server.
func checkAgentInjected(t *testing.T, pod *corev1.Pod, xds, caPEM string) {
	t.Helper()
	if got, want := containerNames(pod.Spec.InitContainers), []string{"meshdns-capture", "meshdns", "migrate"}; !slices.Equal(got, want) {
		t.Fatalf("init containers %v, want %v", got, want)
	}
	sidecar := pod.Spec.InitContainers[1]
	for _, want := range []string{"--controller=" + xds, "--controller-ca=/var/run/secrets/meshdns/ca.crt", "--token-file=/var/run/secrets/meshdns/token"} {
		if !slices.Contains(sidecar.Args, want) {
			t.Errorf("sidecar arguments %q lack %s", sidecar.Args, want)
		}
	}
	for _, m := range sidecar.VolumeMounts {
		if strings.HasPrefix(m.MountPath, "/var/run/secrets/kubernetes.io") {
			t.Errorf("the sidecar mounts %s at %s: an agent needs no API token", m.Name, m.MountPath)
		}
	}
	var volumes []string
	for _, v := range pod.Spec.Volumes {
		volumes = append(volumes, v.Name)
	}
	if !slices.Equal(volumes, []string{"meshdns-agent", "meshdns-state"}) {
		t.Fatalf("volumes %v, want [meshdns-agent meshdns-state]", volumes)
	}
	token := pod.Spec.Volumes[0].Projected.Sources[0].ServiceAccountToken
	if token == nil || token.Audience != "meshdns" {
		t.Errorf("agent volume's first source %+v, want a token for the audience meshdns", pod.Spec.Volumes[0].Projected.Sources[0])
	}
	if got := pod.Annotations["meshdns.io/controller-ca"]; got != caPEM {
		t.Errorf("annotation meshdns.io/controller-ca %q, want the CA of --controller-ca", got)
	}
}

// runSidecar runs the stored pod's meshdns sidecar as the kubelet would run it: each volume
// it mounts made from the API server in a directory standing for its mount path (a token of
// the pod's service account requested for the projected audience, annotations through the
// downward API, ConfigMap keys, empty directories), and $(VAR) in its arguments expanded from
// its environment, the pod IP being 127.0.0.1. Its --listen and --admin give way to the
// harness's addresses. The image's entrypoint is the harness's meshdns, /meshdns-agent its
// -tags nokube build.
func runSidecar(t *testing.T, pod *corev1.Pod) *harness.Meshdns {
	t.Helper()
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == "meshdns" })
	if i < 0 {
		t.Fatal("no meshdns sidecar")
	}
	c := pod.Spec.InitContainers[i]
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = pod.Namespace
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			env[e.Name] = "127.0.0.1"
		default:
			t.Fatalf("env %s: %+v", e.Name, e.ValueFrom)
		}
	}
	var paths []string // mount path, directory, ...
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			t.Fatalf("mount of volume %s, which the pod lacks", m.Name)
		}
		paths = append(paths, m.MountPath, materialize(t, pod, pod.Spec.Volumes[i]))
	}
	var args []string
	for _, a := range c.Args[1:] {
		if strings.HasPrefix(a, "--listen=") || strings.HasPrefix(a, "--admin=") {
			continue
		}
		for k, v := range env {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		args = append(args, strings.NewReplacer(paths...).Replace(a))
	}
	bin := cluster.Binary()
	switch {
	case slices.Equal(c.Command, []string{inject.AgentBinary}):
		bin = cluster.AgentBinary(t)
	case c.Command != nil:
		t.Fatalf("sidecar command %q, want the image's entrypoint or %s", c.Command, inject.AgentBinary)
	}
	return cluster.Run(t, bin, args...)
}

// materialize writes the files of volume v of pod into a new directory, as the kubelet does.
func materialize(t *testing.T, pod *corev1.Pod, v corev1.Volume) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	switch {
	case v.EmptyDir != nil:
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			switch {
			case s.ServiceAccountToken != nil:
				tr, err := clients.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx(t), pod.Spec.ServiceAccountName, &authv1.TokenRequest{
					Spec: authv1.TokenRequestSpec{Audiences: []string{s.ServiceAccountToken.Audience}, ExpirationSeconds: s.ServiceAccountToken.ExpirationSeconds}},
					metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				write(s.ServiceAccountToken.Path, []byte(tr.Status.Token))
			case s.DownwardAPI != nil:
				for _, item := range s.DownwardAPI.Items {
					key, ok := strings.CutPrefix(item.FieldRef.FieldPath, "metadata.annotations['")
					if !ok {
						t.Fatalf("downward API field %s", item.FieldRef.FieldPath)
					}
					write(item.Path, []byte(pod.Annotations[strings.TrimSuffix(key, "']")]))
				}
			case s.ConfigMap != nil:
				cm, err := clients.CoreV1().ConfigMaps(pod.Namespace).Get(ctx(t), s.ConfigMap.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for _, item := range s.ConfigMap.Items {
					write(item.Path, []byte(cm.Data[item.Key]))
				}
			default:
				t.Fatalf("volume %s: projection %+v", v.Name, s)
			}
		}
	default:
		t.Fatalf("volume %s: %+v", v.Name, v.VolumeSource)
	}
	return dir
}
