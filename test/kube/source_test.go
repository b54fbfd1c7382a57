package kube_test

import (
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/meshdns/meshdns/test/kube/harness"
)

func createNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := clients.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func service(ns, name string, spec corev1.ServiceSpec) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func httpPort() []corev1.ServicePort {
	return []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}
}

// endpointSlice is what the EndpointSlice controller would write for service svc.
func endpointSlice(ns, svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-x1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

func endpoint(ip string, ready bool, hostname string) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}
	if hostname != "" {
		ep.Hostname = ptr.To(hostname)
	}
	return ep
}

// TestCoreKinds: creating, updating and deleting Services, EndpointSlices and Pods in the API
// server changes meshdns's answers.
func TestCoreKinds(t *testing.T) {
	const ns = "shop"
	createNamespace(t, ns)
	m := startWithKube(t)
	m.WaitReady(t)
	svcs := clients.CoreV1().Services(ns)
	slices := clients.DiscoveryV1().EndpointSlices(ns)

	// A ClusterIP service: A, PTR, SRV.
	web, err := svcs.Create(ctx(t), service(ns, "web", corev1.ServiceSpec{ClusterIP: "10.96.1.10", Ports: httpPort()}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "web.shop.svc.cluster.local", dns.TypeA, "NOERROR", "10.96.1.10")
	m.Expect(t, "10.1.96.10.in-addr.arpa", dns.TypePTR, "NOERROR", "web.shop.svc.cluster.local.")
	m.Expect(t, "_http._tcp.web.shop.svc.cluster.local", dns.TypeSRV, "NOERROR", "web.shop.svc.cluster.local.")

	// Update: a port renamed moves the SRV name.
	web.Spec.Ports[0].Name = "www"
	if _, err := svcs.Update(ctx(t), web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "_www._tcp.web.shop.svc.cluster.local", dns.TypeSRV, "NOERROR", "web.shop.svc.cluster.local.")
	m.Expect(t, "_http._tcp.web.shop.svc.cluster.local", dns.TypeSRV, "NXDOMAIN")

	// A headless service and its slice: ready endpoints only, by hostname or dashed address.
	if _, err := svcs.Create(ctx(t), service(ns, "db", corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: httpPort()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	es, err := slices.Create(ctx(t), endpointSlice(ns, "db",
		endpoint("10.244.1.2", true, "db-0"), endpoint("10.244.1.3", true, ""), endpoint("10.244.1.4", false, "db-2")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "db.shop.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.1.2", "10.244.1.3")
	m.Expect(t, "db-0.db.shop.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.1.2")
	m.Expect(t, "10-244-1-3.db.shop.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.1.3")
	m.Expect(t, "db-2.db.shop.svc.cluster.local", dns.TypeA, "NXDOMAIN")

	// The slice updated: db-2 becomes ready.
	es.Endpoints[2].Conditions.Ready = ptr.To(true)
	if _, err := slices.Update(ctx(t), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "db-2.db.shop.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.1.4")
	m.Expect(t, "db.shop.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.1.2", "10.244.1.3", "10.244.1.4")

	// ExternalName: a CNAME.
	if _, err := svcs.Create(ctx(t), service(ns, "legacy", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.legacy.example.com"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "legacy.shop.svc.cluster.local", dns.TypeCNAME, "NOERROR", "db.legacy.example.com.")

	// A pod: its dashed name answers once its namespace exists, and a StatefulSet-style pod
	// names its endpoint through hostname and subdomain.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-1"},
		Spec: corev1.PodSpec{Hostname: "db-1", Subdomain: "db", Containers: []corev1.Container{{Name: "db", Image: "db"}}}}
	pod, err = clients.CoreV1().Pods(ns).Create(ctx(t), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.PodIP, pod.Status.PodIPs = "10.244.1.3", []corev1.PodIP{{IP: "10.244.1.3"}}
	if _, err := clients.CoreV1().Pods(ns).UpdateStatus(ctx(t), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	es, err = slices.Get(ctx(t), "db-x1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es.Endpoints[1].TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: "db-1", Namespace: ns}
	if _, err := slices.Update(ctx(t), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "db-1.db.shop.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.1.3")
	m.Expect(t, "10-244-1-3.shop.pod.cluster.local", dns.TypeA, "NOERROR", "10.244.1.3")

	// Deletes.
	if err := svcs.Delete(ctx(t), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "web.shop.svc.cluster.local", dns.TypeA, "NXDOMAIN")
	// The reverse name is no longer meshdns's: it is forwarded, and these tests have no upstream.
	m.Expect(t, "10.1.96.10.in-addr.arpa", dns.TypePTR, "SERVFAIL")
	if err := slices.Delete(ctx(t), "db-x1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Expect(t, "db-0.db.shop.svc.cluster.local", dns.TypeA, "NXDOMAIN")
}

// TestWatchPodsOff: with --watch-pods=false meshdns has no pod names and selects no pods for
// ServiceEntries; with pods watched (the default) it has both.
func TestWatchPodsOff(t *testing.T) {
	const ns = "podsel"
	createNamespace(t, ns)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "w1", Labels: map[string]string{"app": "worker"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "w", Image: "w"}}}}
	pod, err := clients.CoreV1().Pods(ns).Create(ctx(t), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.PodIP, pod.Status.PodIPs = "10.244.9.9", []corev1.PodIP{{IP: "10.244.9.9"}}
	if _, err := clients.CoreV1().Pods(ns).UpdateStatus(ctx(t), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(serviceEntriesV1).Namespace(ns).Create(ctx(t), harness.Object(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: workers, namespace: podsel}
spec:
  hosts: [workers.podsel.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: worker}}
`), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	noVIPs := []string{"--vip-cidr", "", "--vip-cidr6", ""}
	with := startWithKube(t, noVIPs...)
	without := startWithKube(t, append(noVIPs, "--watch-pods=false")...)
	with.WaitReady(t)
	without.WaitReady(t)
	with.Expect(t, "workers.podsel.test", dns.TypeA, "NOERROR", "10.244.9.9")
	with.Expect(t, "10-244-9-9.podsel.pod.cluster.local", dns.TypeA, "NOERROR", "10.244.9.9")
	without.Expect(t, "10-244-9-9.podsel.pod.cluster.local", dns.TypeA, "NXDOMAIN")
	// Without the pod the host has no address: not meshdns's, so forwarded (no upstream here).
	without.Expect(t, "workers.podsel.test", dns.TypeA, "SERVFAIL")

	// The pod deleted: the watching instance drops it from the ServiceEntry.
	if err := clients.CoreV1().Pods(ns).Delete(ctx(t), "w1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	with.Expect(t, "workers.podsel.test", dns.TypeA, "SERVFAIL")
}
