package kube_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshdns/meshdns/test/kube/harness"
)

// leaseNamespace holds the VIP writers' Lease in these tests.
const leaseNamespace = "vip-lease"

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := clients.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// dnsServiceEntry is a ServiceEntry of resolution DNS without addresses: its host gets a VIP.
func dnsServiceEntry(ns, name, host string) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: %s}
spec:
  hosts: [%s]
  ports: [{number: 5432, name: tcp-postgres, protocol: TCP}]
  resolution: DNS
  location: MESH_EXTERNAL
`, name, ns, host)
}

// statusAddresses returns status.addresses of a ServiceEntry as "host=value" strings.
func statusAddresses(t *testing.T, ns, name string) []string {
	t.Helper()
	u, err := dyn.Resource(serviceEntriesV1).Namespace(ns).Get(ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addrs, _, _ := unstructured.NestedSlice(u.Object, "status", "addresses")
	var out []string
	for _, a := range addrs {
		m, _ := a.(map[string]any)
		out = append(out, fmt.Sprintf("%v=%v", m["host"], m["value"]))
	}
	slices.Sort(out)
	return out
}

// waitStatus waits until the ServiceEntry's status holds an IPv4 and an IPv6 VIP of the
// default pools for host, and returns them.
func waitStatus(t *testing.T, ns, name, host string) (v4, v6 string) {
	t.Helper()
	eventually(t, "VIPs in the status of "+ns+"/"+name, func() error {
		v4, v6 = "", ""
		for _, a := range statusAddresses(t, ns, name) {
			h, value, _ := strings.Cut(a, "=")
			ip, err := netip.ParseAddr(value)
			switch {
			case h != host || err != nil:
				return fmt.Errorf("unexpected status address %q", a)
			case netip.MustParsePrefix("240.240.0.0/16").Contains(ip):
				v4 = value
			case netip.MustParsePrefix("2001:2::/48").Contains(ip):
				v6 = value
			}
		}
		if v4 == "" || v6 == "" {
			return fmt.Errorf("status.addresses %v", statusAddresses(t, ns, name))
		}
		return nil
	})
	return v4, v6
}

// vipWriter runs meshdns watching namespace ns only, so that its writes are this test's.
func vipWriter(t *testing.T, ns string) *meshdns {
	t.Helper()
	return startWithKube(t, "--namespaces", ns, "--leader-elect-namespace", leaseNamespace, "--leader-elect-lease-duration", "2s")
}

// TestVIPStatus: the VIP meshdns allocates to a ServiceEntry host is written to the entry's
// status.addresses as Istio writes it, and answered; addresses already in status (as Istio or
// an earlier writer left them) are kept and answered, not replaced.
func TestVIPStatus(t *testing.T) {
	const ns = "vips-a"
	ensureNamespace(t, leaseNamespace)
	createNamespace(t, ns)
	ses := dyn.Resource(serviceEntriesV1).Namespace(ns)
	pre, err := ses.Create(ctx(t), harness.Object(t, dnsServiceEntry(ns, "pre", "pre.vip-test.example")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	istioWritten := []any{map[string]any{"value": "240.240.77.77", "host": "pre.vip-test.example"}}
	unstructured.SetNestedSlice(pre.Object, istioWritten, "status", "addresses")
	if _, err := ses.UpdateStatus(ctx(t), pre, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Two hosts, one with an entry already (written before meshdns starts, so that nothing
	// races it): only the other one's VIPs will be added, the existing entry stays as it was.
	pair, err := ses.Create(ctx(t), harness.Object(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pair, namespace: vips-a}
spec:
  hosts: [a.pair.example, b.pair.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unstructured.SetNestedSlice(pair.Object, []any{map[string]any{"value": "240.240.88.88", "host": "a.pair.example"}}, "status", "addresses")
	if _, err := ses.UpdateStatus(ctx(t), pair, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	m := vipWriter(t, ns)
	m.WaitReady(t)
	if _, err := ses.Create(ctx(t), harness.Object(t, dnsServiceEntry(ns, "db", "db.vip-test.example")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v4, v6 := waitStatus(t, ns, "db", "db.vip-test.example")
	m.Expect(t, "db.vip-test.example", dns.TypeA, "NOERROR", v4)
	m.Expect(t, "db.vip-test.example", dns.TypeAAAA, "NOERROR", v6)

	m.Expect(t, "pre.vip-test.example", dns.TypeA, "NOERROR", "240.240.77.77")
	if got := statusAddresses(t, ns, "pre"); !slices.Equal(got, []string{"pre.vip-test.example=240.240.77.77"}) {
		t.Errorf("status written by Istio changed to %v", got)
	}

	eventually(t, "b.pair.example's VIPs added to the status", func() error {
		got := statusAddresses(t, ns, "pair")
		if len(got) != 3 || got[0] != "a.pair.example=240.240.88.88" || !strings.HasPrefix(got[1], "b.pair.example=") || !strings.HasPrefix(got[2], "b.pair.example=") {
			return fmt.Errorf("status.addresses %v", got)
		}
		return nil
	})
	m.Expect(t, "a.pair.example", dns.TypeA, "NOERROR", "240.240.88.88")
	if n := m.Metric(t, "meshdns_vip_status_writes_total", `result="ok"`); n != 2 {
		t.Errorf("%v status writes, want 2 (db's and pair's; pre's status is adopted as it is)", n)
	}
}

// TestVIPWriterHandover: of two replicas exactly one writes status, both answer the same VIPs;
// when the writer dies the other takes over the Lease, no VIP moves, and new hosts get theirs
// written by the new writer.
func TestVIPWriterHandover(t *testing.T) {
	const ns = "vips-b"
	ensureNamespace(t, leaseNamespace)
	createNamespace(t, ns)
	ses := dyn.Resource(serviceEntriesV1).Namespace(ns)
	a, b := vipWriter(t, ns), vipWriter(t, ns)
	a.WaitReady(t)
	b.WaitReady(t)
	var leader, other *meshdns
	eventually(t, "one writer elected", func() error {
		la, lb := a.Metric(t, "meshdns_vip_status_writer_leader"), b.Metric(t, "meshdns_vip_status_writer_leader")
		switch {
		case la == 1 && lb == 0:
			leader, other = a, b
		case la == 0 && lb == 1:
			leader, other = b, a
		default:
			return fmt.Errorf("leader gauges %v and %v", la, lb)
		}
		return nil
	})
	for i := range 3 {
		name := fmt.Sprintf("svc%d", i)
		if _, err := ses.Create(ctx(t), harness.Object(t, dnsServiceEntry(ns, name, name+".handover.example")), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	vips := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("svc%d", i)
		v4, _ := waitStatus(t, ns, name, name+".handover.example")
		vips[name] = v4
		a.Expect(t, name+".handover.example", dns.TypeA, "NOERROR", v4)
		b.Expect(t, name+".handover.example", dns.TypeA, "NOERROR", v4)
	}
	if n := other.Metric(t, "meshdns_vip_status_writes_total", `result="ok"`); n != 0 {
		t.Errorf("the replica not elected wrote %v statuses", n)
	}
	if n := leader.Metric(t, "meshdns_vip_status_writes_total", `result="ok"`); n != 3 {
		t.Errorf("the elected replica wrote %v statuses, want 3", n)
	}

	leader.Kill()
	eventually(t, "the other replica elected", func() error {
		if v := other.Metric(t, "meshdns_vip_status_writer_leader"); v != 1 {
			return fmt.Errorf("leader gauge %v", v)
		}
		return nil
	})
	if _, err := ses.Create(ctx(t), harness.Object(t, dnsServiceEntry(ns, "svc3", "svc3.handover.example")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v4, _ := waitStatus(t, ns, "svc3", "svc3.handover.example")
	other.Expect(t, "svc3.handover.example", dns.TypeA, "NOERROR", v4)
	for name, v := range vips {
		other.Expect(t, name+".handover.example", dns.TypeA, "NOERROR", v)
		if got := statusAddresses(t, ns, name); !slices.Contains(got, name+".handover.example="+v) {
			t.Errorf("%s: status %v after the handover, want it to keep %s", name, got, v)
		}
	}
	if n := other.Metric(t, "meshdns_vip_status_writes_total", `result="ok"`); n != 1 {
		t.Errorf("the new writer wrote %v statuses, want 1 (svc3's)", n)
	}
}
