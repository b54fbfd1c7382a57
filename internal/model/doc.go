// Package model holds the plain records every source produces and the table consumes:
// Services, EndpointSlices, Pods, Namespaces, ServiceEntries and WorkloadEntries, stripped of
// everything DNS does not need. It imports neither Kubernetes nor a DNS library, so sources and
// the table depend on it and not on each other.
//
// Invariants: names and namespaces are as written in the manifest; host names are in
// dnsname's host spelling (lower-case in ASCII, without a trailing dot), which the sources
// produce with dnsname.ParseHost or dnsname.Host; addresses are parsed (netip), never strings.
package model
