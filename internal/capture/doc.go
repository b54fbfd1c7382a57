// Package capture owns the netfilter rules that send a workload's DNS to meshdns without the
// application noticing (docs/capture.md): port-53 UDP and TCP to the resolv.conf nameservers (or
// to anywhere with Spec.All) is redirected to the proxy port, the proxy's own traffic is exempt
// by uid and gid, and conntrack zones keep the application's flows apart from the proxy's. With
// Spec.Node the rules serve a node agent instead: the pods' queries to the cluster DNS reach it
// while it listens and the cluster DNS otherwise, decided per packet (node.go).
//
// Build turns a Spec into Rules, plain data with no I/O; Render prints them for a backend
// (iptables-restore text per family, or an nft -f script); Install, Uninstall and Verify apply,
// remove and check them through a Runner, so tests can run every command inside a network
// namespace.
//
// What the package owns, and therefore the only things it ever changes:
//   - iptables backends: the chains named MESHDNS_* in the nat and raw tables of IPv4 and IPv6,
//     and every rule elsewhere that jumps to one of them;
//   - nftables: the table "inet meshdns";
//   - with Spec.Node, the node agent's addresses on lo, which Uninstall takes off when the
//     Rules it is given name them.
//
// Invariants: Install never leaves a half-applied table (one iptables-restore per family,
// committed per table; one nft transaction) and is idempotent: any number of Installs leave one
// copy, after which Verify reports no difference. Uninstall removes everything owned and
// nothing else, and succeeds when nothing is installed. Rules of other programs survive both.
// Build and Render do no I/O; the zone numbers are ZoneUpstream and ZoneApp.
package capture
