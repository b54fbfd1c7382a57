package capture

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

// The lab's name servers answer svc.test differently, so an answer says who gave it.
const (
	realA  = "192.0.2.2" // the "cluster DNS" on the nameserver addresses
	proxyA = "192.0.2.1" // the stand-in for meshdns on the proxy port
)

var (
	// labNameservers are in resolv.conf; the .11 / ::b addresses serve too but are not.
	labNameservers = defaultSpec("10.96.0.10", "fd00:10:96::a")
	labAddrs       = []string{"10.96.0.10", "10.96.0.11", "fd00:10:96::a", "fd00:10:96::b"}

	// Process identities the queries are sent as.
	asApp      = []string{"setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups"}
	asProxy    = []string{"setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups"}
	asProxyUID = []string{"setpriv", "--reuid", "1337", "--regid", "1000", "--clear-groups"}
	asProxyGID = []string{"setpriv", "--reuid", "1000", "--regid", "1337", "--clear-groups"}
)

// newLab makes a namespace with a "cluster DNS" (dnsmasq as root on port 53 of labAddrs,
// which exist only on the namespace's lo), a stand-in for meshdns and labFirewall.
func newLab(t *testing.T) *netns {
	t.Helper()
	needLabTools(t)
	n := newNetns(t)
	for _, a := range labAddrs {
		n.run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	n.start(t, "dnsmasq", append(dnsmasqArgs(53, realA, "2001:db8::2", labAddrs...), "--user=root")...)
	startProxy(t, n, "10.96.0.10", "fd00:10:96::a")
	return n
}

func needLabTools(t *testing.T) {
	t.Helper()
	for _, bin := range [][2]string{{"dnsmasq", "dnsmasq-base"}, {"dig", "bind9-dnsutils"},
		{"setpriv", "util-linux"}, {"getent", "libc-bin"}, {"nft", "nftables"}} {
		testutil.LookPath(t, bin[0], bin[1])
	}
}

// startProxy starts the stand-in for meshdns in n (dnsmasq running as the proxy's uid and gid
// on 127.0.0.1 and ::1, port 15053), puts up labFirewall, and waits until the stand-in and the
// nameservers answer.
func startProxy(t *testing.T, n *netns, nameservers ...string) {
	t.Helper()
	if _, err := n.runner()(testContext(t), labFirewall, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	n.start(t, "setpriv", append(asProxy[1:], append([]string{"dnsmasq"}, dnsmasqArgs(15053, proxyA, "2001:db8::1", "127.0.0.1", "::1")...)...)...)
	servers := [][]string{{"@127.0.0.1", "-p", "15053"}, {"@::1", "-p", "15053"}}
	for _, ns := range nameservers {
		servers = append(servers, []string{"@" + ns})
	}
	deadline := time.Now().Add(readyTimeout)
	for _, server := range servers {
		for dig(n, nil, server...) == "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// labFirewall is a stateful firewall, as hosts often have: what comes in must be a reply to a
// known connection, or a new connection to a DNS port. Answers that conntrack looks up in the
// wrong zone look new and are dropped.
const labFirewall = `table inet firewall {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		meta l4proto { udp, tcp } th dport { 53, 15053 } accept
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
	}
}
`

func dnsmasqArgs(port int, a, aaaa string, listen ...string) []string {
	args := []string{"--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--pid-file=", "--log-facility=-", fmt.Sprintf("--port=%d", port),
		"--address=/svc.test/" + a, "--address=/svc.test/" + aaaa}
	for _, l := range listen {
		args = append(args, "--listen-address="+l)
	}
	return args
}

// dig asks for svc.test A as the identity as (nil: root) with the dig arguments args, and
// returns the answer, "" when there is none.
func dig(n *netns, as []string, args ...string) string {
	argv := append(slices.Clone(as), "dig", "+short", "+tries=1", "+time=2")
	argv = append(append(argv, args...), "svc.test", "A")
	out, _ := n.try(argv[0], argv[1:]...)
	return strings.TrimSpace(out)
}

type digCase struct {
	name   string
	as     []string
	server string
	want   string
}

// digEach runs every case over UDP and over TCP.
func digEach(t *testing.T, n *netns, step string, cases []digCase) {
	t.Helper()
	for _, tc := range cases {
		for _, transport := range []string{"+notcp", "+tcp"} {
			if got := dig(n, tc.as, "@"+tc.server, transport); got != tc.want {
				t.Errorf("%s: %s: dig %s @%s svc.test = %q, want %q", step, tc.name, transport, tc.server, got, tc.want)
			}
		}
	}
}

// TestCaptureDNS sends real queries through the rules of each backend: the resolv.conf
// nameservers' port-53 traffic reaches the proxy, the proxy's own traffic (by uid or gid) and
// other servers' do not, --all takes every server, and uninstall restores direct resolution.
func TestCaptureDNS(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			bc.need(t)
			n := newLab(t)
			run, ctx := bc.wrap(n.runner()), testContext(t)
			digEach(t, n, "before install", []digCase{{"app", asApp, "10.96.0.10", realA}})

			if err := Install(ctx, run, bc.backend, mustBuild(t, labNameservers)); err != nil {
				t.Fatal(err)
			}
			digEach(t, n, "nameservers", []digCase{
				{"app to nameserver", asApp, "10.96.0.10", proxyA},
				{"app to IPv6 nameserver", asApp, "fd00:10:96::a", proxyA},
				{"app to other server", asApp, "10.96.0.11", realA},
				{"app to other IPv6 server", asApp, "fd00:10:96::b", realA},
				{"root to nameserver", nil, "10.96.0.10", proxyA},
				{"proxy to nameserver", asProxy, "10.96.0.10", realA},
				{"proxy to IPv6 nameserver", asProxy, "fd00:10:96::a", realA},
				{"proxy uid only", asProxyUID, "10.96.0.10", realA},
				{"proxy gid only", asProxyGID, "fd00:10:96::a", realA},
			})
			glibc(t, n)

			all := labNameservers
			all.All = true
			if err := Install(ctx, run, bc.backend, mustBuild(t, all)); err != nil {
				t.Fatal(err)
			}
			digEach(t, n, "all", []digCase{
				{"app to other server", asApp, "10.96.0.11", proxyA},
				{"app to other IPv6 server", asApp, "fd00:10:96::b", proxyA},
				{"proxy to other server", asProxy, "10.96.0.11", realA},
			})

			if err := Uninstall(ctx, run, bc.backend, Rules{}); err != nil {
				t.Fatal(err)
			}
			digEach(t, n, "after uninstall", []digCase{
				{"app to nameserver", asApp, "10.96.0.10", realA},
				{"app to IPv6 nameserver", asApp, "fd00:10:96::a", realA},
			})
		})
	}
}

// glibc resolves with glibc, which sends A and AAAA in parallel from one socket, through the
// rules: a lost answer fails the lookup at once (one attempt, one-second timeout) instead of
// stalling it for five seconds.
func glibc(t *testing.T, n *netns) {
	t.Helper()
	n.etc(t, "resolv.conf", "nameserver 10.96.0.10\noptions timeout:1 attempts:1\n")
	n.etc(t, "nsswitch.conf", "hosts: dns\n")
	for _, tc := range []struct {
		name string
		as   []string
		want string
	}{
		{"app", asApp, "192.0.2.1 2001:db8::1"},
		{"proxy", asProxy, "192.0.2.2 2001:db8::2"},
	} {
		for i := range 3 {
			argv := append(slices.Clone(tc.as), "getent", "ahosts", "svc.test")
			out, err := n.try(argv[0], argv[1:]...)
			if got := strings.Join(ahosts(out), " "); err != nil || got != tc.want {
				t.Errorf("glibc as %s, lookup %d: getent ahosts svc.test = %q (%v), want %q", tc.name, i+1, got, err, tc.want)
			}
		}
	}
}

// ahosts returns the sorted distinct addresses of `getent ahosts` output.
func ahosts(out string) []string {
	var addrs []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && !slices.Contains(addrs, f[0]) {
			addrs = append(addrs, f[0])
		}
	}
	slices.Sort(addrs)
	return addrs
}

