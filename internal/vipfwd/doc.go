// Package vipfwd makes the VIPs of ServiceEntry hosts carry TCP without a mesh proxy
// (docs/vips.md, Forwarding): capture redirects connections to the VIP pools to its
// listener; for each one it reads the original destination, finds the VIP's host and port in
// the current table, resolves the host through the resolver's cache and upstreams (or takes
// a STATIC entry's endpoints), dials the addresses in order and copies both ways.
//
// Invariants: a connection that cannot be forwarded (no VIP, a port the ServiceEntry lacks,
// a host that does not resolve, no address answering) is reset, counted by result and logged
// at a limited rate, never per connection. No more than MaxConns connections are open at
// once; one with no bytes either way for IdleTimeout is closed. Metrics have no
// per-connection or per-host labels.
package vipfwd
