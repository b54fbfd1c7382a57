package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil/netlab"
)

// The node lab (netlab.NewNode) with two pods, and the cluster DNS, a dnsmasq that knows no
// mesh names.
const (
	serviceDNS  = netlab.ServiceDNS
	serviceDNS6 = netlab.ServiceDNS6
	localIP     = "169.254.20.10" // capture's default --local-ip
	localIP6    = "fd00:169:254:20::10"
	meshName    = "reviews.bookinfo.svc.cluster.local" // only meshdns knows it
	meshAnswer  = "10.96.10.20"
	// clusterAnswer is the cluster DNS's answer to meshName: it knows no mesh names.
	clusterAnswer = "NXDOMAIN"
)

type nodeLab struct {
	node *netns
	pods []*netns
}

// newNodeLab builds the node lab and starts the cluster DNS.
func newNodeLab(t *testing.T) *nodeLab {
	t.Helper()
	for _, tool := range []string{"dig", "dnsmasq", "nft"} {
		need(t, tool)
	}
	n := netlab.NewNode(t, fmt.Sprintf("meshdns-node-%d-", os.Getpid()), 2)
	lab := &nodeLab{node: n.Node}
	for _, p := range n.Pods {
		lab.pods = append(lab.pods, p.Netns)
	}
	start(t, n.DNS, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--listen-address="+netlab.EndpointDNS, "--listen-address="+netlab.EndpointDNS6, "--port=53",
		"--pid-file=", "--user=root", "--log-facility=-", "--local=/cluster.local/",
		"--host-record=www.example.com,192.0.2.80")
	// The first packets of a pod wait for neighbour discovery; the test starts once every
	// pod reaches the cluster DNS over both families.
	for _, pod := range lab.pods {
		for _, server := range []string{serviceDNS, serviceDNS6} {
			eventually(t, readyTimeout, pod.Name+" reaches the cluster DNS at "+server, func() string {
				return expect(pod, server, clusterAnswer)
			})
		}
	}
	return lab
}

// askMesh sends meshName to server from n, once, with a one-second timeout and the further
// dig arguments args, and returns the address answered, the rcode when it is not NOERROR, or
// "no answer".
func askMesh(n *netns, server string, args ...string) string {
	argv := append([]string{"@" + server, "+tries=1", "+time=1", "+noall", "+comments", "+answer", meshName, "A"}, args...)
	out, _ := n.Command("dig", argv...).Output()
	for _, line := range strings.Split(string(out), "\n") {
		if _, rest, ok := strings.Cut(line, "status: "); ok && !strings.HasPrefix(rest, "NOERROR") {
			status, _, _ := strings.Cut(rest, ",")
			return status
		}
		if f := strings.Fields(line); len(f) == 5 && f[3] == "A" {
			return f[4]
		}
	}
	return "no answer"
}

// expect asks server from n over UDP and says what is wrong, "" if nothing.
func expect(n *netns, server, want string) string {
	if got := askMesh(n, server, "+notcp"); got != want {
		return fmt.Sprintf("dig @%s %s = %s, want %s", server, meshName, got, want)
	}
	return ""
}

// askAll asks every server from every pod over UDP and TCP, and reports each wrong answer.
func (lab *nodeLab) askAll(t *testing.T, step, want string, servers ...string) {
	t.Helper()
	for _, pod := range lab.pods {
		for _, server := range servers {
			for _, transport := range []string{"+notcp", "+tcp"} {
				if got := askMesh(pod, server, transport); got != want {
					t.Errorf("%s: %s: dig %s @%s %s = %s, want %s", step, pod.Name, transport, server, meshName, got, want)
				}
			}
		}
	}
}

// startAgent starts the node agent, meshdns serve on the node bound to the addresses capture
// put on lo, and waits until it answers the pods.
func startAgent(t *testing.T, lab *nodeLab) *netlab.Proc {
	t.Helper()
	args := append([]string{"serve", "--admin", ""}, examplesArgs(examplePath("registry"), netlab.EndpointDNS)...)
	for _, a := range []string{serviceDNS, "[" + serviceDNS6 + "]", localIP, "[" + localIP6 + "]"} {
		args = append(args, "--listen", a+":53")
	}
	p := lab.node.Start(t, meshdnsBin, args...)
	eventually(t, readyTimeout, "the node agent answers the pods", func() string {
		return expect(lab.pods[0], serviceDNS, meshAnswer)
	})
	return p
}

