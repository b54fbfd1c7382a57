package kube_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/meshdns/meshdns/internal/testutil"
)

// The pod network of the node lab: a bridge in the test's root network namespace holds the
// agent's address, and each pod, a network namespace of its own, reaches it through a veth on
// that bridge. Queries arrive from the pods' own addresses (no NAT), as on a node.
const (
	labSubnet   = "10.77.0"
	labAgentIP  = labSubnet + ".1" // the nameserver of every pod's resolv.conf
	labNode     = "nodelab-node"
	labExternal = "www.nodelab.test" // only the upstream knows it
	labExtAddr  = "203.0.113.80"
	labExtAddr6 = "2001:db8::80"
)

// labPod is one pod of the lab: its Kubernetes object and its network namespace.
type labPod struct {
	ns, name string
	policy   corev1.DNSPolicy
	searches []string // dnsConfig.searches
	ip       string
	netns    string
}

// resolvConf is what the kubelet writes into the pod (pkg/kubelet/network/dns) for its
// dnsPolicy and dnsConfig, on a node whose own resolv.conf has no search list, with the agent
// as the cluster DNS.
func (p labPod) resolvConf() string {
	search := p.searches
	if p.policy != corev1.DNSNone {
		search = append([]string{p.ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local"}, p.searches...)
	}
	return fmt.Sprintf("search %s\nnameserver %s\noptions ndots:5\n", strings.Join(search, " "), labAgentIP)
}

// create writes the pod into the API server, bound to the lab's node, with its address in its
// status as the kubelet would report it.
func (p labPod) create(t *testing.T) {
	t.Helper()
	ndots := "5"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name},
		Spec: corev1.PodSpec{NodeName: labNode, DNSPolicy: p.policy, Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	if p.policy == corev1.DNSNone {
		pod.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{labAgentIP}, Searches: p.searches,
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots}}}
	}
	createRunning(t, pod, p.ip)
}

// labRun runs a command and fails the test with its output when it fails.
func labRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// labNetwork makes the bridge with the agent's address and, for each pod, its network
// namespace, veth and resolv.conf (ip netns exec mounts /etc/netns/NAME/* over /etc/*).
// Everything is removed when the test ends.
func labNetwork(t *testing.T, ip string, pods []labPod) {
	t.Helper()
	if out, _ := exec.Command(ip, "-4", "route", "show", labSubnet+".0/24").Output(); len(out) > 0 {
		t.Fatalf("%s.0/24 is already routed here (%s): the lab needs it for itself", labSubnet, strings.TrimSpace(string(out)))
	}
	bridge := fmt.Sprintf("nl%dbr", os.Getpid())
	labRun(t, ip, "link", "add", bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command(ip, "link", "del", bridge).Run() })
	labRun(t, ip, "addr", "add", labAgentIP+"/24", "dev", bridge)
	labRun(t, ip, "link", "set", bridge, "up")
	for i, p := range pods {
		etc := filepath.Join("/etc/netns", p.netns)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(etc) })
		for name, content := range map[string]string{"resolv.conf": p.resolvConf(), "nsswitch.conf": "hosts: files dns\n"} {
			if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		labRun(t, ip, "netns", "add", p.netns)
		t.Cleanup(func() { exec.Command(ip, "netns", "del", p.netns).Run() })
		veth := fmt.Sprintf("nl%dp%d", os.Getpid(), i)
		labRun(t, ip, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", p.netns)
		t.Cleanup(func() { exec.Command(ip, "link", "del", veth).Run() })
		labRun(t, ip, "link", "set", veth, "master", bridge, "up")
		for _, args := range [][]string{{"link", "set", "lo", "up"}, {"link", "set", "eth0", "up"},
			{"addr", "add", p.ip + "/24", "dev", "eth0"}} {
			labRun(t, ip, append([]string{"netns", "exec", p.netns, ip}, args...)...)
		}
	}
}

