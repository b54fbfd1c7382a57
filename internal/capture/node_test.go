package capture

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestBuildNodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		err  string
	}{
		{"no cluster DNS", Spec{Node: true, LocalIPs: DefaultLocalIPs},
			"node capture without a cluster DNS address: want --cluster-dns, the pods' nameserver"},
		{"zero", Spec{Node: true, ClusterDNS: []netip.Addr{{}}}, "cluster DNS: invalid (zero) address"},
		{"loopback", Spec{Node: true, ClusterDNS: addrs("127.0.0.1")},
			"cluster DNS 127.0.0.1: not a unicast address pods can reach"},
		{"unspecified", Spec{Node: true, ClusterDNS: addrs("::")}, "cluster DNS ::: not a unicast address pods can reach"},
		{"multicast", Spec{Node: true, ClusterDNS: addrs("10.96.0.10"), LocalIPs: addrs("224.0.0.53")},
			"local IP 224.0.0.53: not a unicast address pods can reach"},
		{"IPv6 link-local", Spec{Node: true, ClusterDNS: addrs("10.96.0.10"), LocalIPs: addrs("fe80::10")},
			"local IP fe80::10: an IPv6 link-local address needs an interface: pick a unique local one (fd00::/8)"},
		{"zone", Spec{Node: true, ClusterDNS: addrs("fd00:10:96::a%eth0")}, "cluster DNS fd00:10:96::a%eth0: a zone has no place in an address of lo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Build(tc.spec); err == nil || err.Error() != tc.err {
				t.Errorf("Build = %v, want %q", err, tc.err)
			}
		})
	}
}

// TestBuildNodeAddrs: mapped addresses count as IPv4, an address given twice (as cluster DNS
// and local IP, say) is put on lo once, and the sidecar's fields do not matter.
func TestBuildNodeAddrs(t *testing.T) {
	r := mustBuild(t, Spec{Node: true, All: true, ClusterDNS: addrs("::ffff:10.96.0.10", "10.96.0.10"),
		LocalIPs: addrs("10.96.0.10", "169.254.20.10")})
	if want := addrs("10.96.0.10", "169.254.20.10"); !slices.Equal(r.addrs, want) {
		t.Errorf("addresses %v, want %v", r.addrs, want)
	}
	rendered, err := r.Render(IPTables)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(rendered.IPv4, "-d 10.96.0.10/32"); n != 2 || rendered.IPv6 != "" {
		t.Errorf("rules for 10.96.0.10: %d, want 2 (UDP and TCP), and no IPv6 rules:\n%s%s", n, rendered.IPv4, rendered.IPv6)
	}
}

func TestParseAddrs(t *testing.T) {
	out := `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
1: lo    inet 10.96.0.10/32 scope global lo\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host noprefixroute \       valid_lft forever preferred_lft forever
1: lo    inet6 fd00:10:96::a/128 scope global \       valid_lft forever preferred_lft forever
`
	want := []string{"127.0.0.1/8", "10.96.0.10/32", "::1/128", "fd00:10:96::a/128"}
	if got := parseAddrs(out); !slices.Equal(got, want) {
		t.Errorf("parseAddrs = %v, want %v", got, want)
	}
}

// What a node install of nodeSpec shows, counted by hand: per family two addresses (the
// cluster DNS and the local IP), each with a UDP and a TCP rule in PREROUTING and in OUTPUT.
// iptables lines naming a MESHDNS_ chain per family: 2 chains, 2 jumps, 8 rules. nftables:
// raw_output 8 rules, raw_prerouting 16 (a socket test is two statements there).
const (
	censusNode    = "IPv4 12, IPv6 12"
	censusNodeNFT = "tables 1, rules 24"
)