// TestConntrackZones reproduces the collision the raw-table rules exist for. Conntrack keeps a
// UDP flow after its socket is closed, so when the proxy's upstream query reuses the source
// port of an application's earlier query, both have the same tuple. Without zones the proxy's
// query takes the application's NAT binding and comes back to the proxy, and an application
// query that reuses a port of the proxy's bypasses the proxy. With the zones neither happens.
// The first half (NAT rules only) shows that the test can see the problem.
func TestConntrackZones(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			bc.need(t)
			n := newLab(t)
			run, ctx := bc.wrap(n.runner()), testContext(t)
			full := mustBuild(t, labNameservers)
			natOnly := Rules{rules: slices.DeleteFunc(slices.Clone(full.rules), func(r rule) bool { return r.chain != natOutput })}

			if err := Install(ctx, run, bc.backend, natOnly); err != nil {
				t.Fatal(err)
			}
			if got := reuse(n, "10.96.0.10", 41000); got != proxyA+" "+proxyA+" "+realA+" "+realA {
				t.Errorf("without zones the flows did not collide: %s (the test cannot see the problem)", got)
			}
			if err := Install(ctx, run, bc.backend, full); err != nil {
				t.Fatal(err)
			}
			for i, server := range []string{"10.96.0.10", "fd00:10:96::a"} {
				if got, want := reuse(n, server, 42000+2*i), proxyA+" "+realA+" "+realA+" "+proxyA; got != want {
					t.Errorf("with zones, %s: app, proxy on one port, then proxy, app on another answered %s, want %s", server, got, want)
				}
			}
		})
	}
}

