package capture

import "fmt"

// Backend names the netfilter front end the rules are installed with.
type Backend string

const (
	// IPTables is the host's iptables command, whichever flavour it is (nf_tables or legacy).
	IPTables Backend = "iptables"
	// IPTablesLegacy is the legacy (x_tables) flavour, iptables-legacy and its siblings.
	IPTablesLegacy Backend = "iptables-legacy"
	// NFTables is nft with its own table "inet meshdns".
	NFTables Backend = "nftables"
)

// ParseBackend accepts the name of a backend as given to --backend. An empty name is an error:
// the caller runs Detect when the flag is not set.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case IPTables, IPTablesLegacy, NFTables:
		return b, nil
	}
	return "", fmt.Errorf("capture backend %q: want %s, %s or %s", s, IPTables, IPTablesLegacy, NFTables)
}

// xtables names the save and restore commands of one iptables flavour for one family.
type xtables struct {
	save, restore string
}

// tools returns the commands of an iptables backend for family f.
func (b Backend) tools(f family) xtables {
	prefix := "iptables"
	if f == ipv6 {
		prefix = "ip6tables"
	}
	if b == IPTablesLegacy {
		prefix += "-legacy"
	}
	return xtables{save: prefix + "-save", restore: prefix + "-restore"}
}
