package netlab

import (
	"fmt"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil"
)

// The addresses of a simulated node.
const (
	ServiceDNS   = "10.96.0.10"    // the cluster DNS Service IP, as pods' resolv.conf names it
	ServiceDNS6  = "fd00:10:96::a" // its IPv6 twin
	EndpointDNS  = "10.250.0.2"    // where the cluster DNS (the test's server in the DNS namespace) listens
	EndpointDNS6 = "fd00:250::2"
	PodGateway   = "10.244.0.1" // the node's address on the pods' bridge
	PodGateway6  = "fd00:10:244::1"
)

// kubeProxy is the kube-proxy stand-in: the cluster DNS Service IPs to its endpoint, for the
// pods (prerouting) and for the node itself (output).
var kubeProxy = fmt.Sprintf(`table ip kube-proxy {
	chain prerouting {
		type nat hook prerouting priority dstnat;
		ip daddr %[1]s meta l4proto { tcp, udp } th dport 53 dnat to %[2]s
	}
	chain output {
		type nat hook output priority -100;
		ip daddr %[1]s meta l4proto { tcp, udp } th dport 53 dnat to %[2]s
	}
}
table ip6 kube-proxy {
	chain prerouting {
		type nat hook prerouting priority dstnat;
		ip6 daddr %[3]s meta l4proto { tcp, udp } th dport 53 dnat to %[4]s
	}
	chain output {
		type nat hook output priority -100;
		ip6 daddr %[3]s meta l4proto { tcp, udp } th dport 53 dnat to %[4]s
	}
}
`, ServiceDNS, EndpointDNS, ServiceDNS6, EndpointDNS6)

// Node is a simulated Kubernetes node: its own namespace with a bridge br0 for the pods, each
// pod a namespace behind a veth on it, and the cluster DNS's namespace, which the node routes
// to and whose Service IPs the node translates (nftables, as kube-proxy does).
type Node struct {
	Node, DNS *Netns
	Pods      []*Pod
}

// Pod is one pod of a Node with its two addresses.
type Pod struct {
	*Netns
	IP, IP6 string
}

// NewNode builds a node with pods pods; names start with prefix. Pod i has the addresses
// 10.244.0.(10+i) and fd00:10:244::(10+i). The caller starts the cluster DNS in n.DNS on
// EndpointDNS and EndpointDNS6.
func NewNode(t testing.TB, prefix string, pods int) *Node {
	t.Helper()
	n := &Node{Node: New(t, prefix+"node"), DNS: New(t, prefix+"dns")}
	n.Node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	n.Node.Run(t, "ip", "link", "add", "br0", "type", "bridge")
	n.Node.Run(t, "ip", "link", "set", "br0", "up")
	n.Node.Addrs(t, "br0", PodGateway+"/24", PodGateway6+"/64")
	Link(t, n.Node, "dns0", n.DNS, "eth0")
	n.Node.Addrs(t, "dns0", "10.250.0.1/24", "fd00:250::1/64")
	n.DNS.Addrs(t, "eth0", EndpointDNS+"/24", EndpointDNS6+"/64")
	n.DNS.Routes(t, "10.250.0.1", "fd00:250::1")
	for i := range pods {
		p := &Pod{Netns: New(t, fmt.Sprintf("%spod%d", prefix, i)),
			IP: fmt.Sprintf("10.244.0.%d", 10+i), IP6: fmt.Sprintf("fd00:10:244::%d", 10+i)}
		veth := fmt.Sprintf("veth%d", i)
		Link(t, n.Node, veth, p.Netns, "eth0")
		n.Node.Run(t, "ip", "link", "set", veth, "master", "br0")
		p.Addrs(t, "eth0", p.IP+"/24", p.IP6+"/64")
		p.Routes(t, PodGateway, PodGateway6)
		n.Pods = append(n.Pods, p)
	}
	testutil.LookPath(t, "nft", "nftables")
	n.Node.Nft(t, kubeProxy)
	return n
}
