package inject

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Operation is one JSONPatch (RFC 6902) operation.
type Operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// HasInjected reports whether pod holds a container or volume the injector adds: such a pod
// is left as it is (a second call of the webhook, or a pod spec copied from an injected pod).
func HasInjected(pod *corev1.Pod) bool {
	names := func(cs []corev1.Container) bool {
		return slices.ContainsFunc(cs, func(c corev1.Container) bool { return c.Name == CaptureName || c.Name == SidecarName })
	}
	return names(pod.Spec.InitContainers) || names(pod.Spec.Containers) ||
		slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
			return v.Name == VolumeName || v.Name == AgentVolumeName || v.Name == StateVolumeName
		})
}

// Patch returns the operations that inject c's containers and volumes into pod: the capture
// step and the sidecar become the first init containers, in that order, before the pod's own.
// An agent sidecar given the controller's CA by --controller-ca also gets it in an
// annotation. A pod already injected gets no operation.
func (c Config) Patch(pod *corev1.Pod) []Operation {
	if HasInjected(pod) {
		return nil
	}
	var ops []Operation
	injected := c.Containers()
	if len(pod.Spec.InitContainers) == 0 {
		ops = append(ops, Operation{Op: "add", Path: "/spec/initContainers", Value: injected})
	} else {
		// Each add at index i shifts what was there; adding in order keeps the injected order.
		for i, ctr := range injected {
			ops = append(ops, Operation{Op: "add", Path: "/spec/initContainers/" + strconv.Itoa(i), Value: ctr})
		}
	}
	if pod.Spec.ServiceAccountName == "" {
		// The token volume needs the name. The API server's ServiceAccount admission sets it
		// before webhooks run; where that plugin is off, name what it would.
		sa := pod.Spec.DeprecatedServiceAccount
		if sa == "" {
			sa = "default"
		}
		ops = append(ops, Operation{Op: "add", Path: "/spec/serviceAccountName", Value: sa})
	}
	volumes := c.Volumes()
	if len(pod.Spec.Volumes) == 0 {
		ops = append(ops, Operation{Op: "add", Path: "/spec/volumes", Value: volumes})
	} else {
		for _, v := range volumes {
			ops = append(ops, Operation{Op: "add", Path: "/spec/volumes/-", Value: v})
		}
	}
	if c.Controller != "" && c.ControllerCA != "" {
		ops = append(ops, c.caAnnotation(pod))
	}
	return ops
}

// caAnnotation adds the controller's CA to the pod's annotations (replacing any value the pod
// had: the injector's CA is the one to trust).
func (c Config) caAnnotation(pod *corev1.Pod) Operation {
	if pod.Annotations == nil {
		return Operation{Op: "add", Path: "/metadata/annotations", Value: map[string]string{CAAnnotation: c.ControllerCA}}
	}
	// RFC 6901: "/" in a member name is written "~1".
	return Operation{Op: "add", Path: "/metadata/annotations/" + strings.ReplaceAll(CAAnnotation, "/", "~1"), Value: c.ControllerCA}
}

func oneLine(err error) string { return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ") }
