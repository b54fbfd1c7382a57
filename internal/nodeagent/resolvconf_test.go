package nodeagent

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(policy corev1.DNSPolicy, hostNetwork bool, searches ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"},
		Spec: corev1.PodSpec{DNSPolicy: policy, HostNetwork: hostNetwork}}
	if searches != nil {
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Searches: searches}
	}
	return p
}

// TestClientOfFollowsTheKubelet: the search list is the one the kubelet writes into the pod's
// resolv.conf for each dnsPolicy (pkg/kubelet/network/dns), dnsConfig.searches appended.
func TestClientOfFollowsTheKubelet(t *testing.T) {
	node := []string{"corp.example.com", "cluster.local"}
	cluster := []string{"shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "corp.example.com."}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want []string // nil with ok false
	}{
		{"ClusterFirst", pod(corev1.DNSClusterFirst, false), cluster},
		{"empty policy is ClusterFirst", pod("", false), cluster},
		{"ClusterFirstWithHostNet off the host network", pod(corev1.DNSClusterFirstWithHostNet, false), cluster},
		{"ClusterFirst with dnsConfig", pod(corev1.DNSClusterFirst, false, "extra.example.org", "SVC.cluster.local"),
			append(slices.Clone(cluster), "extra.example.org.")},
		{"Default", pod(corev1.DNSDefault, false), []string{"corp.example.com.", "cluster.local."}},
		{"None", pod(corev1.DNSNone, false, "a.example.", "b.example"), []string{"a.example.", "b.example."}},
		{"None without dnsConfig", pod(corev1.DNSNone, false), nil},
		{"host network", pod(corev1.DNSClusterFirstWithHostNet, true), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := ClientOf(tc.pod, "Cluster.Local.", node)
			if tc.pod.Spec.HostNetwork {
				if ok {
					t.Errorf("a host-network pod got a context: %+v", c)
				}
				return
			}
			if !ok || c.Namespace != "shop" || !slices.Equal(c.Search, tc.want) {
				t.Errorf("ClientOf = %+v, %v; want namespace shop, search %q", c, ok, tc.want)
			}
		})
	}
}

func TestSearchListBounds(t *testing.T) {
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("d%d.example", i))
	}
	if got := searchList(many); len(got) != maxSearchPaths {
		t.Errorf("%d search domains kept, want %d", len(got), maxSearchPaths)
	}
	long := []string{strings.Repeat("a", 60) + ".example"}
	for range 40 {
		long = append(long, strings.Repeat("b", 63)+"."+long[len(long)-1][:20]+fmt.Sprint(len(long)))
	}
	chars := 0
	for _, d := range searchList(long) {
		chars += len(d)
	}
	if chars > maxSearchChars {
		t.Errorf("%d characters kept, above %d", chars, maxSearchChars)
	}
}