// reuse queries server from the same source address and port, first as the application and
// then as the proxy, and on port+1 the other way round; it returns the four answers.
func reuse(n *netns, server string, port int) string {
	src := func(p int) string { return fmt.Sprintf("%s#%d", server, p) }
	return strings.Join([]string{
		dig(n, asApp, "@"+server, "-b", src(port)),
		dig(n, asProxy, "@"+server, "-b", src(port)),
		dig(n, asProxy, "@"+server, "-b", src(port+1)),
		dig(n, asApp, "@"+server, "-b", src(port+1)),
	}, " ")
}

// newRemoteLab makes a pod-like namespace whose nameserver (dnsmasq as root on 10.0.0.2 and
// fd00:1::2, port 53) is in a second namespace behind a veth pair, as a cluster DNS is behind
// a pod's eth0, with the stand-in for meshdns and labFirewall in the pod.
func newRemoteLab(t *testing.T) *netns {
	t.Helper()
	needLabTools(t)
	pod, dns := newNetns(t), newNetns(t)
	// Created right inside the two namespaces: the host never holds either end.
	if out, err := exec.Command("ip", "link", "add", "mdns-pod", "netns", pod.name,
		"type", "veth", "peer", "name", "mdns-dns", "netns", dns.name).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	for _, side := range []struct {
		n           *netns
		dev, v4, v6 string
	}{{pod, "mdns-pod", "10.0.0.1/24", "fd00:1::1/64"}, {dns, "mdns-dns", "10.0.0.2/24", "fd00:1::2/64"}} {
		side.n.run(t, "ip", "addr", "add", side.v4, "dev", side.dev)
		side.n.run(t, "ip", "addr", "add", side.v6, "dev", side.dev, "nodad")
		side.n.run(t, "ip", "link", "set", side.dev, "up")
	}
	dns.start(t, "dnsmasq", append(dnsmasqArgs(53, realA, "2001:db8::2", "10.0.0.2", "fd00:1::2"), "--user=root")...)
	startProxy(t, pod, "10.0.0.2", "fd00:1::2")
	return pod
}

// TestNameserverReplies: the nameserver's replies to the proxy must be looked up in the
// proxy's zone, whether they come in through PREROUTING (a nameserver elsewhere) or OUTPUT (one
// on this host); otherwise they look like new connections and labFirewall drops them. Each
// case first installs the rules without those for the replies, to show the test can see that.
func TestNameserverReplies(t *testing.T) {
	for _, lab := range []struct {
		name        string
		new         func(*testing.T) *netns
		nameservers [2]string
	}{
		{"local", newLab, [2]string{"10.96.0.10", "fd00:10:96::a"}},
		{"remote", newRemoteLab, [2]string{"10.0.0.2", "fd00:1::2"}},
	} {
		for _, bc := range backendCases {
			t.Run(lab.name+"/"+bc.name, func(t *testing.T) {
				t.Parallel()
				bc.need(t)
				n := lab.new(t)
				run, ctx := bc.wrap(n.runner()), testContext(t)
				full := mustBuild(t, defaultSpec(lab.nameservers[:]...))
				noReplies := Rules{rules: slices.DeleteFunc(slices.Clone(full.rules), func(r rule) bool { return r.sport == dnsPort })}
				if err := Install(ctx, run, bc.backend, noReplies); err != nil {
					t.Fatal(err)
				}
				if got := dig(n, asProxy, "@"+lab.nameservers[0], "+time=1"); got == realA {
					t.Errorf("without the rules for replies the nameserver's answer came in (the test cannot see the problem)")
				}
				if err := Install(ctx, run, bc.backend, full); err != nil {
					t.Fatal(err)
				}
				var cases []digCase
				for _, ns := range lab.nameservers {
					cases = append(cases, digCase{"app", asApp, ns, proxyA}, digCase{"proxy", asProxy, ns, realA})
				}
				digEach(t, n, lab.name+" nameserver", cases)
			})
		}
	}
}
