// Package manifest decodes Kubernetes and Istio manifests (YAML or JSON) into model records:
// Services, EndpointSlices, Pods, Namespaces, ServiceEntries and WorkloadEntries. It is the one
// home of the rules for reading those objects when no API server has validated them, for the
// manifest directory and for the Istio objects of the Kubernetes source alike.
//
// Invariants:
//   - ParseFile is pure and never panics; a file with any error is rejected whole, and the error
//     names the file, the 1-based document index and a line.
//   - Host names go through dnsname.ParseHost: records hold them lower-case (ASCII only, RFC
//     4343) without a trailing dot.
//   - Unknown kinds and empty documents add nothing and are no error.
package manifest