// labUpstream starts a dnsmasq that knows the external name, is authoritative for the
// ServiceEntry hosts' domain (so a host meshdns hides is not found there either) and logs
// every query it receives to the returned file.
func labUpstream(t *testing.T) (netip.AddrPort, string) {
	t.Helper()
	var queryLog string
	addr := testutil.StartResolver(t, "dnsmasq", "dnsmasq-base", func(addr netip.AddrPort, dir string) ([]string, error) {
		queryLog = filepath.Join(dir, "queries.log")
		args := []string{"--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
			"--bind-interfaces", "--listen-address=" + addr.Addr().String(), fmt.Sprintf("--port=%d", addr.Port()),
			"--pid-file=", "--log-queries", "--log-facility=" + queryLog, "--user=root",
			"--local=/nodelab.example/", "--host-record=" + labExternal + "," + labExtAddr + "," + labExtAddr6}
		return args, nil
	})
	return addr, queryLog
}

// upstreamQueries is the number of queries the upstream has logged.
func upstreamQueries(t *testing.T, queryLog string) int {
	t.Helper()
	data, err := os.ReadFile(queryLog)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), " query[")
}

// meshdnsQueries is the number of queries m answered, whatever their labels.
func meshdnsQueries(t *testing.T, m *meshdns) int {
	t.Helper()
	return int(m.MetricSum(t, "meshdns_queries_total"))
}

// TestNodeAgentPodLookups simulates a node: 12 pods in 4 namespaces, each a network namespace
// with the resolv.conf the kubelet writes for its dnsPolicy, behind a bridge that holds the
// node agent's address. From every pod, glibc's getent ahosts resolves a short name, a
// svc.ns name, a ServiceEntry host and an external name, each with the pod's own view and
// with 2 queries (A and AAAA) at meshdns, which reach the upstream only for the external name.
// A host exported to one namespace is found by its pods alone, and a dnsPolicy None pod's
// short name is completed from its own search list. When an address goes to a pod of another
// namespace, the view follows.
func TestNodeAgentPodLookups(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespaces need root")
		}
		t.Skip("network namespaces need root")
	}
	ip := testutil.LookPath(t, "ip", "iproute2")
	getent := testutil.LookPath(t, "getent", "libc-bin")
	upstream, queryLog := labUpstream(t)

	nss := []string{"nl-a", "nl-b", "nl-c", "nl-d"}
	web := map[string]string{}
	for _, ns := range nss {
		createNamespace(t, ns)
		web[ns] = createWeb(t, ns)
	}
	applyYAML(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shared, namespace: nl-d}
spec:
  hosts: [shared.nodelab.example]
  addresses: [198.51.100.10]
  resolution: STATIC
  endpoints: [{address: 198.51.100.10}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: nl-a}
spec:
  hosts: [private.nodelab.example]
  addresses: [198.51.100.20]
  resolution: STATIC
  endpoints: [{address: 198.51.100.20}]
  exportTo: ["."]
