//go:build tools

// Package tools pins the helm that the chart tests (test/kube/helm_test.go) render and lint
// deploy/helm/meshdns with. It lives in its own module so that none of helm's dependencies
// reach the product's go.mod or the test module's; scripts/helm-tool.sh builds the binary from
// here and caches it.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
