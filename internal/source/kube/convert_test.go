package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodRecordPhases: a finished or terminating pod has no address (it may already be
// another pod's), a running one has its addresses once each.
func TestPodRecordPhases(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name    string
		phase   corev1.PodPhase
		deleted bool
		want    int
	}{
		{"running", corev1.PodRunning, false, 2},
		{"pending with an address", corev1.PodPending, false, 2},
		{"succeeded", corev1.PodSucceeded, false, 0},
		{"failed", corev1.PodFailed, false, 0},
		{"terminating", corev1.PodRunning, true, 0},
	} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
			Status: corev1.PodStatus{Phase: tc.phase, PodIP: "10.0.0.1",
				PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}}}
		if tc.deleted {
			p.DeletionTimestamp = &now
		}
		if got := podRecord(p).IPs; len(got) != tc.want {
			t.Errorf("%s: addresses %v, want %d", tc.name, got, tc.want)
		}
	}
}
