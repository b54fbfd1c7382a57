// Package inject is the sidecar injector's admission logic (docs/injection.md): which pods get
// meshdns (Select), the init containers and volumes they get (Config.Containers,
// Config.Volumes: a sidecar that watches the API server, or an agent of the controller), the
// JSONPatch that adds them (Patch), and the HTTP handler that answers the API server's
// AdmissionReviews (Handler), plus the TLS certificate that follows its files (CertReloader).
//
// Invariants: Patch of a pod that already holds an injected container is empty, so the API
// server may call the webhook any number of times (reinvocationPolicy) and the pod gets one
// copy; the injected init containers come first, capture before the sidecar, both before the
// pod's own. The handler never fails a pod's admission: a request it cannot read is answered
// with an error (and the API server's failurePolicy decides), a pod it cannot read is let
// through unchanged with a warning. Nothing here reads the API server.
package inject
