package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/vipfwd"
)

// The two "external databases" of the VIP test: same port, different addresses, each known to
// the cluster DNS under its own name and described by a ServiceEntry without addresses.
const (
	ordersDB    = "orders-db.corp.example.com"
	inventoryDB = "inventory-db.corp.example.com"
	ordersIP    = "192.0.2.11"
	inventoryIP = "192.0.2.12"
	ordersIP6   = "fd00:db::11"
)

const vipEntries = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: orders-db, namespace: db}
spec:
  hosts: [` + ordersDB + `]
  ports: [{number: 3306, name: mysql, protocol: TCP}]
  location: MESH_EXTERNAL
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inventory-db, namespace: db}
spec:
  hosts: [` + inventoryDB + `]
  ports: [{number: 3306, name: mysql, protocol: TCP}]
  location: MESH_EXTERNAL
  resolution: DNS
`

// TestVIPForwarding runs meshdns --forward-vips behind capture --vips, with each backend, in a
// pod-like namespace: an ordinary user connecting by name reaches each database through its
// VIP (the original destination read from the redirected socket), and over the IPv6 VIP its
// IPv6 address (AAAA asked upstream for an IPv6 connection), the proxy's uid is not
// redirected, and a VIP on a port its ServiceEntry lacks is reset.
func TestVIPForwarding(t *testing.T) {
	for _, backend := range []string{"iptables", "iptables-legacy", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			n, meshdnsLog := vipPod(t, false)
			n.Run(t, meshdnsBin, "capture", "install", "--backend", backend, "--vips")
			t.Cleanup(func() { n.Command(meshdnsBin, "capture", "uninstall", "--backend", backend).Run() })
			n.Run(t, meshdnsBin, "capture", "verify", "--backend", backend, "--vips")

			for name, banner := range map[string]string{ordersDB: "orders", inventoryDB: "inventory"} {
				if got, err := connectAs(n, "1000", name, "3306", "10"); got != banner || err != nil {
					t.Errorf("uid 1000 to %s:3306: %q (%v), want banner %q", name, got, err, banner)
				}
			}
			vip := strings.TrimSpace(n.Run(t, "dig", "@127.0.0.1", "-p", "15053", "+short", ordersDB))
			if !strings.HasPrefix(vip, "240.240.") {
				t.Fatalf("%s answered %q, want a VIP", ordersDB, vip)
			}
			vip6 := strings.TrimSpace(n.Run(t, "dig", "@127.0.0.1", "-p", "15053", "+short", "AAAA", ordersDB))
			if got, err := connectAs(n, "1000", vip6, "3306", "10"); got != "orders over IPv6" || err != nil {
				t.Errorf("uid 1000 to the IPv6 VIP %s:3306: %q (%v), want the IPv6 server's banner", vip6, got, err)
			}
			if got, err := connectAs(n, "1337", vip, "3306", "2"); err == nil {
				t.Errorf("uid 1337 to the VIP %s:3306 got %q: it was redirected", vip, got)
			}
			if got, err := connectAs(n, "1000", vip, "3307", "10"); err == nil {
				t.Errorf("uid 1000 to the VIP %s:3307 got %q, want a refusal", vip, got)
			}
			eventually(t, readyTimeout, "refusal logged", func() string {
				if !strings.Contains(meshdnsLog.String(), "reason=no-port") {
					return "no log line with reason=no-port"
				}
				return ""
			})
		})
	}
}

// natTTL is the TTL of the cluster DNS's answers in TestVIPKernelPath, in seconds: how long
// its kernel path's entries last.
const natTTL = 10

// TestVIPKernelPath runs TestVIPForwarding's pod with --vip-nat: a connection to a database
// by name is forwarded, and later connections to its VIP (IPv4 and IPv6) reach it while
// meshdns is stopped (SIGSTOP), by the nftables DNAT entry the forwarder wrote, until the
// answer's TTL ends; then they go to the forwarder again, and once meshdns runs, through it.
func TestVIPKernelPath(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			n, _ := vipPod(t, true)
			n.Run(t, meshdnsBin, "capture", "install", "--backend", backend, "--vips")
			t.Cleanup(func() { n.Command(meshdnsBin, "capture", "uninstall", "--backend", backend).Run() })
			t.Cleanup(func() { n.Command("nft", "delete", "table", "inet", vipfwd.NATTable).Run() })
			vip := strings.TrimSpace(n.Run(t, "dig", "@127.0.0.1", "-p", "15053", "+short", ordersDB))
			vip6 := strings.TrimSpace(n.Run(t, "dig", "@127.0.0.1", "-p", "15053", "+short", "AAAA", ordersDB))

			// First connections: through the forwarder, which writes the entries.
			for _, c := range []struct{ host, banner string }{{ordersDB, "orders"}, {vip6, "orders over IPv6"}} {
				if got, err := connectAs(n, "1000", c.host, "3306", "10"); got != c.banner || err != nil {
					t.Fatalf("uid 1000 to %s:3306: %q (%v), want banner %q", c.host, got, err, c.banner)
				}
			}
			for _, m := range []struct{ name, entry string }{
				{"v4", vip + " . 3306 timeout"}, {"v6", vip6 + " . 3306 timeout"}} {
				eventually(t, readyTimeout, "the entry of map "+m.name, func() string {
					if out := n.Run(t, "nft", "list", "map", "inet", vipfwd.NATTable, m.name); !strings.Contains(out, m.entry) {
						return out
					}
					return ""
				})
			}

			pid := strings.Fields(n.Run(t, "pgrep", "-f", "--newest", "serve --registry .* --vip-nat"))[0]
			signal := func(sig string) { n.Run(t, "kill", "-"+sig, pid) }
			signal("STOP")
			t.Cleanup(func() { n.Command("kill", "-CONT", pid).Run() })
			for _, c := range []struct{ vip, banner string }{{vip, "orders"}, {vip6, "orders over IPv6"}} {
				if got, err := connectAs(n, "1000", c.vip, "3306", "5"); got != c.banner || err != nil {
					t.Errorf("uid 1000 to %s:3306 with meshdns stopped: %q (%v), want banner %q by the kernel path", c.vip, got, err, c.banner)
				}
			}
			// The entries expire with the answer's TTL: connections go to the stopped
			// forwarder again and get nothing.
			eventually(t, 2*natTTL*time.Second, "the entries expire", func() string {
				if out := n.Run(t, "nft", "list", "map", "inet", vipfwd.NATTable, "v4"); strings.Contains(out, vip+" . 3306") {
					return out
				}
				return ""
			})
			if got, err := connectAs(n, "1000", vip, "3306", "2"); err == nil {
				t.Errorf("uid 1000 to %s:3306 after the entry expired, meshdns stopped: %q, want no answer", vip, got)
			}
			signal("CONT")
			if got, err := connectAs(n, "1000", ordersDB, "3306", "10"); got != "orders" || err != nil {
				t.Errorf("uid 1000 to %s:3306, meshdns running again: %q (%v), want banner orders", ordersDB, got, err)
			}
		})
	}
}

// vipPod prepares a namespace like capturedPod's, with the two databases, the cluster DNS
// knowing them, and meshdns as uid 1337 with --forward-vips and their ServiceEntries. With
// nat, meshdns also has --vip-nat and CAP_NET_ADMIN, and the cluster DNS's answers a TTL of
// natTTL.
func vipPod(t *testing.T, nat bool) (*netns, *testutil.SyncBuffer) {
	for _, tool := range []string{"dig", "dnsmasq", "setpriv", "bash", "timeout"} {
		need(t, tool)
	}
	ttl := "60"
	if nat {
		need(t, "nft")
		ttl = fmt.Sprint(natTTL)
	}
	n := newNetns(t)
	n.WriteEtc(t, "resolv.conf", captureResolvConf)
	for _, ip := range []string{clusterDNS, ordersIP, inventoryIP} {
		n.Run(t, "ip", "addr", "add", ip+"/32", "dev", "lo")
	}
	n.Run(t, "ip", "-6", "addr", "add", ordersIP6+"/128", "dev", "lo", "nodad")
	// A pod's default routes, here ones that lead nowhere: the kernel routes a VIP before nat
	// OUTPUT redirects it, and what is not redirected is lost.
	n.Run(t, "ip", "route", "add", "default", "dev", "lo")
	n.Run(t, "ip", "-6", "route", "add", "default", "dev", "lo")
	bannerServer(t, n, ordersIP+":3306", "orders")
	bannerServer(t, n, inventoryIP+":3306", "inventory")
	bannerServer(t, n, "["+ordersIP6+"]:3306", "orders over IPv6")
	start(t, n, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--bind-interfaces", "--listen-address="+clusterDNS, "--port=53", "--pid-file=", "--user=root",
		"--log-facility=-", "--local=/example.com/", "--local-ttl="+ttl,
		"--host-record="+ordersDB+","+ordersIP+","+ordersIP6, "--host-record="+inventoryDB+","+inventoryIP)
	waitAnswerAt(t, n, clusterDNS, "53", ordersDB, ordersIP)
	bin, registry := readableByProxy(t)
	if err := os.WriteFile(filepath.Join(registry, "databases.yaml"), []byte(vipEntries), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := []string{"--reuid", "1337", "--regid", "1337", "--clear-groups", bin, "serve", "--registry", registry,
		"--listen", "127.0.0.1:15053", "--admin", "", "--forward-vips"}
	if nat {
		argv = append(append([]string{"--inh-caps", "+net_admin", "--ambient-caps", "+net_admin"}, argv...), "--vip-nat")
	}
	log := start(t, n, "setpriv", argv...)
	eventually(t, readyTimeout, ordersDB+" answered with a VIP", func() string {
		got, _ := n.Command("dig", "@127.0.0.1", "-p", "15053", "+short", "+tries=1", "+time=1", ordersDB).Output()
		if !strings.HasPrefix(string(got), "240.240.") {
			return fmt.Sprintf("dig said %q", got)
		}
		return ""
	})
	return n, log
}

// bannerServer listens on addr inside n and sends banner on each connection.
func bannerServer(t *testing.T, n *netns, addr, banner string) {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, n.Name, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(readyTimeout))
			io.WriteString(c, banner+"\n")
			c.Close()
		}
	}()
}

// connectAs connects to host:port inside n as uid (name resolution by glibc, through
// capture) and returns the first line it reads, giving up after seconds.
func connectAs(n *netns, uid, host, port, seconds string) (string, error) {
	out, err := n.Command("setpriv", "--reuid", uid, "--regid", uid, "--clear-groups",
		"timeout", seconds, "bash", "-c", "exec 3<>/dev/tcp/$0/$1 && head -n1 <&3", host, port).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
