package capture

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// lifecycleSpec has a nameserver of each family, so that both iptables families hold rules.
var lifecycleSpec = defaultSpec("10.96.0.10", "fd00:10:96::a")

// What a full install of lifecycleSpec shows, counted by hand from the rules, not by the code
// under test. iptables, per family: nat has its chain, the jump, 2 exemptions, 2 redirects;
// raw has 2 chains, 2 jumps, 5 OUTPUT rules (3 for queries to the nameserver, 1 for the
// proxy's replies, 1 for a local nameserver's) and 1 PREROUTING rule. nftables, whose inet
// table shares rules without addresses between the families: nat_output 2 + 2*2,
// raw_output 2*(3+1) + 1, raw_prerouting 2; with IPv4 only 2 + 2, 3 + 1 + 1, 1.
const (
	censusFull   = "IPv4 16, IPv6 16"
	censusV4     = "IPv4 16, IPv6 0"
	censusNone   = "IPv4 0, IPv6 0"
	censusNFT    = "tables 1, rules 17"
	censusNFTV4  = "tables 1, rules 10"
	censusNFTOff = "tables 0, rules 0"
)

func mustBuild(t *testing.T, s Spec) Rules {
	t.Helper()
	r, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestInstallLifecycle installs, repairs and removes the rules with each backend in a
// namespace of its own and checks each step against the live rule set.
func TestInstallLifecycle(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			bc.need(t)
			n := newNetns(t)
			run, ctx := bc.wrap(n.runner()), testContext(t)
			r, v4only := mustBuild(t, lifecycleSpec), mustBuild(t, defaultSpec("10.96.0.10"))
			full, partial, none := censusFull, censusV4, censusNone
			if bc.backend == NFTables {
				full, partial, none = censusNFT, censusNFTV4, censusNFTOff
			}
			addForeign(t, n, bc)
			foreign := foreignState(t, n, bc)
			if !strings.Contains(foreign, "8081") {
				t.Fatalf("the foreign rules are not listed:\n%s", foreign)
			}
			check := func(step, wantCensus string) {
				t.Helper()
				if got := census(t, n, bc); got != wantCensus {
					t.Errorf("%s: meshdns rules: %s, want %s", step, got, wantCensus)
				}
				if got := foreignState(t, n, bc); got != foreign {
					t.Errorf("%s: other rules changed:\n%s\nwant:\n%s", step, got, foreign)
				}
			}
			wantDiff(t, ctx, run, bc.backend, r, "before install", "missing: ")

			for i := range 2 {
				if err := Install(ctx, run, bc.backend, r); err != nil {
					t.Fatalf("install %d: %v", i+1, err)
				}
				check(fmt.Sprintf("install %d", i+1), full)
				wantDiff(t, ctx, run, bc.backend, r, "after install", "")
			}

			wantDiff(t, ctx, run, bc.backend, r, "after editing by hand", tamper(t, n, bc))
			if err := Install(ctx, run, bc.backend, r); err != nil {
				t.Fatalf("install over edited rules: %v", err)
			}
			check("install over edited rules", full)
			wantDiff(t, ctx, run, bc.backend, r, "after repair", "")

			if err := Install(ctx, run, bc.backend, v4only); err != nil {
				t.Fatalf("install without IPv6 nameservers: %v", err)
			}
			check("install without IPv6 nameservers", partial)
			wantDiff(t, ctx, run, bc.backend, v4only, "after install without IPv6", "")

			for i := range 2 {
				if err := Uninstall(ctx, run, bc.backend, Rules{}); err != nil {
					t.Fatalf("uninstall %d: %v", i+1, err)
				}
				check(fmt.Sprintf("uninstall %d", i+1), none)
				wantDiff(t, ctx, run, bc.backend, r, "after uninstall", "missing: ")
			}
		})
	}
}

// wantDiff checks Verify's difference: exactly want, or with a want ending in ": " (a
// prefix), any difference whose lines all start with it.
func wantDiff(t *testing.T, ctx context.Context, run Runner, b Backend, r Rules, step, want string) {
	t.Helper()
	got, err := Verify(ctx, run, b, r)
	if err != nil {
		t.Fatalf("%s: verify: %v", step, err)
	}
	if strings.HasSuffix(want, ": ") {
		for _, line := range strings.Split(got, "\n") {
			if !strings.HasPrefix(line, want) {
				t.Errorf("%s: verify reported %q, want lines starting %q", step, got, want)
				return
			}
		}
		return
	}
	if got != want {
		t.Errorf("%s: verify reported\n%s\nwant\n%s", step, got, want)
	}
}

// tamper deletes one meshdns rule and adds one by hand, and returns what Verify must say.
func tamper(t *testing.T, n *netns, bc backendCase) string {
	t.Helper()
	if bc.backend != NFTables {
		n.run(t, bc.iptables[0], "-t", "nat", "-D", "MESHDNS_OUTPUT", "-d", "10.96.0.10/32",
			"-p", "tcp", "-m", "tcp", "--dport", "53", "-j", "REDIRECT", "--to-ports", "15053")
		n.run(t, bc.iptables[1], "-t", "raw", "-A", "PREROUTING", "-j", "MESHDNS_RAW_PREROUTING")
		return "missing: IPv4 nat: -A MESHDNS_OUTPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 15053\n" +
			"unexpected: IPv6 raw: -A PREROUTING -j MESHDNS_RAW_PREROUTING"
	}
	const victim = "ip daddr 10.96.0.10 tcp dport 53 redirect to :15053"
	m := regexp.MustCompile(regexp.QuoteMeta(victim) + ` # handle (\d+)`).
		FindStringSubmatch(n.run(t, "nft", "-a", "list", "chain", "inet", "meshdns", "nat_output"))
	if m == nil {
		t.Fatalf("no rule %q in nat_output", victim)
	}
	n.run(t, "nft", "delete", "rule", "inet", "meshdns", "nat_output", "handle", m[1])
	n.run(t, "nft", "add", "rule", "inet", "meshdns", "raw_prerouting", "udp", "sport", "9", "accept")
	return "missing: table inet meshdns chain nat_output: " + victim + "\n" +
		"unexpected: table inet meshdns chain raw_prerouting: udp sport 9 accept"
}

