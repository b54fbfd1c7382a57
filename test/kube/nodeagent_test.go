package kube_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/meshdns/meshdns/test/kube/harness"
)

// askFrom sends one question from the local address src and returns its replyString.
func askFrom(m *harness.Meshdns, src, name string) (string, error) { return askAt(m.DNS, src, name) }

// askAt is askFrom for any DNS server at server (host:port).
func askAt(server, src, name string) (string, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := dns.Client{Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}}
	resp, _, err := c.Exchange(q, server)
	if err != nil {
		return "", err
	}
	return replyString(resp), nil
}

// replyString is the rcode and the answer's records (name, type and data, sorted; no TTL).
func replyString(resp *dns.Msg) string {
	var out []string
	for _, rr := range resp.Answer {
		f := strings.Fields(rr.String())
		out = append(out, f[0]+" "+f[3]+" "+f[len(f)-1])
	}
	slices.Sort(out)
	return dns.RcodeToString[resp.Rcode] + " " + strings.Join(out, " | ")
}

func expectFrom(t *testing.T, m *harness.Meshdns, src, name, want string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s from %s", name, src), func() error {
		got, err := askFrom(m, src, name)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}

// nodePod creates a pod of node in ns with address ip (written to its status, as the kubelet
// would), dnsPolicy policy and dnsConfig searches.
func nodePod(t *testing.T, node, ns, name, ip string, policy corev1.DNSPolicy, searches ...string) {
	t.Helper()
	if err := createNodePod(ctx(t), clients, node, ns, name, ip, policy, searches...); err != nil {
		t.Fatal(err)
	}
}

