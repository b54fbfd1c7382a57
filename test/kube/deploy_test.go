package kube_test

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshdns/meshdns/test/kube/harness"
)

// kubeconfigFor writes a kubeconfig authenticating as user (a client certificate: the API
// server takes its name as the user name, with no groups beyond system:authenticated).
func kubeconfigFor(t *testing.T, user string) string {
	t.Helper()
	path, err := cluster.WriteKubeconfig(t.TempDir(), envtest.User{Name: user})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDeployManifests applies deploy/ (RBAC, Deployments, Services, the injector's webhook
// configuration) and runs meshdns with the
// identity of its service account: the roles must let it sync, answer, win the Lease and
// write VIPs to ServiceEntry status. The same
// meshdns as a user without the binding never becomes ready, so the test measures the
// ClusterRole and not the test's own rights.
func TestDeployManifests(t *testing.T) {
	apply(t, readManifests(t, filepath.Join(repoRoot, "deploy")))
	// Its Service has no pods here: the webhook must not outlive the test (TestInjector
	// registers it with a reachable URL).
	t.Cleanup(func() {
		clients.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx(t), "meshdns-injector", metav1.DeleteOptions{})
	})
	const ns = "deployed"
	createNamespace(t, ns)
	if _, err := clients.CoreV1().Services(ns).Create(ctx(t), service(ns, "api", corev1.ServiceSpec{ClusterIP: "10.96.5.1", Ports: httpPort()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(serviceEntriesV1).Namespace(ns).Create(ctx(t), harness.Object(t, harness.StaticServiceEntry(ns, "ext", "ext.deploy-test.example", "203.0.113.80")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if _, err := dyn.Resource(serviceEntriesV1).Namespace(ns).Create(ctx(t), harness.Object(t, dnsServiceEntry(ns, "db", "db.deploy-test.example")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The Lease is in meshdns-system, the default outside a pod, where the Role grants it.
	m := startMeshdns(t, "--kubeconfig", kubeconfigFor(t, "system:serviceaccount:meshdns-system:meshdns"))
	m.WaitReady(t)
	m.Expect(t, "api.deployed.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.5.1")
	m.Expect(t, "ext.deploy-test.example", dns.TypeA, "NOERROR", "203.0.113.80")
	v4, _ := waitStatus(t, ns, "db", "db.deploy-test.example")
	m.Expect(t, "db.deploy-test.example", dns.TypeA, "NOERROR", v4)

	// The controller's rights (deploy/controller.yaml) suffice to watch and to review the
	// token of the example agent's service account (deploy/agent-example.yaml).
	ctl := runController(t, newPKI(t), kubeconfigFor(t, "system:serviceaccount:meshdns-system:meshdns-controller"),
		"--leader-elect-namespace", "meshdns-system", "--full-view", "meshdns-system/meshdns-node-agent-ctl")
	agent := cluster.Run(t, cluster.AgentBinary(t), ctl.agentArgs("default", agentToken(t, "default", "shop-app", "meshdns", ""))...)
	agent.WaitReady(t)
	agent.Expect(t, "api.deployed.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.5.1")
	agent.Expect(t, "db.deploy-test.example", dns.TypeA, "NOERROR", v4)

	// A node agent with the rights of deploy/node-agent.yaml syncs and answers a pod of its node
	// in the pod's namespace; one of the controller, with the chart's rights for that case (the
	// node's pods, nothing more), too.
	nodePod(t, "deploy-node", ns, "client", "127.0.0.61", corev1.DNSClusterFirst)
	short := "NOERROR api. CNAME api.deployed.svc.cluster.local. | api.deployed.svc.cluster.local. A 10.96.5.1"
	node := startMeshdns(t, "--kubeconfig", kubeconfigFor(t, "system:serviceaccount:meshdns-system:meshdns-node-agent"),
		"--node-agent", "--node-name", "deploy-node")
	node.WaitReady(t)
	expectFrom(t, node, "127.0.0.61", "api", short)
	const ctlRelease = "meshdns-node-agent-ctl"
	applyYAML(t, strings.TrimPrefix(tidy(render(t, ctlRelease, "meshdns-system", append(slices.Clone(nodeAgentOfController),
		"--show-only", "templates/node-agent/rbac.yaml")...)), "---\n"))
	nodeOfCtl := startMeshdns(t, append(ctl.agentArgs("meshdns-system", agentToken(t, "meshdns-system", ctlRelease, "meshdns", "")),
		"--kubeconfig", kubeconfigFor(t, "system:serviceaccount:meshdns-system:"+ctlRelease),
		"--node-agent", "--node-name", "deploy-node")...)
	nodeOfCtl.WaitReady(t)
	expectFrom(t, nodeOfCtl, "127.0.0.61", "api", short)

	stranger := startMeshdns(t, "--kubeconfig", kubeconfigFor(t, "system:serviceaccount:default:stranger"))
	eventually(t, "admin endpoint up", func() error {
		if stranger.Readyz() == 0 {
			return errNoAnswer
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if code := stranger.Readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("meshdns without the ClusterRole: /readyz %d, want 503 (it cannot list anything)", code)
	}
}
