package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// chainPrefix starts the name of every iptables chain this package owns.
const chainPrefix = "MESHDNS_"

// xtablesWait is how long iptables-restore waits for the xtables lock, which kube-proxy and
// other agents take often; the legacy flavour fails at once without it.
const xtablesWait = "--wait=10"

// table is the iptables table of c.
func (c chain) table() string {
	if c == natOutput {
		return "nat"
	}
	return "raw"
}

// builtin is the kernel's chain in which the jump to c sits.
func (c chain) builtin() string {
	if c == rawPrerouting {
		return "PREROUTING"
	}
	return "OUTPUT"
}

// iptName is the name of the chain this package owns for c.
func (c chain) iptName() string {
	return [...]string{natOutput: "MESHDNS_OUTPUT", rawOutput: "MESHDNS_RAW_OUTPUT", rawPrerouting: "MESHDNS_RAW_PREROUTING"}[c]
}

// owned is what this package owns in one iptables table, as iptables-save prints it.
type owned struct {
	chains []string            // own chains that exist
	rules  map[string][]string // "-A ..." lines by chain: own chains' rules, jumps to own chains
}

// ownedByRules is what Install leaves in table of family f.
func ownedByRules(r Rules, f family, table string) owned {
	o := owned{rules: map[string][]string{}}
	for _, c := range chains {
		if c.table() != table || !r.has(f, c) {
			continue
		}
		o.chains = append(o.chains, c.iptName())
		o.rules[c.builtin()] = append(o.rules[c.builtin()], "-A "+c.builtin()+" -j "+c.iptName())
		for _, rl := range r.rules {
			if rl.family == f && rl.chain == c {
				o.rules[c.iptName()] = append(o.rules[c.iptName()], "-A "+c.iptName()+" "+rl.iptSpec())
			}
		}
	}
	return o
}

// has reports whether chain c of family f has any rule.
func (r Rules) has(f family, c chain) bool {
	return slices.ContainsFunc(r.rules, func(rl rule) bool { return rl.family == f && rl.chain == c })
}

// parseSave extracts what this package owns from the iptables-save output of one table.
func parseSave(out string) owned {
	o := owned{rules: map[string][]string{}}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && strings.HasPrefix(f[0], ":"+chainPrefix):
			o.chains = append(o.chains, f[0][1:])
		case len(f) > 1 && f[0] == "-A" && (isOwn(f[1]) || jumpsToOwn(f)):
			// The line as printed, so that -D of it matches even with quoted arguments.
			o.rules[f[1]] = append(o.rules[f[1]], strings.TrimSpace(line))
		}
	}
	return o
}

func isOwn(chain string) bool { return strings.HasPrefix(chain, chainPrefix) }

// jumpsToOwn reports whether the rule fields f end in a jump or goto to an own chain.
func jumpsToOwn(f []string) bool {
	n := len(f)
	return n >= 2 && (f[n-2] == "-j" || f[n-2] == "-g") && isOwn(f[n-1])
}

// restoreTable returns iptables-restore --noflush input that turns have into want in table:
// declaring a chain creates it or empties it, jumps to own chains are deleted one by one (their
// text comes from iptables-save, so it matches), the wanted jumps are inserted at the top of
// the built-in chains so that rules appended there later (kube-proxy's service NAT, say)
// cannot claim the queries first, and own chains no longer wanted are deleted. The result
// is "" when there is nothing to do.
func restoreTable(table string, want, have owned) string {
	if len(want.chains) == 0 && len(have.chains) == 0 && len(have.rules) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%s\n", table)
	for _, c := range union(want.chains, have.chains) {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, c := range sortedKeys(have.rules) {
		for _, line := range have.rules[c] {
			if !isOwn(c) {
				fmt.Fprintf(&b, "-D%s\n", strings.TrimPrefix(line, "-A"))
			}
		}
	}
	writeRules(&b, want)
	for _, c := range have.chains {
		if !slices.Contains(want.chains, c) {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// writeRules writes the jumps (as inserts) and then the own chains' rules of o.
func writeRules(b *strings.Builder, o owned) {
	for _, c := range sortedKeys(o.rules) {
		for _, line := range o.rules[c] {
			if !isOwn(c) {
				fmt.Fprintf(b, "-I%s\n", strings.TrimPrefix(line, "-A"))
			}
		}
	}
	for _, c := range o.chains {
		for _, line := range o.rules[c] {
			fmt.Fprintln(b, line)
		}
	}
}

// iptSpec renders r as iptables-save prints it (after "-A CHAIN"), so that Verify can compare
// text: addresses as prefixes, the protocol match spelt out, matches in iptables' order.
func (r rule) iptSpec() string {
	var f []string
	if r.src.IsValid() {
		f = append(f, "-s", hostPrefix(r.src))
	}
	if r.dst.IsValid() {
		f = append(f, "-d", hostPrefix(r.dst))
	}
	if r.dstNet.IsValid() {
		f = append(f, "-d", r.dstNet.String())
	}
	if r.proto != "" {
		f = append(f, "-p", r.proto, "-m", r.proto)
	}
	if r.sport != 0 {
		f = append(f, "--sport", strconv.Itoa(int(r.sport)))
	}
	if r.dport != 0 {
		f = append(f, "--dport", strconv.Itoa(int(r.dport)))
	}
	f = append(f, r.iptOwner()...)
	if r.dstLocal {
		f = append(f, "-m", "addrtype", "--dst-type", "LOCAL")
	}
	if r.socket {
		// Without options the match ignores sockets bound to the wildcard address and counts
		// half-open ones: what node.go asks for, in one rule.
		f = append(f, "-m", "socket")
	}
	return strings.Join(append(f, r.iptTarget()...), " ")
}

func (r rule) iptOwner() []string {
	uid, gid := strconv.FormatUint(uint64(r.uid), 10), strconv.FormatUint(uint64(r.gid), 10)
	switch r.owner {
	case proxyUID:
		return []string{"-m", "owner", "--uid-owner", uid}
	case proxyGID:
		return []string{"-m", "owner", "--gid-owner", gid}
	case notProxy:
		return []string{"-m", "owner", "!", "--uid-owner", uid, "!", "--gid-owner", gid}
	}
	return nil
}

func (r rule) iptTarget() []string {
	arg := strconv.Itoa(int(r.arg))
	switch r.verdict {
	case doRedirect:
		return []string{"-j", "REDIRECT", "--to-ports", arg}
	case doZone:
		return []string{"-j", "CT", "--zone", arg}
	case doNotrack:
		return []string{"-j", "CT", "--notrack"}
	}
	return []string{"-j", "RETURN"}
}

// hostPrefix is a as the single-address prefix iptables-save prints (10.96.0.10/32).
func hostPrefix(a netip.Addr) string {
	return netip.PrefixFrom(a, a.BitLen()).String()
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
