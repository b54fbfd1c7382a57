package kube_test

import (
	"bytes"
	"crypto/tls"
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

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/meshdns/meshdns/internal/testutil"
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
// they must be ones it accepts), its addresses and key pair replaced by the test's.
func startInjector(t *testing.T) *injectorProc {
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

// registerInjector registers deploy/injector.yaml's MutatingWebhookConfiguration with the API
// server, each entry calling p at its path instead of the Service, trusting the test's CA,
// and waits until the API server calls it.
func registerInjector(t *testing.T, p *injectorProc) {
	t.Helper()
	registerConfig(t, p, "meshdns-injector-test")
	createNamespace(t, "inject-probe")
	eventually(t, "the API server calls the injector", func() error {
		pod, err := clients.CoreV1().Pods("inject-probe").Create(ctx(t), testPod("probe", map[string]string{"meshdns.io/inject": "true"}),
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
	registerInjector(t, p)
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
