// Package kube_test runs meshdns against a real kube-apiserver and etcd with Istio's CRDs
// installed (see package harness); one API server serves every test of the package.
package kube_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshdns/meshdns/test/kube/harness"
)

var (
	cluster    *harness.Cluster
	env        *envtest.Environment
	restConfig *rest.Config
	kubeconfig string // a cluster-admin kubeconfig file for meshdns
	repoRoot   string
	clients    kubernetes.Interface
	dyn        dynamic.Interface
)

func TestMain(m *testing.M) {
	c, stop, err := harness.Start(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/kube:", err)
		os.Exit(1)
	}
	cluster, env, restConfig, kubeconfig, repoRoot = c, c.Env, c.Config, c.Kubeconfig, c.RepoRoot
	clients, dyn = c.Clients, c.Dyn
	code := m.Run()
	stop()
	os.Exit(code)
}

type meshdns = harness.Meshdns

func startMeshdns(t *testing.T, args ...string) *meshdns { return cluster.Meshdns(t, args...) }

func startWithKube(t *testing.T, args ...string) *meshdns { return cluster.MeshdnsWithKube(t, args...) }

func eventually(t *testing.T, what string, f func() error) { harness.Eventually(t, what, f) }

func ctx(t *testing.T) context.Context { return harness.Ctx(t) }
