package capture

import (
	"context"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil"
)

// legacyFlavour runs the legacy flavour of every generic iptables command, as on a host whose
// iptables alternative points to it.
func legacyFlavour(run Runner) Runner {
	return func(ctx context.Context, stdin string, name string, args ...string) (string, error) {
		if (strings.HasPrefix(name, "iptables") || strings.HasPrefix(name, "ip6tables")) &&
			!strings.Contains(name, "-nft") && !strings.Contains(name, "-legacy") {
			name = strings.Replace(name, "tables", "tables-legacy", 1)
		}
		return run(ctx, stdin, name, args...)
	}
}

func noIPTables(name string) bool {
	return strings.HasPrefix(name, "iptables") || strings.HasPrefix(name, "ip6tables")
}

// TestDetect prepares namespaces as hosts of different kinds and checks the backend chosen.
func TestDetect(t *testing.T) {
	for _, bin := range []string{"iptables-legacy", "iptables-nft", "ip6tables-legacy"} {
		testutil.LookPath(t, bin, "iptables")
	}
	testutil.LookPath(t, "nft", "nftables")
	type step = func(*testing.T, *netns)
	cmd := func(name string, args ...string) step {
		return func(t *testing.T, n *netns) { n.run(t, name, args...) }
	}
	install := func(b Backend) step {
		return func(t *testing.T, n *netns) {
			if err := Install(testContext(t), nftFlavour(n.runner()), b, mustBuild(t, defaultSpec("10.96.0.10"))); err != nil {
				t.Fatal(err)
			}
		}
	}
	legacyRule := cmd("iptables-legacy", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT")
	nftOnly := func(r Runner) Runner { return hide(r, noIPTables) }
	nothing := func(r Runner) Runner { return hide(r, func(string) bool { return true }) }
	cases := []struct {
		name    string
		prepare []step
		host    func(Runner) Runner // the host's tools
		want    Backend
		err     string
	}{
		{name: "fresh nf_tables host", host: nftFlavour, want: IPTables},
		{name: "fresh legacy host", host: legacyFlavour, want: IPTables},
		{name: "legacy rules", host: nftFlavour, want: IPTablesLegacy, prepare: []step{legacyRule}},
		{name: "legacy IPv6 rules", host: nftFlavour, want: IPTablesLegacy, prepare: []step{
			cmd("ip6tables-legacy", "-t", "nat", "-N", "OTHER"),
			cmd("ip6tables-legacy", "-t", "nat", "-A", "OTHER", "-j", "RETURN")}},
		{name: "iptables-nft rules", host: nftFlavour, want: IPTables, prepare: []step{
			cmd("iptables-nft", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT")}},
		{name: "nftables only", host: nftOnly, want: NFTables, prepare: []step{cmd("nft", "add", "table", "inet", "other")}},
		{name: "meshdns installed with nftables", host: nftFlavour, want: NFTables, prepare: []step{install(NFTables)}},
		{name: "meshdns installed with iptables-nft beside legacy rules", host: nftFlavour, want: IPTables,
			prepare: []step{legacyRule, install(IPTables)}},
		{name: "meshdns installed with iptables-legacy", host: nftFlavour, want: IPTablesLegacy,
			prepare: []step{install(IPTablesLegacy)}},
		{name: "no tools", host: nothing, err: "no netfilter tools: install the Debian package iptables or nftables"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNetns(t)
			for _, prepare := range tc.prepare {
				prepare(t, n)
			}
			got, err := Detect(testContext(t), tc.host(n.runner()))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Detect = %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Detect = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