// TestNodeLifecycle installs, repairs and removes the node rules with each backend: the
// addresses go on lo and come off it again, Verify reports a missing rule and a missing
// address, and nothing of other programs changes (rules, or an address of lo).
func TestNodeLifecycle(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			bc.need(t)
			n := newNetns(t)
			run, ctx := bc.wrap(n.runner()), testContext(t)
			r := mustBuild(t, nodeSpec)
			full, none := censusNode, censusNone
			if bc.backend == NFTables {
				full, none = censusNodeNFT, censusNFTOff
			}
			addForeign(t, n, bc)
			n.run(t, "ip", "addr", "add", "192.0.2.99/32", "dev", "lo")
			foreign, loBefore := foreignState(t, n, bc), loAddrs(t, n)
			ours := []string{"10.96.0.10/32", "169.254.20.10/32", "fd00:10:96::a/128", "fd00:169:254:20::10/128"}
			check := func(step, wantCensus string, wantLo []string) {
				t.Helper()
				if got := census(t, n, bc); got != wantCensus {
					t.Errorf("%s: meshdns rules: %s, want %s", step, got, wantCensus)
				}
				if got := foreignState(t, n, bc); got != foreign {
					t.Errorf("%s: other rules changed:\n%s\nwant:\n%s", step, got, foreign)
				}
				if got := loAddrs(t, n); !slices.Equal(got, wantLo) {
					t.Errorf("%s: addresses of lo %v, want %v", step, got, wantLo)
				}
			}
			wantDiff(t, ctx, run, bc.backend, r, "before install", "missing: ")

			withOurs := sortedUnion(loBefore, ours)
			for i := range 2 {
				if err := Install(ctx, run, bc.backend, r); err != nil {
					t.Fatalf("install %d: %v", i+1, err)
				}
				check(fmt.Sprintf("install %d", i+1), full, withOurs)
				wantDiff(t, ctx, run, bc.backend, r, "after install", "")
			}

			wantDiff(t, ctx, run, bc.backend, r, "after editing by hand", tamperNode(t, n, bc))
			if err := Install(ctx, run, bc.backend, r); err != nil {
				t.Fatalf("install over edited rules: %v", err)
			}
			check("install over edited rules", full, withOurs)
			wantDiff(t, ctx, run, bc.backend, r, "after repair", "")

			for i := range 2 {
				if err := Uninstall(ctx, run, bc.backend, r); err != nil {
					t.Fatalf("uninstall %d: %v", i+1, err)
				}
				check(fmt.Sprintf("uninstall %d", i+1), none, loBefore)
				wantDiff(t, ctx, run, bc.backend, r, "after uninstall", "missing: ")
			}
		})
	}
}

// tamperNode deletes one node rule and one address by hand, and returns what Verify must say.
func tamperNode(t *testing.T, n *netns, bc backendCase) string {
	t.Helper()
	n.run(t, "ip", "addr", "del", "169.254.20.10/32", "dev", "lo")
	const lostAddr = "missing: address 169.254.20.10/32 on lo"
	if bc.backend != NFTables {
		n.run(t, bc.iptables[1], "-t", "raw", "-D", "MESHDNS_RAW_PREROUTING", "-d", "fd00:10:96::a/128",
			"-p", "tcp", "-m", "tcp", "--dport", "53", "-m", "socket", "-j", "CT", "--notrack")
		return "missing: IPv6 raw: -A MESHDNS_RAW_PREROUTING -d fd00:10:96::a/128 -p tcp -m tcp --dport 53 -m socket -j CT --notrack\n" + lostAddr
	}
	const victim = "ip6 daddr fd00:10:96::a tcp dport 53 socket transparent 0 notrack"
	m := regexp.MustCompile(regexp.QuoteMeta(victim) + ` # handle (\d+)`).
		FindStringSubmatch(n.run(t, "nft", "-a", "list", "chain", "inet", "meshdns", "raw_prerouting"))
	if m == nil {
		t.Fatalf("no rule %q in raw_prerouting", victim)
	}
	n.run(t, "nft", "delete", "rule", "inet", "meshdns", "raw_prerouting", "handle", m[1])
	return "missing: table inet meshdns chain raw_prerouting: " + victim + "\n" + lostAddr
}

// loAddrs returns the addresses of lo in the namespace, sorted.
func loAddrs(t *testing.T, n *netns) []string {
	t.Helper()
	got := parseAddrs(n.run(t, "ip", "-oneline", "address", "show", "dev", "lo"))
	slices.Sort(got)
	return got
}

func sortedUnion(a, b []string) []string {
	out := union(a, b)
	slices.Sort(out)
	return out
}