`)

	var pods []labPod
	for i, ns := range nss {
		for j, policy := range []corev1.DNSPolicy{corev1.DNSClusterFirst, "", corev1.DNSClusterFirstWithHostNet} {
			p := labPod{ns: ns, name: fmt.Sprintf("pod%d", j), policy: policy,
				ip: fmt.Sprintf("%s.%d", labSubnet, 10+len(pods)), netns: fmt.Sprintf("meshdns-nl-%d-%d", os.Getpid(), len(pods))}
			if i == 2 && j == 2 { // its own list: bare names are nl-d's
				p.name, p.policy, p.searches = "own-list", corev1.DNSNone, []string{"svc.cluster.local", "nl-d.svc.cluster.local"}
			}
			pods = append(pods, p)
		}
	}
	labNetwork(t, ip, pods)
	for _, p := range pods {
		p.create(t)
	}

	// The node's resolv.conf has no search list (see labPod.resolvConf); every answer comes
	// from the table or the upstream, uncached, so that each lookup's upstream queries show.
	nodeConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(nodeConf, []byte("options ndots:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := startWithKube(t, "--node-agent", "--node-name", labNode, "--listen", labAgentIP+":53",
		"--resolv-conf", nodeConf, "--upstream", upstream.String(), "--cache-size", "0")
	m.WaitReady(t)

	for i, p := range pods {
		other := nss[(slices.Index(nss, p.ns)+1)%len(nss)]
		short := web[p.ns]
		if p.policy == corev1.DNSNone {
			short = web["nl-d"]
		}
		var private []string
		if p.ns == "nl-a" {
			private = []string{"198.51.100.20"}
		}
		cases := []struct {
			name     string
			addrs    []string // nil: no address
			upstream int      // queries the upstream receives
		}{
			{"web", []string{short}, 0},
			{"web." + other, []string{web[other]}, 0},
			{"shared.nodelab.example", []string{"198.51.100.10"}, 0},
			{labExternal, []string{labExtAddr6, labExtAddr}, 2}, // sorted,
			{"private.nodelab.example", private, 0},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s/%s", p.ns, p.name, tc.name), func(t *testing.T) {
				if i == 0 && tc.name == "web" {
					// The first lookup also waits for the pods' views (pod events follow the list).
					eventually(t, "the first pod's view", func() error {
						if got := labGetent(t, ip, getent, p, tc.name); !slices.Equal(got, tc.addrs) {
							return fmt.Errorf("got %v, want %v", got, tc.addrs)
						}
						return nil
					})
				}
				atMeshdns, atUpstream := meshdnsQueries(t, m), upstreamQueries(t, queryLog)
				got := labGetent(t, ip, getent, p, tc.name)
				if !slices.Equal(got, tc.addrs) {
					t.Fatalf("getent ahosts %s in %s/%s = %v, want %v", tc.name, p.ns, p.name, got, tc.addrs)
				}
				if tc.addrs == nil {
					return // a failing lookup walks the whole search list
				}
				expectCount(t, "meshdns", 2, func() int { return meshdnsQueries(t, m) - atMeshdns })
				expectCount(t, "the upstream", tc.upstream, func() int { return upstreamQueries(t, queryLog) - atUpstream })
			})
		}
	}

	// The first pod (nl-a) is deleted and its address, network namespace included, goes to a
	// new pod of nl-b: getent there now has nl-b's view, and loses the host exported to nl-a.
	t.Run("address reused by another namespace", func(t *testing.T) {
		old := pods[0]
		reused := labPod{ns: "nl-b", name: "reused", policy: corev1.DNSClusterFirst, ip: old.ip, netns: old.netns}
		if err := clients.CoreV1().Pods(old.ns).Delete(ctx(t), old.name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("/etc/netns", reused.netns, "resolv.conf"), []byte(reused.resolvConf()), 0o644); err != nil {
			t.Fatal(err)
		}
		reused.create(t)
		created := time.Now()
		eventually(t, "the new pod's view", func() error {
			if got := labGetent(t, ip, getent, reused, "web"); !slices.Equal(got, []string{web["nl-b"]}) {
				return fmt.Errorf("getent ahosts web = %v, want nl-b's %s", got, web["nl-b"])
			}
			return nil
		})
		t.Logf("the view followed the address %v after the pod's status was written", time.Since(created).Round(time.Millisecond))
		if got := labGetent(t, ip, getent, reused, "private.nodelab.example"); got != nil {
			t.Errorf("getent ahosts private.nodelab.example from nl-b's pod = %v, want not found (exported to nl-a)", got)
		}
	})
}

// expectCount checks that count reaches want and stays there: the counters are written just
// after the answers that getent waits for.
func expectCount(t *testing.T, where string, want int, count func() int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d queries at %s", want, where), func() error {
		if got := count(); got < want {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
	if got := count(); got != want {
		t.Errorf("the lookup cost %d queries at %s, want %d", got, where, want)
	}
}

// labGetent runs getent ahosts name in the pod and returns the sorted distinct addresses, none
// when the lookup fails.
func labGetent(t *testing.T, ip, getent string, p labPod, name string) []string {
	t.Helper()
	out, err := exec.Command(ip, "netns", "exec", p.netns, getent, "ahosts", name).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 { // the name was not found
			return nil
		}
		t.Fatalf("getent ahosts %s in %s: %v", name, p.netns, err)
	}
	var addrs []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !slices.Contains(addrs, f[0]) {
			addrs = append(addrs, f[0])
		}
	}
	slices.Sort(addrs)
	return addrs
}

// createWeb creates Service web in ns and returns its cluster IP.
func createWeb(t *testing.T, ns string) string {
	t.Helper()
	svc, err := clients.CoreV1().Services(ns).Create(ctx(t), service(ns, "web", corev1.ServiceSpec{Ports: httpPort()}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}
