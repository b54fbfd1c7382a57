package inject

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the computed patches")

func testConfig() Config {
	c := DefaultConfig()
	c.Image = "registry.example/meshdns:1.0"
	return c
}

// agentConfig is testConfig making the sidecar an agent of a controller, whose CA (a fixed
// test CA, testdata/controller-ca.crt) each pod gets in an annotation.
func agentConfig(t *testing.T) Config {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join("testdata", "controller-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig()
	c.Controller, c.ControllerCA = "meshdns-controller.meshdns-system.svc:15012", string(ca)
	return c
}

// applyPatch applies c's patch for pod as the API server does and returns the pod it stores.
func applyPatch(t *testing.T, c Config, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	ops := c.Patch(pod)
	doc, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 {
		return pod
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(doc)
	if err != nil {
		t.Fatalf("applying %s: %v", raw, err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func volumeNames(vs []corev1.Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

// TestPatch applies the patch to pods of every shape: the injected init containers come
// first, capture before the sidecar, and the pod's own containers and volumes stay as they
// were; a second application changes nothing.
func TestPatch(t *testing.T) {
	app := []corev1.Container{{Name: "app", Image: "app"}}
	agent := agentConfig(t)
	configMapAgent := testConfig()
	configMapAgent.Controller, configMapAgent.ControllerCAConfigMap = agent.Controller, "meshdns-ca"
	for _, tc := range []struct {
		name        string
		cfg         *Config // nil: testConfig
		annotations map[string]string
		spec        corev1.PodSpec
		wantInit    []string
		wantVolumes []string
		wantAccount string
		wantCA      string // the pod's CAAnnotation
	}{
		{name: "no init containers, no volumes", spec: corev1.PodSpec{Containers: app},
			wantInit: []string{CaptureName, SidecarName}, wantVolumes: []string{VolumeName}, wantAccount: "default"},
		{name: "empty lists", spec: corev1.PodSpec{Containers: app, InitContainers: []corev1.Container{}, Volumes: []corev1.Volume{}},
			wantInit: []string{CaptureName, SidecarName}, wantVolumes: []string{VolumeName}, wantAccount: "default"},
		{name: "deprecated service account field", spec: corev1.PodSpec{Containers: app, DeprecatedServiceAccount: "legacy"},
			wantInit: []string{CaptureName, SidecarName}, wantVolumes: []string{VolumeName}, wantAccount: "legacy"},
		{name: "own init containers, volumes and service account",
			spec: corev1.PodSpec{Containers: app, ServiceAccountName: "web", InitContainers: []corev1.Container{{Name: "migrate"}, {Name: "warm-cache"}},
				Volumes: []corev1.Volume{{Name: "data"}}},
			wantInit: []string{CaptureName, SidecarName, "migrate", "warm-cache"}, wantVolumes: []string{"data", VolumeName}, wantAccount: "web"},
		{name: "agent, no annotations, no volumes", cfg: &agent, spec: corev1.PodSpec{Containers: app},
			wantInit: []string{CaptureName, SidecarName}, wantVolumes: []string{AgentVolumeName, StateVolumeName}, wantAccount: "default",
			wantCA: agent.ControllerCA},
		{name: "agent, own annotations and volumes", cfg: &agent, annotations: map[string]string{"meshdns.io/inject": "true", CAAnnotation: "forged"},
			spec:     corev1.PodSpec{Containers: app, ServiceAccountName: "web", Volumes: []corev1.Volume{{Name: "data"}}},
			wantInit: []string{CaptureName, SidecarName}, wantVolumes: []string{"data", AgentVolumeName, StateVolumeName}, wantAccount: "web",
			wantCA: agent.ControllerCA},
		{name: "agent, CA from a ConfigMap", cfg: &configMapAgent, spec: corev1.PodSpec{Containers: app},
			wantInit: []string{CaptureName, SidecarName}, wantVolumes: []string{AgentVolumeName, StateVolumeName}, wantAccount: "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			if tc.cfg != nil {
				c = *tc.cfg
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: tc.annotations}, Spec: tc.spec}
			got := applyPatch(t, c, pod)
			if n := names(got.Spec.InitContainers); !slices.Equal(n, tc.wantInit) {
				t.Errorf("init containers %v, want %v", n, tc.wantInit)
			}
			if n := volumeNames(got.Spec.Volumes); !slices.Equal(n, tc.wantVolumes) {
				t.Errorf("volumes %v, want %v", n, tc.wantVolumes)
			}
			if n := names(got.Spec.Containers); !slices.Equal(n, []string{"app"}) {
				t.Errorf("containers %v, want [app]", n)
			}
			if got.Spec.ServiceAccountName != tc.wantAccount {
				t.Errorf("serviceAccountName %q, want %q", got.Spec.ServiceAccountName, tc.wantAccount)
			}
			if ca, ok := got.Annotations[CAAnnotation]; ca != tc.wantCA || ok != (tc.wantCA != "") {
				t.Errorf("annotation %s %q, want %q", CAAnnotation, ca, tc.wantCA)
			}
			for k, v := range tc.annotations {
				if k != CAAnnotation && got.Annotations[k] != v {
					t.Errorf("annotation %s %q, want the pod's %q", k, got.Annotations[k], v)
				}
			}
			if ops := c.Patch(got); len(ops) != 0 {
				t.Errorf("patch of the injected pod: %+v, want none", ops)
			}
		})
	}
}

// TestPatchGolden pins the whole patch for a pod with an init container and a volume:
// containers, arguments, probes, security contexts and the token volume.
// go test -run TestPatchGolden -update rewrites it.
func TestPatchGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"default", func(*Config) {}},
		{"custom", func(c *Config) {
			c.CaptureImage, c.ExemptUID, c.ProxyPort = "registry.example/meshdns-capture:1.0", 2000, 5353
			c.SidecarAdmin = "[$(MESHDNS_POD_IP)]:9054"
			c.SidecarArgs = []string{"--watch-pods=false", "--log-level=debug"}
			c.CaptureArgs = []string{"--vips"}
			c.SidecarCPU, c.SidecarMemoryLimit = "", ""
		}},
		{"agent", func(c *Config) { *c = agentConfig(t) }},
		{"agent-configmap", func(c *Config) {
			c.Controller, c.ControllerCAConfigMap, c.TokenAudience = "10.0.0.1:15012,10.0.0.2:15012", "meshdns-ca", "dns.example"
			c.SidecarArgs = []string{"--log-level=debug"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.cfg(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app"}},
				InitContainers: []corev1.Container{{Name: "migrate"}}, Volumes: []corev1.Volume{{Name: "data"}}}}
			got, err := json.MarshalIndent(c.Patch(pod), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "patch_"+tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -run TestPatchGolden -update creates it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (go test -run TestPatchGolden -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}
