package inject

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// serviceAccountDir is where serve looks for the pod's service account (internal/config's
// serviceAccountDir): the sidecar's own token volume is mounted there.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// tokenExpiry is the token's lifetime in seconds, as the kubelet's own service account volume
// asks for it (the kubelet renews it well before).
const tokenExpiry = 3607

// An agent sidecar's files: its token and the controller's CA in one volume, its saved state
// (--state-dir) in an emptyDir, so that a restarted sidecar answers at once. The token lives
// an hour (the kubelet renews it at 80%); the agent checks it only when it connects.
const (
	agentDir         = "/var/run/secrets/meshdns"
	tokenFile        = "token"
	caFile           = "ca.crt"
	stateDir         = "/var/lib/meshdns"
	podNamespaceEnv  = "MESHDNS_POD_NAMESPACE"
	agentTokenExpiry = 3600
)

// AgentBinary is where the image holds meshdns built for agents (-tags nokube: no Kubernetes
// client code, a third smaller and fewer pages mapped per sidecar); an agent sidecar runs it.
// A sidecar that watches the API server itself runs the image's entrypoint, /meshdns.
const AgentBinary = "/meshdns-agent"

// Probe timings of the sidecar. The startup probe holds back the pod's later init containers
// until meshdns answers from a complete table; it allows 5 minutes for the first sync.
const (
	startupPeriod    = 1
	startupFailures  = 300
	readinessPeriod  = 10
	livenessPeriod   = 10
	livenessFailures = 3
)

// Containers returns the init containers to inject, in their order: the capture step, then
// meshdns as a native sidecar. c must be valid.
func (c Config) Containers() []corev1.Container {
	return []corev1.Container{c.capture(), c.sidecar()}
}

// capture installs the netfilter rules (meshdns capture install, docs/capture.md) as root
// with NET_ADMIN and NET_RAW only, and exits.
func (c Config) capture() corev1.Container {
	image := c.CaptureImage
	if image == "" {
		image = c.Image
	}
	id := strconv.FormatInt(c.ExemptUID, 10)
	args := []string{"capture", "install", "--proxy-port=" + strconv.Itoa(c.ProxyPort), "--proxy-uid=" + id, "--proxy-gid=" + id}
	return corev1.Container{
		Name: CaptureName, Image: image, Args: append(args, c.CaptureArgs...),
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr.To[int64](0), RunAsGroup: ptr.To[int64](0), RunAsNonRoot: ptr.To(false),
			AllowPrivilegeEscalation: ptr.To(false),
			// iptables takes its lock in /run/xtables.lock.
			ReadOnlyRootFilesystem: ptr.To(false),
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"}},
		},
	}
}

// sidecar runs meshdns serve for the rest of the pod's life (restartPolicy Always makes an
// init container a native sidecar), as the exempt uid: with the Kubernetes source on its own
// service account token, or as an agent of the controller.
func (c Config) sidecar() corev1.Container {
	port, _ := c.adminPort() // valid: checked by Validate
	args := []string{"serve", fmt.Sprintf("--listen=127.0.0.1:%d", c.ProxyPort), "--admin=" + c.SidecarAdmin}
	env := []corev1.EnvVar{fieldEnv(PodIPEnv, "status.podIP")}
	mounts := []corev1.VolumeMount{{Name: VolumeName, MountPath: serviceAccountDir, ReadOnly: true}}
	var command []string
	if c.Controller != "" {
		command = []string{AgentBinary}
		// The namespace the agent asks the controller for must be its token's; the pod's
		// resolv.conf need not name it (dnsPolicy None).
		args = append(args, "--controller="+c.Controller, "--controller-ca="+agentDir+"/"+caFile,
			"--token-file="+agentDir+"/"+tokenFile, "--namespace=$("+podNamespaceEnv+")", "--state-dir="+stateDir)
		env = append(env, fieldEnv(podNamespaceEnv, "metadata.namespace"))
		mounts = []corev1.VolumeMount{{Name: AgentVolumeName, MountPath: agentDir, ReadOnly: true},
			{Name: StateVolumeName, MountPath: stateDir}}
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromInt32(int32(port))}}, PeriodSeconds: period, FailureThreshold: failures}
	}
	return corev1.Container{
		Name: SidecarName, Image: c.Image, Command: command, Args: append(args, c.SidecarArgs...),
		RestartPolicy:  ptr.To(corev1.ContainerRestartPolicyAlways),
		Env:            env,
		StartupProbe:   probe("/readyz", startupPeriod, startupFailures),
		ReadinessProbe: probe("/readyz", readinessPeriod, 3),
		LivenessProbe:  probe("/healthz", livenessPeriod, livenessFailures),
		Resources:      c.resources(),
		VolumeMounts:   mounts,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr.To(c.ExemptUID), RunAsGroup: ptr.To(c.ExemptUID), RunAsNonRoot: ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

func (c Config) resources() corev1.ResourceRequirements {
	var r corev1.ResourceRequirements
	set := func(l *corev1.ResourceList, name corev1.ResourceName, q string) {
		if q == "" {
			return
		}
		if *l == nil {
			*l = corev1.ResourceList{}
		}
		(*l)[name] = resource.MustParse(q) // valid: checked by Validate
	}
	set(&r.Requests, corev1.ResourceCPU, c.SidecarCPU)
	set(&r.Requests, corev1.ResourceMemory, c.SidecarMemory)
	set(&r.Limits, corev1.ResourceMemory, c.SidecarMemoryLimit)
	return r
}

// Volumes returns the volumes of the sidecar: its service account volume, or an agent's
// token and CA volume and its state.
func (c Config) Volumes() []corev1.Volume {
	if c.Controller == "" {
		return []corev1.Volume{apiAccessVolume()}
	}
	return []corev1.Volume{c.agentVolume(),
		{Name: StateVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
}

// apiAccessVolume is the sidecar's service account volume: what the kubelet mounts into a
// pod's own containers (a bound token, the cluster's CA, the namespace). The sidecar gets its
// own because the API server mounts the pod's only into the containers present before
// webhooks run, and not at all with automountServiceAccountToken: false.
func apiAccessVolume() corev1.Volume {
	return corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o444),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](tokenExpiry)}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}

// agentVolume holds what an agent presents and trusts: a token of the pod's service account
// for the controller's audience only (useless against the API server, rotated by the kubelet
// and read again by the agent at each reconnection), and the controller's CA, from the pod's
// annotation or a ConfigMap of its namespace.
func (c Config) agentVolume() corev1.Volume {
	ca := corev1.VolumeProjection{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: caFile,
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['" + CAAnnotation + "']"}}}}}
	if c.ControllerCAConfigMap != "" {
		ca = corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: c.ControllerCAConfigMap},
			Items:                []corev1.KeyToPath{{Key: caFile, Path: caFile}}}}
	}
	return corev1.Volume{Name: AgentVolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o444),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: c.TokenAudience, Path: tokenFile,
				ExpirationSeconds: ptr.To[int64](agentTokenExpiry)}},
			ca,
		},
	}}}
}