// createNodePod is nodePod through the client c.
func createNodePod(ctx context.Context, c kubernetes.Interface, node, ns, name, ip string, policy corev1.DNSPolicy, searches ...string) error {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{NodeName: node, DNSPolicy: policy, Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	if policy == corev1.DNSNone { // the API requires a nameserver then
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.96.0.10"}, Searches: searches}
	}
	return startPod(ctx, c, p, ip)
}

// createRunning creates pod and writes its status as the kubelet would once it runs: phase
// Running and the addresses ips (the first is podIP).
func createRunning(t *testing.T, pod *corev1.Pod, ips ...string) {
	t.Helper()
	if err := startPod(ctx(t), clients, pod, ips...); err != nil {
		t.Fatal(err)
	}
}

// startPod is createRunning through the client c.
func startPod(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, ips ...string) error {
	created, err := c.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ips[0]}
	for _, ip := range ips {
		created.Status.PodIPs = append(created.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	_, err = c.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

// TestNodeAgentViews: a node agent answers each pod of its node (told apart by the query's
// source address, here loopback addresses the pods' statuses claim) in the pod's own context:
// bare names in its namespace, autopath for its own search list (dnsPolicy None with
// dnsConfig), and a pod of another node, or no pod, as a plain cluster DNS would. An address
// taken over by a pod of another namespace takes that namespace's view. The agent watches the
// API server itself, or takes the objects from a controller and only its node's pods from the
// API server.
func TestNodeAgentViews(t *testing.T) {
	t.Run("kubernetes source", func(t *testing.T) {
		testNodeAgentViews(t, "na", 20, func() *harness.Meshdns {
			return startWithKube(t, "--node-agent", "--node-name", "node-1")
		})
	})
	t.Run("controller", func(t *testing.T) {
		// The node agent's service account may see every namespace's names.
		ctl := runController(t, newPKI(t), kubeconfig, "--full-view", "default/node-agent")
		// The agent's namespace: its token's (the pods it serves have their own).
		args := ctl.agentArgs("default", agentToken(t, "default", "node-agent", "meshdns", ""))
		testNodeAgentViews(t, "nc", 40, func() *harness.Meshdns {
			return startMeshdns(t, append(args, "--node-agent", "--node-name", "node-1", "--kubeconfig", kubeconfig)...)
		})
		// Names from the controller, but no right to list pods: it cannot tell its clients
		// apart, so it binds nothing (the pods' queries go to the cluster DNS, capture --node
		// failing open) and its log says why.
		blind := startMeshdns(t, append(args, "--node-agent", "--node-name", "node-1",
			"--kubeconfig", kubeconfigFor(t, "system:serviceaccount:default:no-rights"))...)
		eventually(t, "a node agent that cannot list pods says so", func() error {
			if log := blind.Log.String(); !strings.Contains(log, `pods is forbidden: User \"system:serviceaccount:default:no-rights\" cannot list resource \"pods\"`) ||
				!strings.Contains(log, "binding the listen addresses once the name table is ready and the node's pods are listed") {
				return errors.New("not in its log yet")
			}
			return nil
		})
		if _, err := blind.Ask("web.nc-a.svc.cluster.local", dns.TypeA); err == nil {
			t.Error("a node agent that cannot list its node's pods answers queries")
		}
		if code := blind.Readyz(); code != 0 {
			t.Errorf("a node agent that cannot list its node's pods serves /readyz (%d)", code)
		}
	})
}

// testNodeAgentViews runs the checks with namespaces PREFIX-a and PREFIX-b and pod addresses
// from 127.0.0.(base+1) on.
func testNodeAgentViews(t *testing.T, prefix string, base int, start func() *harness.Meshdns) {
	nsA, nsB := prefix+"-a", prefix+"-b"
	ip := func(i int) string { return fmt.Sprintf("127.0.0.%d", base+i) }
	for _, ns := range []string{nsA, nsB} {
		createNamespace(t, ns)
	}
	ips := map[string]string{}
	for _, ns := range []string{nsA, nsB} {
		svc, err := clients.CoreV1().Services(ns).Create(ctx(t), service(ns, "web", corev1.ServiceSpec{Ports: httpPort()}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ips[ns] = svc.Spec.ClusterIP
	}
	nodePod(t, "node-1", nsA, "a1", ip(1), corev1.DNSClusterFirst)
	nodePod(t, "node-1", nsB, "b1", ip(2), "")
	nodePod(t, "node-1", nsA, "own-list", ip(3), corev1.DNSNone, "svc.cluster.local", nsB+".svc.cluster.local")
	nodePod(t, "node-2", nsA, "elsewhere", ip(4), corev1.DNSClusterFirst)

	m := start()
	m.WaitReady(t)
	webA := "web." + nsA + ".svc.cluster.local. A " + ips[nsA]
	webB := "web." + nsB + ".svc.cluster.local. A " + ips[nsB]
	expectFrom(t, m, ip(1), "web."+nsA+".svc.cluster.local", "NOERROR "+webA)
	expectFrom(t, m, ip(1), "web", "NOERROR web. CNAME web."+nsA+".svc.cluster.local. | "+webA)
	expectFrom(t, m, ip(2), "web", "NOERROR web. CNAME web."+nsB+".svc.cluster.local. | "+webB)
	// Autopath: a ClusterFirst pod of A asking web.B first asks it with its first search
	// domain; the answer is the name it would end on.
	expectFrom(t, m, ip(1), "web."+nsB+"."+nsA+".svc.cluster.local",
		"NOERROR web."+nsB+"."+nsA+".svc.cluster.local. CNAME web."+nsB+".svc.cluster.local. | "+webB)
	// The dnsPolicy None pod's first search domain is svc.cluster.local: its first question
	// for web is web.svc.cluster.local, which autopath answers from its second domain. For a
	// ClusterFirst pod that is a second expansion, answered as it is: NXDOMAIN.
	expectFrom(t, m, ip(3), "web.svc.cluster.local",
		"NOERROR "+webB+" | web.svc.cluster.local. CNAME web."+nsB+".svc.cluster.local.")
	expectFrom(t, m, ip(1), "web.svc.cluster.local", "NXDOMAIN ")
	// Not a pod of this node, and no pod at all: no namespace, no search list. A bare name is
	// not the cluster's, so it is forwarded (and fails: these tests give meshdns no upstream);
	// a search expansion gets no autopath.
	for _, src := range []string{ip(4), "127.0.0.1"} {
		expectFrom(t, m, src, "web", "SERVFAIL ")
		expectFrom(t, m, src, "web.svc.cluster.local", "NXDOMAIN ")
	}

	// A ServiceEntry exported to A alone: A's pod gets it, B's does not (the name is not the
	// cluster's, so B's query is forwarded, and fails without an upstream).
	private := "private." + prefix + ".example.com"
	applyYAML(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: %s}
spec:
  hosts: [%s]
  addresses: [192.0.2.%d]
  resolution: STATIC
  endpoints: [{address: 192.0.2.%d}]
  exportTo: ["."]
`, nsA, private, base, base))
	expectFrom(t, m, ip(1), private, fmt.Sprintf("NOERROR %s. A 192.0.2.%d", private, base))
	expectFrom(t, m, ip(2), private, "SERVFAIL ")

	// a1 goes, and its address comes back as a pod of B.
	if err := clients.CoreV1().Pods(nsA).Delete(ctx(t), "a1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	nodePod(t, "node-1", nsB, "b2", ip(1), corev1.DNSClusterFirst)
	expectFrom(t, m, ip(1), "web", "NOERROR web. CNAME web."+nsB+".svc.cluster.local. | "+webB)
}

func clusterIP(t *testing.T, ns, name string) string {
	t.Helper()
	svc, err := clients.CoreV1().Services(ns).Get(ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}
