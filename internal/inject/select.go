package inject

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

// Annotations and labels that select pods (docs/injection.md, Which pods).
const (
	// InjectAnnotation on a pod: "true" injects it, "false" keeps it out of an enabled namespace.
	InjectAnnotation = "meshdns.io/inject"
	// NamespaceLabel=NamespaceEnabled on a namespace injects its pods; the webhook learns it
	// from the path the API server calls (the MutatingWebhookConfiguration's namespaceSelector).
	NamespaceLabel   = "meshdns.io/inject"
	NamespaceEnabled = "enabled"
	// IstioProxyConfig is Istio's per-pod ProxyConfig; its proxyMetadata
	// ISTIO_META_DNS_CAPTURE "true" asks for DNS capture, which meshdns then provides.
	IstioProxyConfig = "proxy.istio.io/config"
	istioDNSCapture  = "ISTIO_META_DNS_CAPTURE"
)

// Result is what the webhook did with a pod, the label of its admission counter.
type Result string

const (
	Injected        Result = "injected"
	AlreadyInjected Result = "already-injected" // an injected container is there: unchanged
	NotSelected     Result = "not-selected"
	HostNetwork     Result = "host-network" // capture would change the node's rules
	Invalid         Result = "invalid"      // a request or pod that could not be read
)

// Results lists every Result, for the counter's series.
var Results = []Result{Injected, AlreadyInjected, NotSelected, HostNetwork, Invalid}

// Select decides whether pod gets meshdns; namespaceEnabled says the pod's namespace has the
// label. Warnings are for the pod's author (an annotation that cannot be read) and do not
// stop the decision. The pod's own "false" wins over everything, then its "true", then the
// namespace, then Istio's DNS capture setting.
func Select(pod *corev1.Pod, namespaceEnabled bool) (Result, []string) {
	var warnings []string
	switch v, ok := pod.Annotations[InjectAnnotation]; {
	case !ok:
	case v == "false":
		return NotSelected, nil
	case v == "true":
		return selected(pod)
	default:
		warnings = append(warnings, fmt.Sprintf("annotation %s: %q is neither \"true\" nor \"false\"; ignored", InjectAnnotation, v))
	}
	if namespaceEnabled {
		r, w := selected(pod)
		return r, append(warnings, w...)
	}
	capture, err := istioDNSCaptureOn(pod.Annotations)
	if err != nil {
		warnings = append(warnings, err.Error())
	}
	if capture {
		r, w := selected(pod)
		return r, append(warnings, w...)
	}
	return NotSelected, warnings
}

// selected is the result for a pod that asks for meshdns.
func selected(pod *corev1.Pod) (Result, []string) {
	switch {
	case HasInjected(pod):
		return AlreadyInjected, nil
	case pod.Spec.HostNetwork:
		return HostNetwork, []string{"meshdns not injected: the pod uses the node's network (hostNetwork), whose DNS capture would change the node's rules"}
	}
	return Injected, nil
}

// istioDNSCaptureOn reads Istio's ProxyConfig annotation (YAML or JSON) for
// proxyMetadata.ISTIO_META_DNS_CAPTURE, a boolean as Istio's agent parses it.
func istioDNSCaptureOn(annotations map[string]string) (bool, error) {
	text, ok := annotations[IstioProxyConfig]
	if !ok {
		return false, nil
	}
	var cfg struct {
		ProxyMetadata map[string]any `yaml:"proxyMetadata"`
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		return false, fmt.Errorf("annotation %s: not YAML or JSON (%v); ignored", IstioProxyConfig, oneLine(err))
	}
	v, ok := cfg.ProxyMetadata[istioDNSCapture]
	if !ok {
		return false, nil
	}
	s, isString := v.(string)
	on, err := strconv.ParseBool(s)
	if !isString || err != nil {
		return false, fmt.Errorf("annotation %s: proxyMetadata.%s is %v, not a boolean string; ignored", IstioProxyConfig, istioDNSCapture, v)
	}
	return on, nil
}