// addForeign adds rules of "another program" next to where meshdns puts its own.
func addForeign(t *testing.T, n *netns, bc backendCase) {
	t.Helper()
	if bc.backend == NFTables {
		n.run(t, "nft", "add", "table", "inet", "other")
		n.run(t, "nft", "add", "chain", "inet", "other", "out", "{ type nat hook output priority -100; }")
		n.run(t, "nft", "add", "rule", "inet", "other", "out", "tcp", "dport", "8080", "redirect", "to", ":8081")
		return
	}
	for _, ipt := range bc.iptables {
		n.run(t, ipt, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "8081")
		n.run(t, ipt, "-t", "nat", "-N", "FOREIGN")
		n.run(t, ipt, "-t", "nat", "-A", "FOREIGN", "-p", "udp", "--dport", "53", "-j", "RETURN")
		n.run(t, ipt, "-t", "nat", "-A", "OUTPUT", "-j", "FOREIGN")
		n.run(t, ipt, "-t", "raw", "-A", "PREROUTING", "-p", "udp", "--dport", "9999", "-j", "NOTRACK")
	}
}

// foreignState is every rule and chain in the namespace that is not meshdns's, without
// counters.
func foreignState(t *testing.T, n *netns, bc backendCase) string {
	t.Helper()
	if bc.backend == NFTables {
		return withoutTable(n.run(t, "nft", "list", "ruleset"), "table "+nftTable+" {")
	}
	var b strings.Builder
	for _, ipt := range bc.iptables {
		for _, table := range []string{"nat", "raw", "filter"} {
			for _, line := range strings.Split(n.run(t, ipt+"-save", "-t", table), "\n") {
				if strings.HasPrefix(line, "#") || strings.Contains(line, chainPrefix) {
					continue
				}
				if strings.HasPrefix(line, ":") {
					line = strings.Fields(line)[0]
				}
				fmt.Fprintf(&b, "%s %s\n", ipt, line)
			}
		}
	}
	return b.String()
}

// withoutTable removes the table that starts with the line start from nft list ruleset output.
func withoutTable(ruleset, start string) string {
	var b strings.Builder
	skip := false
	for _, line := range strings.Split(ruleset, "\n") {
		switch {
		case line == start:
			skip = true
		case skip && line == "}":
			skip = false
		case !skip:
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// census counts what meshdns has in the namespace, read with the backend's own listing
// commands: lines naming a MESHDNS_ chain per family, or meshdns tables and their rules.
func census(t *testing.T, n *netns, bc backendCase) string {
	t.Helper()
	if bc.backend == NFTables {
		tables, rules := 0, 0
		if hasNFTTable(n.run(t, "nft", "list", "tables")) {
			tables = 1
			for _, c := range parseNFT(n.run(t, "nft", "list", "table", "inet", "meshdns")) {
				rules += len(c.rules)
			}
		}
		return fmt.Sprintf("tables %d, rules %d", tables, rules)
	}
	var counts []string
	for i, ipt := range bc.iptables {
		lines := 0
		for _, table := range []string{"nat", "raw"} {
			lines += strings.Count(n.run(t, ipt+"-save", "-t", table), chainPrefix)
		}
		counts = append(counts, fmt.Sprintf("%s %d", families[i], lines))
	}
	return strings.Join(counts, ", ")
}

// TestInstallVIPs installs the rules with the VIP pools (capture install --vips) with each
// backend: the live rules show the redirect of each pool to the forwarder port, Verify finds
// them, a missing one is reported, and Uninstall removes them with the rest.
func TestInstallVIPs(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			bc.need(t)
			n := newNetns(t)
			run, ctx := bc.wrap(n.runner()), testContext(t)
			r := mustBuild(t, withVIPs(defaultSpec("10.96.0.10")))
			if err := Install(ctx, run, bc.backend, r); err != nil {
				t.Fatalf("install: %v", err)
			}
			wantDiff(t, ctx, run, bc.backend, r, "after install", "")
			live := n.run(t, "nft", "list", "ruleset")
			want := []string{"ip daddr 240.240.0.0/16 meta l4proto tcp redirect to :15055",
				"ip6 daddr 2001:2::/48 meta l4proto tcp redirect to :15055"}
			if bc.backend != NFTables {
				live = n.run(t, bc.iptables[0]+"-save", "-t", "nat") + n.run(t, bc.iptables[1]+"-save", "-t", "nat")
				want = []string{"-A MESHDNS_OUTPUT -d 240.240.0.0/16 -p tcp -m tcp -j REDIRECT --to-ports 15055",
					"-A MESHDNS_OUTPUT -d 2001:2::/48 -p tcp -m tcp -j REDIRECT --to-ports 15055"}
			}
			for _, w := range want {
				if !strings.Contains(live, w) {
					t.Errorf("live rules lack %q:\n%s", w, live)
				}
			}
			wantDiff(t, ctx, run, bc.backend, mustBuild(t, defaultSpec("10.96.0.10")), "without --vips", "unexpected: ")
			if err := Uninstall(ctx, run, bc.backend, Rules{}); err != nil {
				t.Fatalf("uninstall: %v", err)
			}
			wantDiff(t, ctx, run, bc.backend, r, "after uninstall", "missing: ")
		})
	}
}
