// Package agent is the source of a meshdns that takes its objects from a controller
// (serve --controller) instead of watching the API server: one delta xDS stream over gRPC,
// authenticated by a service account token, applied to the same model the Kubernetes source
// produces, and kept in --state-dir so that a restart without the controller still answers
// (docs/controller.md).
package agent
