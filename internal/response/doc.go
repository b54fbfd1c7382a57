// Package response classifies a DNS reply once: what it says (an answer, NODATA, NXDOMAIN, a
// failure of the server, another error) and whether it may be cached. The resolver, the cache
// and the forwarder (failover, health, failure metrics) all read this one verdict instead of
// testing rcodes themselves.
//
// It is a leaf: it imports only miekg/dns and dnsname, and it looks at a reply alone (its own
// question section included), never at the request it answers (matching a reply to its
// question is the caller's job).
package response
