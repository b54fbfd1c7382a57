// Package table turns a model.Snapshot into an immutable name table: every name meshdns answers
// for, with its records precomputed at build time, so a query is a lowercase, a map lookup and a
// copy.
//
// Invariants: a *Table is never modified after Build returns, so any number of goroutines may
// read it without locks; owner names in stored records are lowercase FQDNs (the resolver
// rewrites them to the question's case); every name inside the cluster zone that has a
// descendant is present (possibly without records) so that it answers NODATA, not NXDOMAIN;
// short names are not stored: one alias entry per service resolves the short names of the
// service and of its endpoints at lookup time, without allocating.
//
// Names cross from the model (hosts without the trailing dot) and the options into the table
// through dnsname.Canonical, and labels joined into a name (service, namespace, endpoint
// hostname, port name) are lower-cased with dnsname.Lower: case folding is ASCII only
// (RFC 4343), never strings.ToLower.
package table
