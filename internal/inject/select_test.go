package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSelect(t *testing.T) {
	const capture = "proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"true\"\n"
	for _, tc := range []struct {
		name             string
		annotations      map[string]string
		namespaceEnabled bool
		hostNetwork      bool
		injected         bool
		want             Result
		warning          string // a substring of the one warning expected
	}{
		{name: "nothing", want: NotSelected},
		{name: "annotated", annotations: map[string]string{InjectAnnotation: "true"}, want: Injected},
		{name: "annotated false", annotations: map[string]string{InjectAnnotation: "false"}, want: NotSelected},
		{name: "namespace", namespaceEnabled: true, want: Injected},
		{name: "namespace, pod says false", namespaceEnabled: true, annotations: map[string]string{InjectAnnotation: "false"}, want: NotSelected},
		{name: "namespace, Istio capture, pod says false", namespaceEnabled: true,
			annotations: map[string]string{InjectAnnotation: "false", IstioProxyConfig: capture}, want: NotSelected},
		{name: "misspelt value", annotations: map[string]string{InjectAnnotation: "yes"}, want: NotSelected, warning: `"yes" is neither`},
		{name: "misspelt value in an enabled namespace", namespaceEnabled: true,
			annotations: map[string]string{InjectAnnotation: "True"}, want: Injected, warning: `"True" is neither`},
		{name: "Istio DNS capture", annotations: map[string]string{IstioProxyConfig: capture}, want: Injected},
		{name: "Istio DNS capture as JSON", annotations: map[string]string{IstioProxyConfig: `{"proxyMetadata":{"ISTIO_META_DNS_CAPTURE":"true"}}`}, want: Injected},
		{name: "Istio DNS capture with other settings", annotations: map[string]string{IstioProxyConfig: "holdApplicationUntilProxyStarts: true\nproxyMetadata:\n  ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"\n  ISTIO_META_DNS_CAPTURE: \"true\"\n"}, want: Injected},
		{name: "Istio DNS capture off", annotations: map[string]string{IstioProxyConfig: "proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"false\"\n"}, want: NotSelected},
		{name: "Istio config without DNS capture", annotations: map[string]string{IstioProxyConfig: "holdApplicationUntilProxyStarts: true\n"}, want: NotSelected},
		{name: "Istio DNS capture not a string", annotations: map[string]string{IstioProxyConfig: "proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: true\n"},
			want: NotSelected, warning: "not a boolean string"},
		{name: "Istio config unreadable", annotations: map[string]string{IstioProxyConfig: "proxyMetadata: [\n"}, want: NotSelected, warning: "not YAML or JSON"},
		{name: "Istio DNS capture, pod says false", annotations: map[string]string{InjectAnnotation: "false", IstioProxyConfig: capture}, want: NotSelected},
		{name: "annotated, host network", annotations: map[string]string{InjectAnnotation: "true"}, hostNetwork: true, want: HostNetwork, warning: "hostNetwork"},
		{name: "namespace, host network", namespaceEnabled: true, hostNetwork: true, want: HostNetwork, warning: "hostNetwork"},
		{name: "host network, not selected", hostNetwork: true, want: NotSelected},
		{name: "annotated, already injected", annotations: map[string]string{InjectAnnotation: "true"}, injected: true, want: AlreadyInjected},
		{name: "namespace, already injected", namespaceEnabled: true, injected: true, want: AlreadyInjected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tc.annotations},
				Spec: corev1.PodSpec{HostNetwork: tc.hostNetwork, Containers: []corev1.Container{{Name: "app"}}}}
			if tc.injected {
				pod.Spec.InitContainers = testConfig().Containers()
			}
			got, warnings := Select(pod, tc.namespaceEnabled)
			if got != tc.want {
				t.Errorf("result %s, want %s", got, tc.want)
			}
			switch {
			case tc.warning == "" && len(warnings) > 0:
				t.Errorf("warnings %q, want none", warnings)
			case tc.warning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.warning)):
				t.Errorf("warnings %q, want one with %q", warnings, tc.warning)
			}
		})
	}
}

// TestHasInjected: any one of the injected names marks a pod, so a pod edited by hand or
// copied from an injected one is never given a second copy.
func TestHasInjected(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want bool
	}{
		{"plain", corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}, InitContainers: []corev1.Container{{Name: "migrate"}}}, false},
		{"capture only", corev1.PodSpec{InitContainers: []corev1.Container{{Name: CaptureName}}}, true},
		{"sidecar only", corev1.PodSpec{InitContainers: []corev1.Container{{Name: SidecarName}}}, true},
		{"sidecar as a regular container", corev1.PodSpec{Containers: []corev1.Container{{Name: SidecarName}}}, true},
		{"volume only", corev1.PodSpec{Volumes: []corev1.Volume{{Name: VolumeName}}}, true},
		{"agent volume only", corev1.PodSpec{Volumes: []corev1.Volume{{Name: AgentVolumeName}}}, true},
		{"agent state only", corev1.PodSpec{Volumes: []corev1.Volume{{Name: StateVolumeName}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HasInjected(&corev1.Pod{Spec: tc.spec}); got != tc.want {
				t.Errorf("HasInjected %v, want %v", got, tc.want)
			}
		})
	}
}
