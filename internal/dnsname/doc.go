// Package dnsname is the one home of meshdns's rules for DNS names.
//
// Names are case-insensitive in ASCII only (RFC 4343): 'A' and 'a' are the same letter, but
// no other byte is folded, so Unicode case mapping (strings.ToLower) is never used on a name.
// Two spellings exist and each has its place:
//   - FQDN: lower-case with the trailing dot ("reviews.prod.svc.cluster.local."), the form of
//     the name table, the resolver, the cache and every configured domain;
//   - host: lower-case without the trailing dot ("api.example.com"), the form of the model,
//     as Kubernetes and Istio objects write host names.
//
// Names read from configuration or manifests go through ToFQDN or ParseHost once, which
// validate and normalise; names from the wire are already checked by the packet parser and
// only need Lower or EqualFold.
package dnsname
