// Package upstream forwards one DNS question to the upstream servers (from --upstream or the
// nameservers of --resolv-conf) and returns the answer as a reply to the client's request.
//
// It owns the wire exchange with upstreams and the state kept about them: the order they are
// asked in (Policy), their health, idle TCP connections, the cap on outstanding exchanges and
// the coalescing of identical questions. It has no cache; that wraps a Forwarder elsewhere.
// A Forwarder is safe for concurrent use; SetServers publishes a new list copy-on-write.
//
// Invariants:
//   - The client's packet is never relayed: every try sends a fresh query with a random ID, the
//     client's question, RD, CD and AD, and meshdns's own OPT record (advertised size
//     Options.UDPSize, the client's DO bit, none of the client's EDNS options).
//   - A reply is accepted only from the server's address, with the query's ID, QR set and the
//     same question (name compared case-insensitively, type, class); any other reply is
//     dropped (counted as "invalid") and reading continues until the try times out, so spoofed
//     packets cannot answer. A UDP datagram that does not parse at all ends the UDP try: the
//     question goes to the same server over TCP, where it cannot be spoofed.
//   - UDP uses a fresh socket per try (random source port) and a 64 KiB receive buffer, so a
//     reply larger than UDPSize is still read whole; a truncated UDP reply, or one that does
//     not parse, is retried over TCP on the same server; TCP clients go over TCP.
//     TCP connections are reused one exchange at a time, at most two idle per server, closed
//     after 10s idle or by Close; a reused connection that fails is replaced once.
//   - Each try is bounded by Options.TryTimeout, the whole exchange by Options.Deadline. A
//     timeout, network error, SERVFAIL or REFUSED moves on to the next server (Sequential,
//     Random); Parallel asks all at once and only a reply that is neither wins early. The
//     last server of a walk, and every server in Parallel, has nobody to fail over to: its
//     try lasts until the deadline, sending the query again over UDP every TryTimeout on the
//     same socket with the same ID, so a late reply to any copy answers; each TryTimeout
//     without a reply counts as a timeout for health and metrics.
//   - Health: Options.FailThreshold consecutive failures (timeouts, network errors, REFUSED;
//     never SERVFAIL, an answer about one name, which like any reply shows the server
//     alive: response.Type.Refusal) mark a server down; it is skipped
//     for 1s, doubling to 30s while its probes fail; after the backoff one query at a time
//     probes it with real traffic, and one success makes it healthy. Tries cut short by the
//     deadline, the callers or a parallel winner are not failures. When every server is down,
//     all are asked anyway: failing without trying helps nobody. Available reports whether
//     any server is up or out of its backoff, for callers to skip optional lookups.
//   - Identical questions in flight (lowercased name, type, class, DO, CD, RD, transport)
//     share one exchange. It runs apart from any caller's context: a caller who gives up leaves, the
//     last one to leave cancels it. Each caller's reply is built from the shared upstream
//     message, which is never modified, with its own copy of the records.
//   - At most Options.MaxOutstanding exchanges are in flight (coalesced callers do not count),
//     shared fairly among Sources (Via.Source: the client's address): a Source with none in
//     flight is admitted while any slot is free; one with some only below MaxOutstanding/(n+1),
//     n the Sources with exchanges in flight (internal/fairshare holds the rule), so a
//     flooding client is refused first and a newcomer finds a free slot. Beyond that Forward fails at once with ErrOverloaded, for a
//     SERVFAIL rather than a queue.
//   - The returned message answers the client's request: its ID, question (exact case), RD and
//     CD; the upstream's rcode, sections and AA/RA flags (the server sets RA for clients); the upstream's AD only if the request
//     set AD or DO (RFC 6840 5.7); owners equal to the question name in the client's spelling;
//     no OPT record (the server adds its own EDNS).
//   - Hot-path failures go to Metrics and a rate-limited log line; a server marked down or
//     healthy again logs once per change.
package upstream
