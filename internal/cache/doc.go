// Package cache keeps the answers meshdns got from upstream resolvers, so repeated questions
// for names outside the mesh are answered without a round trip (docs/upstream.md, Cache).
//
// It owns storage, lifetimes and the shape of served copies; it does no networking and starts
// no goroutines. The resolver calls Lookup before forwarding and Put after, and schedules the
// refreshes that Lookup asks for (prefetch) or that serving stale implies.
//
// Invariants:
//   - An entry is keyed by the lowercased qname, qtype, qclass, and the request's DO and CD
//     bits; a key lives in at most one of the two stores (positive, negative).
//   - Each store holds at most Options.Size entries, and both together at most
//     Options.MaxBytes of estimated heap (size.go: the Go objects an entry keeps, within 25% of
//     what runtime.MemStats sees). The least recently used entries are evicted; bytes are taken
//     from the store that would hold more, so neither store loses entries to the other while it
//     holds less than half of MaxBytes.
//   - Only what is served is kept: of a negative answer or a SERVFAIL, the answer section and
//     the SOA with its DNSSEC proof, never NS records or the additional section.
//   - Stored messages are deep copies and are never modified after Put, so Lookup builds its
//     copy outside the lock. Every served message is new: the request's ID, question (exact
//     case), RD and CD; QR and RA set, AA clear, no OPT record.
//   - A Hit is served only before the entry's TTL has passed, with every record TTL counted
//     down by the whole seconds since Put (never below 0, never above the stored TTL). A Stale
//     is served only within Options.ServeStale after expiry, with every TTL set to StaleTTL.
//     A SERVFAIL is never served stale and never displaces an answer serve-stale still needs.
//   - Entries past expiry plus ServeStale are dropped when touched and never served.
//   - At most one refresh of a stale entry is in flight per key: BeginRefresh lets the first
//     query start it and hands the others its end to wait for; EndRefresh wakes them.
package cache
