package kube_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/testutil/netlab"
)

// The upgrade lab: a simulated node (netlab.NewNode) whose pods send their DNS to the cluster
// DNS Service IPs, captured by capture install --node to the node agent, which runs in the
// node's namespace against the API server. A dnsmasq in the node's DNS namespace stands in for
// kube-dns: it knows the Services' names, and nothing of the mesh.
const (
	upNode    = "nodelab-upgrade"
	upPrivate = "private.nodelab-up.example" // exported to nu-a alone; kube-dns does not know it
	upPrivIP  = "198.51.100.30"
	// upAttemptTimeout is how long a query waits for its answer, unless a loop says otherwise.
	upAttemptTimeout = 2 * time.Second
	// upPerStep is how many lookups a loop completes in each step of a test.
	upPerStep = 40
)

// waitLog waits until p has logged line.
func waitLog(t *testing.T, p *netlab.Proc, line string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%q in the log", line), func() error {
		select {
		case <-p.Exited():
			return errors.New("exited")
		default:
		}
		if !strings.Contains(p.Log.String(), line) {
			return errors.New("not yet")
		}
		return nil
	})
}

// apiRelay makes the API server, on the test's loopback, reachable at the same address from
// n's loopback, so that a meshdns in n uses the test's kubeconfig as it is.
func apiRelay(t *testing.T, n *netlab.Netns) {
	t.Helper()
	u, err := url.Parse(restConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := n.Do(func() (err error) { ln, err = net.Listen("tcp", u.Host); return err }); err != nil {
		t.Fatalf("listen on %s in %s: %v", u.Host, n.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", u.Host)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
				io.Copy(c, up)
				c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
}

// askIn sends one query from pod to server (host:port) over network, from a fresh socket,
// once, and returns the reply.
func askIn(pod *netlab.Pod, network, server, name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	var conn net.Conn
	if err := pod.Do(func() (err error) { conn, err = net.DialTimeout(network, server, timeout); return err }); err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	if qtype == dns.TypeTXT {
		q.Question[0].Qclass = dns.ClassCHAOS
	}
	c := dns.Client{Net: network, Timeout: timeout}
	resp, _, err := c.ExchangeWithConn(q, &dns.Conn{Conn: conn})
	return resp, err
}

// probe is a lookup of a loop: a question from a pod to a server, and the reply it must get
// (replyString).
type probe struct {
	pod          *netlab.Pod
	server, name string
	want         string
}

// startLookups runs probes in turn, one lookup every 5 ms (200 a second), each of up to
// attempts attempts from a fresh socket (a new flow, spread by the kernel over every socket
// bound to the address) waiting timeout, as a stub resolver does.
func startLookups(attempts int, timeout time.Duration, probes ...probe) *testutil.QueryLoop {
	return testutil.StartQueryLoop(5*time.Millisecond, attempts, func(i, _ int) (string, string) {
		p := probes[i%len(probes)]
		kind, detail := attemptOnce(p, timeout)
		if kind != "" {
			detail = fmt.Sprintf("%s from %s to %s: %s", p.name, p.pod.IP, p.server, detail)
		}
		return kind, detail
	})
}

// attemptOnce asks p once over UDP and classifies the outcome: "" when answered right.
func attemptOnce(p probe, timeout time.Duration) (kind, detail string) {
	resp, err := askIn(p.pod, "udp", p.server, p.name, dns.TypeA, timeout)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout", err.Error()
	case err != nil:
		return "error", err.Error()
	case replyString(resp) == p.want:
		return "", ""
	case resp.Rcode != dns.RcodeSuccess:
		return dns.RcodeToString[resp.Rcode], replyString(resp)
	}
	return "wrong answer", fmt.Sprintf("%q, want %q", replyString(resp), p.want)
}

// waitAnswered waits until n more lookups of l are answered than when called.
func waitAnswered(t *testing.T, l *testutil.QueryLoop, what string, n int) {
	t.Helper()
	_, before, _ := l.Counts()
	eventually(t, what, func() error {
		if _, answered, _ := l.Counts(); answered < before+n {
			return errors.New(l.String())
		}
		return nil
	})
}

// halt stops l and fails the test unless every lookup was answered right.
func halt(t *testing.T, l *testutil.QueryLoop, what string) {
	t.Helper()
	l.Halt()
	if sent, answered, failed := l.Counts(); failed > 0 || answered != sent {
		t.Errorf("%s: lookups failed: %s", what, l)
	} else {
		t.Logf("%s: %s", what, l)
	}
}

// TestNodeAgentUpgradesAndCrashes runs the node agent as a DaemonSet would, on a node of two
// pods (namespaces nu-a and nu-b, IPv4 and IPv6) whose DNS is captured by capture install
// --node, with the API server as its source. While each pod looks names up at a steady rate
// over both families:
//
//   - a new meshdns replaces the serving one 10 times (SIGTERM after the new one serves):
//     every lookup is answered, with the pod's own view (a host exported to nu-a alone, and
//     autopath for nu-b's search list), from the first attempt;
//   - kill -9 of the agent: the lookups keep being answered, now by the cluster DNS (a stub's
//     second attempt after one second at the most), and once an agent runs again (binding its
//     addresses only when it can answer), by it.
func TestNodeAgentUpgradesAndCrashes(t *testing.T) {
	dnsmasq := testutil.LookPath(t, "dnsmasq", "dnsmasq-base")
	node := netlab.NewNode(t, fmt.Sprintf("meshdns-nu-%d-", os.Getpid()), 2)
	pod0, pod1 := node.Pods[0], node.Pods[1]
	for _, ns := range []string{"nu-a", "nu-b"} {
		createNamespace(t, ns)
	}
	webA, webB := createWeb(t, "nu-a"), createWeb(t, "nu-b")
	applyYAML(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: nu-a}
spec:
  hosts: [%s]
  addresses: [%s]
  resolution: STATIC
  endpoints: [{address: %s}]
  exportTo: ["."]
`, upPrivate, upPrivIP, upPrivIP))
	for i, ns := range []string{"nu-a", "nu-b"} {
		p := node.Pods[i]
		createRunning(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("app%d", i)},
			Spec: corev1.PodSpec{NodeName: upNode, DNSPolicy: corev1.DNSClusterFirst, Containers: []corev1.Container{{Name: "app", Image: "app"}}}},
			p.IP, p.IP6)
	}

	node.DNS.Start(t, dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--listen-address="+netlab.EndpointDNS, "--listen-address="+netlab.EndpointDNS6, "--port=53",
		"--pid-file=", "--user=root", "--log-facility=-", "--local=/cluster.local/", "--local=/nodelab-up.example/",
		"--host-record=web.nu-a.svc.cluster.local,"+webA, "--host-record=web.nu-b.svc.cluster.local,"+webB)
	apiRelay(t, node.Node)
	capture := func(action string) *exec.Cmd {
		return node.Node.Command(cluster.Binary(), "capture", action, "--backend", "nftables", "--node",
			"--cluster-dns", netlab.ServiceDNS+","+netlab.ServiceDNS6)
	}
	if out, err := capture("install").CombinedOutput(); err != nil {
		t.Fatalf("capture install --node: %v: %s", err, out)
	}
	t.Cleanup(func() { capture("uninstall").Run() })

	servers := []string{netlab.ServiceDNS + ":53", "[" + netlab.ServiceDNS6 + "]:53"}
	webAReply := "NOERROR web.nu-a.svc.cluster.local. A " + webA
	privateReply := "NOERROR " + upPrivate + ". A " + upPrivIP
	autopathName := "web.nu-a.svc.cluster.local.nu-b.svc.cluster.local"                       // nu-b's first search-list query
	autopathReply := webAReply + " | " + autopathName + ". CNAME web.nu-a.svc.cluster.local." // sorted
	expectIn := func(p probe) {
		t.Helper()
		eventually(t, fmt.Sprintf("%s from %s to %s", p.name, p.pod.IP, p.server), func() error {
			if kind, detail := attemptOnce(p, upAttemptTimeout); kind != "" {
				return fmt.Errorf("%s: %s", kind, detail)
			}
			return nil
		})
	}
	// Before any agent runs, the rules let the pods reach the cluster DNS.
	for _, pod := range node.Pods {
		for _, server := range servers {
			expectIn(probe{pod, server, "web.nu-a.svc.cluster.local", webAReply})
		}
	}

	nodeConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(nodeConf, []byte("options ndots:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startAgent := func(gen int) *netlab.Proc {
		t.Helper()
		args := []string{"serve", "--node-agent", "--node-name", upNode, "--kubeconfig", kubeconfig,
			"--admin", "127.0.0.1:9153", "--upstream", netlab.EndpointDNS + ":53", "--resolv-conf", nodeConf,
			"--chaos-id", fmt.Sprintf("generation-%d", gen)}
		for _, addr := range []string{netlab.ServiceDNS, "[" + netlab.ServiceDNS6 + "]", "169.254.20.10", "[fd00:169:254:20::10]"} {
			args = append(args, "--listen", addr+":53")
		}
		a := node.Node.Start(t, cluster.Binary(), args...)
		waitLog(t, a, "meshdns serving")
		return a
	}
	chaosID := func(network string) string {
		resp, err := askIn(pod0, network, servers[0], "id.server", dns.TypeTXT, upAttemptTimeout)
		if err != nil {
			return err.Error()
		}
		if len(resp.Answer) != 1 {
			return replyString(resp)
		}
		return strings.Join(resp.Answer[0].(*dns.TXT).Txt, "")
	}

	var viewProbes []probe
	for _, server := range servers {
		viewProbes = append(viewProbes, probe{pod0, server, upPrivate, privateReply},
			probe{pod1, server, autopathName, autopathReply})
	}
	agent := startAgent(0)
	for _, p := range viewProbes {
		expectIn(p) // the pods' views follow the agent's first list of them
	}

	t.Run("upgrades", func(t *testing.T) {
		loop := startLookups(1, upAttemptTimeout, viewProbes...)
		for gen := 1; gen <= 10; gen++ {
			waitAnswered(t, loop, fmt.Sprintf("lookups answered by generation %d", gen-1), upPerStep)
			next := startAgent(gen)
			stopped := make(chan int, 1)
			go func() { stopped <- agent.Stop(syscall.SIGTERM) }()
			waitAnswered(t, loop, fmt.Sprintf("lookups while generation %d stops", gen-1), upPerStep)
			if code := <-stopped; code != 0 {
				t.Fatalf("generation %d exited with status %d after SIGTERM", gen-1, code)
			}
			want := fmt.Sprintf("generation-%d", gen)
			for _, network := range []string{"udp", "tcp"} {
				if got := chaosID(network); got != want {
					t.Fatalf("after upgrade %d, id.server over %s from a pod: %q, want %q", gen, network, got, want)
				}
			}
			agent = next
		}
		waitAnswered(t, loop, "lookups answered by the last generation", upPerStep)
		halt(t, loop, "10 upgrades")
	})

	t.Run("kill -9", func(t *testing.T) {
		// Both the agent and kube-dns know web.nu-a. A stub resolver with options timeout:1
		// attempts:2 asks: a query the killed agent had received but not answered is retried
		// after a second, through the rules left in place, by the cluster DNS.
		var probes []probe
		for _, pod := range node.Pods {
			for _, server := range servers {
				probes = append(probes, probe{pod, server, "web.nu-a.svc.cluster.local", webAReply})
			}
		}
		loop := startLookups(2, time.Second, probes...)
		waitAnswered(t, loop, "lookups answered by the agent", upPerStep)
		agent.Stop(syscall.SIGKILL)
		waitAnswered(t, loop, "lookups after kill -9", upPerStep)
		// The cluster DNS answers now: it does not know the host exported to nu-a.
		for _, server := range servers {
			expectIn(probe{pod0, server, upPrivate, "NXDOMAIN "})
		}
		agent = startAgent(11)
		for _, p := range viewProbes {
			expectIn(p)
		}
		waitAnswered(t, loop, "lookups answered by the agent again", upPerStep)
		halt(t, loop, "kill -9 and restart")
	})
}
