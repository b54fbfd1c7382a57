// Package kube is the Kubernetes API source: informers on Services, EndpointSlices, Pods and
// Namespaces, and, while their CRDs exist, on Istio's ServiceEntries and WorkloadEntries.
//
// Invariants:
//   - Informers store records (key + model value), never API objects: the transform runs
//     before anything is stored, and accepts its own output.
//   - An object that cannot be converted is logged and adds no names; it never stops the
//     others.
//   - The API server going away changes nothing: the stores keep their content until the
//     informers list again.
//   - Snapshot is deterministic for equal content (sorted by namespace and name per kind).
package kube
