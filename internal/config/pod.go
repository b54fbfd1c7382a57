package config

import (
	"os"
	"path/filepath"
	"strings"
)

// serviceAccountDir is where a pod's service account (token, CA, namespace) is mounted.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Pod is what meshdns learns from the pod it may run in. DetectPod reads it once, before
// Validate, so that Validate itself reads neither files nor the environment.
type Pod struct {
	// InCluster: the API server's address is in the environment and a service account token
	// is mounted, as client-go's in-cluster configuration needs.
	InCluster bool
	// Namespace is the pod's namespace, from its service account; "" outside a pod.
	Namespace string
	// NodeName is the environment's NODE_NAME (the downward API's spec.nodeName, as the
	// node agent's DaemonSet sets it).
	NodeName string
}

// DetectPod reads the environment and the service account mount.
func DetectPod() Pod { return detectPod(os.Getenv, serviceAccountDir) }

func detectPod(getenv func(string) string, saDir string) Pod {
	p := Pod{NodeName: getenv("NODE_NAME")}
	if getenv("KUBERNETES_SERVICE_HOST") != "" && getenv("KUBERNETES_SERVICE_PORT") != "" {
		_, err := os.Stat(filepath.Join(saDir, "token"))
		p.InCluster = err == nil
	}
	if b, err := os.ReadFile(filepath.Join(saDir, "namespace")); err == nil {
		p.Namespace = strings.TrimSpace(string(b))
	}
	return p
}
