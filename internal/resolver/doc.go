// Package resolver decides every DNS answer meshdns gives, without knowing about sockets:
// Query takes a request and the client's context and returns the response and whether it may
// be reused. The server owns transports, EDNS sizes and truncation; sources and tables own
// what names exist.
//
// The decision order (docs/records.md, Answer rules) is, in one place, Query:
//
//	opcode not QUERY                      -> NOTIMP
//	not exactly one question              -> FORMERR
//	qtype 0, OPT, TSIG, meta range 128-255 -> FORMERR (RFC 6895 §3.1)
//	TKEY, MAILA, MAILB                     -> NOTIMP
//	AXFR or IXFR                           -> REFUSED
//	class not IN or ANY                    -> REFUSED, but CHAOS version.bind & co. (chaos.go)
//	no table yet, name in the cluster zone-> SERVFAIL
//	name in the table (exact, short alias, wildcard, pod name)
//	                                       -> NOERROR/AA with records, or NODATA with SOA
//	partial table (a source not ready), other name in the cluster zone
//	                                       -> SERVFAIL
//	name below the first search domain whose search walk reaches a table name with records
//	                                       -> autopath: CNAME to the FQDN + its records
//	other name in the cluster zone        -> NXDOMAIN with SOA (or forward, if configured)
//	anything else                          -> forward upstream
//
// Triage and QtypeRcode are exported for the server's fast path, which must leave every
// rejected question to Query. The RA bit is the server's to set.
//
// Invariants: the question's spelling (0x20 case) is kept in owner names; stored table records
// are never modified, only copied; a Reply marked Reusable is what every query with the same
// question from the same client would get while its Epoch is current (and before Until).
package resolver
