package kube

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshdns/meshdns/internal/model"
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

// TestIstioRecord: Istio objects from the dynamic client go through the manifest decoder, with
// its checks and its field paths, from the informer's data as it is.
func TestIstioRecord(t *testing.T) {
	obj := func(kind string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": kind,
			"metadata": map[string]any{"name": "db", "namespace": "prod", "resourceVersion": "7"},
			"spec":     spec,
		}}
	}
	se, err := istioRecord(obj("ServiceEntry", map[string]any{"hosts": []any{"DB.Example.com."},
		"ports": []any{map[string]any{"number": int64(5432), "name": "sql"}}}))
	want := model.ServiceEntry{Meta: model.Meta{Namespace: "prod", Name: "db"}, Hosts: []string{"db.example.com"},
		Ports: []model.Port{{Name: "sql", Number: 5432}}, Location: model.LocationExternal, Resolution: model.ResolutionNone}
	if err != nil || !reflect.DeepEqual(se, want) {
		t.Errorf("ServiceEntry record %+v, %v; want %+v", se, err, want)
	}
	we, err := istioRecord(obj("WorkloadEntry", map[string]any{"address": "10.0.0.1", "ports": map[string]any{"sql": int64(5432)}}))
	if rec, ok := we.(model.WorkloadEntry); err != nil || !ok || rec.Ports["sql"] != 5432 {
		t.Errorf("WorkloadEntry record %+v, %v", we, err)
	}
	_, err = istioRecord(obj("ServiceEntry", map[string]any{"hosts": []any{"db..example.com"}}))
	if want := `ServiceEntry: spec.hosts[0] "db..example.com": not a valid host name: empty label`; err == nil || err.Error() != want {
		t.Errorf("invalid ServiceEntry error %v, want %q", err, want)
	}
}

// TestServiceRecordExternalName: the target is kept as the model spells hosts, lower-cased in
// ASCII only (RFC 4343) and without the trailing dot.
func TestServiceRecordExternalName(t *testing.T) {
	for in, want := range map[string]string{
		"Search.Example.COM.": "search.example.com",
		"\u212a.example.com":  "\u212a.example.com", // the Kelvin sign is not the letter k
	} {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "search"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: in}}
		if got := serviceRecord(s).ExternalName; got != want {
			t.Errorf("ExternalName %q became %q, want %q", in, got, want)
		}
	}
}
