//go:build tools

// Package tools pins the real kube-apiserver and etcd that the Kubernetes integration tests run
// against. It lives in its own module so that none of their dependencies reach the product's
// go.mod; scripts/kube-tools.sh builds both binaries from here and caches them.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