// TestCaptureNode runs a node agent behind capture install --node with each backend: the
// pods' queries to the cluster DNS Service IPs (IPv4 and IPv6, UDP and TCP) reach the
// cluster DNS before the agent starts, the agent while it runs, the cluster DNS again from
// the first query after a kill -9 with the rules left in place, and the agent once it is back.
// The node's own queries are never captured.
func TestCaptureNode(t *testing.T) {
	for _, backend := range []string{"iptables", "iptables-legacy", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			lab := newNodeLab(t)
			capture := func(action string) *exec.Cmd {
				return lab.node.Command(meshdnsBin, "capture", action, "--backend", backend,
					"--node", "--cluster-dns", serviceDNS+","+serviceDNS6)
			}
			if out, err := capture("install").CombinedOutput(); err != nil {
				t.Fatalf("capture install --node: %v: %s", err, out)
			}
			t.Cleanup(func() { capture("uninstall").Run() })
			verify := func(step string) {
				t.Helper()
				if out, err := capture("verify").CombinedOutput(); err != nil {
					t.Errorf("%s: capture verify: %v: %s", step, err, out)
				}
			}
			verify("after install")
			lab.askAll(t, "not started", clusterAnswer, serviceDNS, serviceDNS6)

			a := startAgent(t, lab)
			lab.askAll(t, "running", meshAnswer, serviceDNS, serviceDNS6, localIP, localIP6)
			if got := askMesh(lab.node, serviceDNS, "+notcp"); got != clusterAnswer {
				t.Errorf("the node itself: dig @%s %s = %s, want the cluster DNS's %s", serviceDNS, meshName, got, clusterAnswer)
			}

			// A flow that the agent answered: the same source port again after the kill.
			sameFlow := []string{"-b", "10.244.0.10#40053"}
			if got := askMesh(lab.pods[0], serviceDNS, sameFlow...); got != meshAnswer {
				t.Errorf("running, from port 40053: %s, want the agent's %s", got, meshAnswer)
			}

			a.Stop(syscall.SIGKILL)
			lab.askAll(t, "after kill -9", clusterAnswer, serviceDNS, serviceDNS6)
			if got := askMesh(lab.pods[0], serviceDNS, sameFlow...); got != clusterAnswer {
				t.Errorf("after kill -9, from port 40053 again: %s, want the cluster DNS's %s", got, clusterAnswer)
			}
			verify("after kill -9")

			// Another DNS server of the node, bound to the wildcard address, must not take the
			// pods' queries: only a socket bound to the Service IP counts.
			wildcard := lab.node.Start(t, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
				"--conf-file=/dev/null", "--port=53", "--pid-file=", "--user=root", "--address=/"+meshName+"/192.0.2.53")
			eventually(t, readyTimeout, "the wildcard dnsmasq answers on the node", func() string {
				return expect(lab.node, "127.0.0.1", "192.0.2.53")
			})
			lab.askAll(t, "a wildcard listener on port 53", clusterAnswer, serviceDNS, serviceDNS6)
			wildcard.Stop(syscall.SIGKILL)

			startAgent(t, lab)
			lab.askAll(t, "restarted", meshAnswer, serviceDNS, serviceDNS6)

			if out, err := capture("uninstall").CombinedOutput(); err != nil {
				t.Fatalf("capture uninstall --node: %v: %s", err, out)
			}
			if rules := ruleset(t, lab.node, backend); strings.Contains(strings.ToLower(rules), "meshdns") {
				t.Errorf("rules left after uninstall:\n%s", rules)
			}
			lo := lab.node.Run(t, "ip", "-o", "addr", "show", "dev", "lo")
			for _, a := range []string{serviceDNS, serviceDNS6, localIP, localIP6} {
				if strings.Contains(lo, " "+a+"/") {
					t.Errorf("address %s left on lo after uninstall:\n%s", a, lo)
				}
			}
		})
	}
}
