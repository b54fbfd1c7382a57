// Package e2e tests the built meshdns binary from the outside, as a user runs it: `meshdns
// serve` as a subprocess on loopback, asked by the real DNS clients dig and kdig, forwarding to
// a real dnsmasq, its registry directory edited while it serves, its admin endpoints read over
// HTTP, and the README's walk-through replayed command by command.
//
// Invariants: every process a test starts is stopped in its cleanup (meshdns with SIGTERM and
// a bounded wait for exit code 0); every listener is on 127.0.0.1 with a port picked at run
// time; waits are bounded polls, never timing assertions. A missing tool fails the test under
// CI=true and skips it elsewhere.
package e2e
