// Package upstream forwards one DNS question to the upstream servers (from --upstream or the
// nameservers of --resolv-conf) and returns the answer as a reply to the client's request.
//
// It owns the wire exchange with upstreams and nothing above it: no cache, no health state, no
// coalescing; those wrap a Forwarder in other packages. A Forwarder holds only its
// configuration, so it is safe for concurrent use.
//
// Invariants:
//   - The client's packet is never relayed: every try sends a fresh query with a random ID, the
//     client's question, RD, CD and AD, and meshdns's own OPT record (advertised size
//     Options.UDPSize, the client's DO bit, none of the client's EDNS options).
//   - A reply is accepted only from the server's address, with the query's ID, QR set and the
//     same question (name compared case-insensitively, type, class); anything else is dropped
//     and reading continues until the try times out, so spoofed packets cannot answer.
//   - UDP uses a fresh socket per try (random source port) and a receive buffer of UDPSize;
//     a truncated UDP reply is retried over TCP on the same server; TCP clients go over TCP.
//   - Each try is bounded by Options.TryTimeout, the whole Forward by Options.Deadline or the
//     context, whichever ends first. Servers are tried in order; a timeout, network error,
//     SERVFAIL or REFUSED moves on to the next server.
//   - The returned message answers the client's request: its ID, question (exact case), RD and
//     CD; the upstream's rcode, sections and AA/RA/AD flags; no OPT record (the server adds its
//     own EDNS).
package upstream
