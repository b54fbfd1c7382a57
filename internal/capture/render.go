package capture

import "strings"

// Rendered is the text that installs a rule set with one backend.
type Rendered struct {
	Backend Backend
	// IPv4 and IPv6 are iptables-restore --noflush inputs of the iptables backends, as they
	// are applied on a host that has no meshdns rules yet; "" for a family without rules.
	// Fed to iptables-restore by hand a second time they would add a second jump to each
	// chain; Install deletes the jumps it finds first.
	IPv4, IPv6 string
	// NFT is the nft -f input of the nftables backend; it replaces an earlier version itself.
	NFT string
	// Addrs is the ip -batch input that puts a node agent's addresses on lo; "" for other
	// rules.
	Addrs string
}

// Render returns the text that Install applies with backend b on a host without meshdns rules.
// Install adds to the iptables text only the deletion of jumps an earlier install left.
func (r Rules) Render(b Backend) (Rendered, error) {
	if _, err := ParseBackend(string(b)); err != nil {
		return Rendered{}, err
	}
	out := Rendered{Backend: b, Addrs: renderAddrs(r.addrs)}
	if b == NFTables {
		out.NFT = renderNFT(r)
		return out, nil
	}
	out.IPv4, out.IPv6 = renderFamily(r, ipv4), renderFamily(r, ipv6)
	return out, nil
}

// renderFamily is the iptables-restore input for family f against empty tables.
func renderFamily(r Rules, f family) string {
	var b strings.Builder
	for _, table := range iptTables {
		b.WriteString(restoreTable(table, ownedByRules(r, f, table), owned{}))
	}
	return b.String()
}

// iptTables are the iptables tables the rules use, in the order they are applied.
var iptTables = []string{"nat", "raw"}

// String is what `meshdns capture print` shows: each text under a comment line that names the
// command taking it as input.
func (r Rendered) String() string {
	var b strings.Builder
	section := func(header, text string) {
		if text != "" {
			b.WriteString("# " + header + "\n" + text)
		}
	}
	section("ip -batch -", r.Addrs)
	section("nft -f -", r.NFT)
	section(r.Backend.tools(ipv4).restore+" --noflush", r.IPv4)
	section(r.Backend.tools(ipv6).restore+" --noflush", r.IPv6)
	return b.String()
}
