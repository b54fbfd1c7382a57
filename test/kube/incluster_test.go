package kube_test

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshdns/meshdns/test/kube/harness"
)

// inPod mounts a pod's service account files (token, CA, namespace) at their usual place, in a
// mount namespace of the process alone, then runs the rest of its arguments.
const inPod = `set -e
src=$1; shift
mount -t tmpfs meshdns-test /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$src"/* /run/secrets/kubernetes.io/serviceaccount/
exec "$@"
`

// TestInCluster runs meshdns with neither --registry nor --kubeconfig, as in a pod: it finds
// the API server through KUBERNETES_SERVICE_HOST/PORT and the mounted service account (token,
// CA), and takes the Lease namespace from the service account's namespace file.
func TestInCluster(t *testing.T) {
	if os.Getuid() != 0 {
		const why = "needs root, for a mount namespace (scripts/test.sh runs as root)"
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	const ns = "in-cluster"
	createNamespace(t, ns)
	if _, err := clients.CoreV1().Services(ns).Create(ctx(t), service(ns, "api", corev1.ServiceSpec{ClusterIP: "10.96.7.1", Ports: httpPort()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := t.TempDir()
	for name, data := range map[string][]byte{"token": []byte(harness.InClusterToken), "ca.crt": restConfig.CAData, "namespace": []byte(ns)} {
		if err := os.WriteFile(filepath.Join(sa, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(restConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	m := cluster.RunWrapped(t, []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", inPod, "sh", sa},
		[]string{"KUBERNETES_SERVICE_HOST=" + u.Hostname(), "KUBERNETES_SERVICE_PORT=" + u.Port()},
		cluster.Binary())
	m.WaitReady(t)
	m.Expect(t, "api.in-cluster.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.7.1")
	eventually(t, "the VIP writer's Lease in the pod's namespace", func() error {
		_, err := clients.CoordinationV1().Leases(ns).Get(ctx(t), "meshdns-vip-writer", metav1.GetOptions{})
		return err
	})
}
