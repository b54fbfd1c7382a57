// Package latecrd_test starts the API server without Istio's CRDs, so that they can be
// installed while meshdns runs (the other tests share a server that has them from the start).
package latecrd_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshdns/meshdns/test/kube/harness"
)

var cluster *harness.Cluster

func TestMain(m *testing.M) {
	c, stop, err := harness.Start(false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/kube/latecrd:", err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	stop()
	os.Exit(code)
}

var serviceEntries = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}

// TestCRDsInstalledLater: without Istio's CRDs meshdns is ready and serves Kubernetes names
// (the missing kinds are simply empty); once the CRDs are installed, ServiceEntries become
// answerable without a restart.
func TestCRDsInstalledLater(t *testing.T) {
	const ns = "late"
	if _, err := cluster.Clients.CoreV1().Namespaces().Create(harness.Ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.6.1", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if _, err := cluster.Clients.CoreV1().Services(ns).Create(harness.Ctx(t), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m := cluster.MeshdnsWithKube(t)
	m.WaitReady(t)
	m.Expect(t, "web.late.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.6.1")

	crds, err := harness.IstioCRDs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(cluster.Config, envtest.CRDInstallOptions{Paths: []string{crds}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	se := harness.Object(t, harness.StaticServiceEntry(ns, "api", "api.late-crd.example", "203.0.113.90"))
	if _, err := cluster.Dyn.Resource(serviceEntries).Namespace(ns).Create(harness.Ctx(t), se, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "api.late-crd.example", dns.TypeA, "NOERROR", "203.0.113.90")
	m.Expect(t, "web.late.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.6.1")
}
