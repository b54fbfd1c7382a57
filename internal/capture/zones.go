package capture

import "net/netip"

// zoneRules put the applications' DNS flows and the proxy's upstream flows in different
// conntrack zones.
//
// Conntrack keys a UDP flow by its 5-tuple and remembers it for 30 seconds after the last
// packet (120 once it has seen traffic both ways), longer than the socket that made it. An
// application's query A:p -> NS:53 gets an entry whose NAT binding redirects it to the proxy.
// The proxy's upstream query goes to the same NS:53 from the same address A, from an ephemeral
// port the kernel hands out again as soon as the application's socket is closed. When it picks
// p, the proxy's query has the very tuple of the application's entry, conntrack applies that
// entry's binding, and the query is redirected to the proxy itself: the uid exemption cannot
// help, NAT rules only see a connection's first packet. The other way round, an application
// query from a port an earlier proxy query used matches the proxy's entry, which has no NAT,
// and bypasses the proxy. Either way an answer is lost or comes from the wrong server, and
// glibc, which sends A and AAAA in parallel from one socket and waits for both, stalls for its
// 5-second timeout. In separate zones equal tuples are separate entries, so this cannot happen:
//
//   - ZoneUpstream: the proxy's packets to NS:53 (by uid or gid, like the NAT exemption), and
//     the nameserver's replies to an address of this host: in PREROUTING when the nameserver
//     is elsewhere, in OUTPUT when it runs here (127.0.0.53, say). Every local query to NS:53
//     but the proxy's is redirected, so these replies can only be for the proxy;
//   - ZoneApp: every other packet to NS:53, and the proxy's replies from ProxyPort to an
//     address of this host. Those replies are the reply direction of the application's entry
//     (127.0.0.1:ProxyPort -> A:p) and must be looked up in its zone, or their source would not
//     be translated back to NS:53 and the application would drop the answer.
//
// A reply looked up in the wrong zone is not lost by conntrack, but it starts a new entry, and
// a stateful firewall ("accept established, drop the rest") drops it as a new connection. The
// reply rules ask for a local destination so that forwarded DNS (a node routing its pods'
// queries) stays in the default zone, where its own NAT entries are. TCP needs no zones: a SYN
// that meets the entry of a closed connection makes conntrack start a new one, which the NAT
// rules see afresh.
func zoneRules(s Spec, f family, dsts []netip.Addr) []rule {
	base := rule{family: f, chain: rawOutput, proto: "udp", uid: s.ProxyUID, gid: s.ProxyGID, verdict: doZone}
	var out []rule
	for _, dst := range dsts {
		query := with(base, func(r *rule) { r.dst, r.dport = dst, dnsPort })
		out = append(out,
			with(query, func(r *rule) { r.owner, r.arg = proxyUID, ZoneUpstream }),
			with(query, func(r *rule) { r.owner, r.arg = proxyGID, ZoneUpstream }),
			with(query, func(r *rule) { r.owner, r.arg = notProxy, ZoneApp }))
	}
	out = append(out, with(base, func(r *rule) { r.sport, r.dstLocal, r.arg = s.ProxyPort, true, ZoneApp }))
	for _, c := range []chain{rawOutput, rawPrerouting} {
		for _, dst := range dsts {
			out = append(out, with(base, func(r *rule) {
				r.chain, r.src, r.sport, r.dstLocal, r.arg = c, dst, dnsPort, true, ZoneUpstream
			}))
		}
	}
	return out
}
