package capture

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// nftTable is the nftables table this package owns; inet holds rules of both families.
const nftTable = "inet meshdns"

// nftName is the name of c in the meshdns table.
func (c chain) nftName() string {
	return [...]string{natOutput: "nat_output", rawOutput: "raw_output", rawPrerouting: "raw_prerouting"}[c]
}

// nftHeader declares the base chain for c, as nft lists it. The priorities are one below
// iptables' nat (-100) and raw (-300) hooks, so that, like the iptables backends' jumps at the
// top of the built-in chains, meshdns decides before other rules: the first NAT binding of a
// connection wins, and so does the first conntrack zone.
func (c chain) nftHeader() string {
	switch c {
	case natOutput:
		return "type nat hook output priority -101; policy accept;"
	case rawOutput:
		return "type filter hook output priority raw - 1; policy accept;"
	}
	return "type filter hook prerouting priority raw - 1; policy accept;"
}

// nftChain is one chain of the meshdns table: its name, header and rules as nft lists them.
type nftChain struct {
	name   string
	header string
	rules  []string
}

// nftChains returns the chains of the meshdns table for r. The inet table serves both
// families, so rules that name no address (the uid exemption, and everything with All) come
// out the same for IPv4 and IPv6; they are kept once.
func nftChains(r Rules) []nftChain {
	var out []nftChain
	for _, c := range chains {
		nc := nftChain{name: c.nftName(), header: c.nftHeader()}
		for _, rl := range r.rules {
			if rl.chain != c {
				continue
			}
			for _, s := range rl.nftStatements() {
				if !slices.Contains(nc.rules, s) {
					nc.rules = append(nc.rules, s)
				}
			}
		}
		if len(nc.rules) > 0 {
			out = append(out, nc)
		}
	}
	return out
}

// renderNFT returns the nft -f script that installs r. Adding the table before deleting it
// makes the delete succeed whether or not a previous version exists; the three steps are one
// transaction, so the rules are never absent and never doubled. Without rules (Uninstall) only
// the first two steps remain.
func renderNFT(r Rules) string {
	chains := nftChains(r)
	if len(chains) == 0 {
		return nftUninstall
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%stable %s {\n", nftUninstall, nftTable)
	for i, c := range chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n\t\t%s\n", c.name, c.header)
		for _, s := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", s)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// nftUninstall removes the meshdns table, and succeeds when there is none.
const nftUninstall = "table " + nftTable + "\ndelete table " + nftTable + "\n"

// nftStatements renders r as nft lists it, so that Verify can compare text: one statement,
// or two for a socket test. nft's socket expression finds wildcard sockets too, which must not
// count (node.go), and "socket wildcard 0" alone would also miss the half-open connections of
// a TCP handshake, which are no full sockets; so a wildcard socket returns first, and then any
// socket found counts. The transparent key is read only because the expression needs a key:
// it is defined for every kind of socket, and meshdns's sockets are not transparent.
func (r rule) nftStatements() []string {
	s := r.nftMatch()
	if !r.socket {
		return []string{strings.Join(append(s, r.nftVerdict()...), " ")}
	}
	wildcard := append(slices.Clone(s), "socket", "wildcard", "1", "return")
	found := append(s, "socket", "transparent", "0")
	return []string{strings.Join(wildcard, " "), strings.Join(append(found, r.nftVerdict()...), " ")}
}

// nftMatch renders the matches of r.
func (r rule) nftMatch() []string {
	var f []string
	ip := "ip"
	if r.family == ipv6 {
		ip = "ip6"
	}
	if r.src.IsValid() {
		f = append(f, ip, "saddr", r.src.String())
	}
	if r.dst.IsValid() {
		f = append(f, ip, "daddr", r.dst.String())
	}
	if r.dstNet.IsValid() {
		f = append(f, ip, "daddr", r.dstNet.String())
	}
	if r.sport != 0 {
		f = append(f, r.proto, "sport", strconv.Itoa(int(r.sport)))
	}
	if r.dport != 0 {
		f = append(f, r.proto, "dport", strconv.Itoa(int(r.dport)))
	}
	if r.proto != "" && r.sport == 0 && r.dport == 0 {
		f = append(f, "meta", "l4proto", r.proto)
	}
	f = append(f, r.nftOwner()...)
	if r.dstLocal {
		f = append(f, "fib", "daddr", "type", "local")
	}
	return f
}

func (r rule) nftOwner() []string {
	uid, gid := strconv.FormatUint(uint64(r.uid), 10), strconv.FormatUint(uint64(r.gid), 10)
	switch r.owner {
	case proxyUID:
		return []string{"meta", "skuid", uid}
	case proxyGID:
		return []string{"meta", "skgid", gid}
	case notProxy:
		return []string{"meta", "skuid", "!=", uid, "meta", "skgid", "!=", gid}
	}
	return nil
}

func (r rule) nftVerdict() []string {
	switch r.verdict {
	case doRedirect:
		return []string{"redirect", "to", ":" + strconv.Itoa(int(r.arg))}
	case doZone:
		return []string{"ct", "zone", "set", strconv.Itoa(int(r.arg))}
	case doNotrack:
		return []string{"notrack"}
	}
	return []string{"return"}
}

// parseNFT reads the chains of a table from nft's listing (or from renderNFT's script).
// Headers are normalised so that "priority raw - 1" and "priority -301" compare equal.
func parseNFT(text string) []nftChain {
	var out []nftChain
	cur := -1
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(strings.TrimSpace(line), " # handle ")
		switch {
		case strings.HasPrefix(line, "chain ") && strings.HasSuffix(line, "{"):
			out = append(out, nftChain{name: strings.Fields(line)[1]})
			cur = len(out) - 1
		case cur < 0 || line == "" || strings.HasPrefix(line, "#"):
		case line == "}":
			cur = -1
		case strings.HasPrefix(line, "type "):
			out[cur].header = normalizeHeader(line)
		default:
			out[cur].rules = append(out[cur].rules, line)
		}
	}
	return out
}

// nftPriorities are the standard priority names of nft(8) for the ip, ip6 and inet families.
var nftPriorities = map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}

// normalizeHeader replaces a named priority ("raw - 1") in a chain header by its number.
func normalizeHeader(h string) string {
	before, rest, ok := strings.Cut(h, "priority ")
	if !ok {
		return h
	}
	expr, after, ok := strings.Cut(rest, ";")
	if !ok {
		return h
	}
	n, ok := evalPriority(strings.Fields(expr))
	if !ok {
		return h
	}
	return before + "priority " + strconv.Itoa(n) + ";" + after
}

// evalPriority evaluates "NAME", "N", "NAME + N" or "NAME - N".
func evalPriority(f []string) (int, bool) {
	if len(f) != 1 && len(f) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	if named, ok := nftPriorities[f[0]]; ok {
		n, err = named, nil
	}
	if err != nil || len(f) == 1 {
		return n, err == nil
	}
	off, err := strconv.Atoi(f[2])
	switch {
	case err != nil:
		return 0, false
	case f[1] == "+":
		return n + off, true
	case f[1] == "-":
		return n - off, true
	}
	return 0, false
}
