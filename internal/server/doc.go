// Package server owns the DNS transports: UDP and TCP listeners, the rules a query's packet
// must meet, EDNS0 sizes, truncation, the RA bit, panic recovery, per-query metrics and
// graceful shutdown. What to answer is the resolver's business.
//
// Replies the resolver marks reusable are kept packed (fastpath.go) and served to later
// queries for the same question by the socket's reader itself, with the query's ID, flags,
// spelling and EDNS written in; the store is keyed by the question and void once the
// resolver's epoch (its table) changes.
//
// Invariants: a packet whose header and question cannot be read, or that is itself a
// response, gets no reply (no amplification, no reflection loops); a malformed query is
// answered FORMERR (rules.go) and never resolved or forwarded; every reply has RA set
// (setServerBits); a UDP reply is at most MaxUDPSize bytes, and one to a client outside
// AllowClients (REFUSED) no larger than its query; no source address holds more than its
// share of TCP connections, nor a connection longer than the idle timeout without a whole
// query (tcp.go); no source address holds more than its share of the MaxInflight query
// slots while others need theirs (internal/fairshare, the rule upstream's shares follow too);
// a panic while answering one query costs that query a SERVFAIL and nothing
// else; Shutdown stops taking new queries first (each UDP socket leaves its port, so a
// successor bound with ReusePort gets them), answers every query the kernel had queued for it,
// then waits for queries in flight (handover.go).
package server
