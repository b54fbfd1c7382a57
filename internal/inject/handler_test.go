package inject

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func review(t testing.TB, kind metav1.GroupVersionKind, op admissionv1.Operation, object any) []byte {
	t.Helper()
	raw, err := json.Marshal(object)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "7c1a", Kind: kind, Operation: op, Namespace: "shop",
			Object: runtime.RawExtension{Raw: raw}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func podReview(t testing.TB, annotations map[string]string) []byte {
	return review(t, podKind, admissionv1.Create, corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	})
}

func post(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
	return rec
}

// TestHandlerAdmits runs AdmissionReviews through the handler as the API server sends them:
// every answer allows the pod and echoes the uid; a selected pod gets a JSONPatch.
func TestHandlerAdmits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		path    string
		body    func(t testing.TB) []byte
		result  Result
		patched bool
		warning string
	}{
		{name: "annotated pod", path: PathAnnotated, result: Injected, patched: true,
			body: func(t testing.TB) []byte { return podReview(t, map[string]string{InjectAnnotation: "true"}) }},
		{name: "plain pod", path: PathAnnotated, result: NotSelected,
			body: func(t testing.TB) []byte { return podReview(t, nil) }},
		{name: "plain pod in an enabled namespace", path: PathNamespace, result: Injected, patched: true,
			body: func(t testing.TB) []byte { return podReview(t, nil) }},
		{name: "opted out in an enabled namespace", path: PathNamespace, result: NotSelected,
			body: func(t testing.TB) []byte { return podReview(t, map[string]string{InjectAnnotation: "false"}) }},
		{name: "misspelt annotation", path: PathAnnotated, result: NotSelected, warning: `meshdns injector: annotation meshdns.io/inject: "on"`,
			body: func(t testing.TB) []byte { return podReview(t, map[string]string{InjectAnnotation: "on"}) }},
		{name: "a Service", path: PathAnnotated, result: Invalid, warning: `takes pod creations, got operation "CREATE" of kind "Service"`,
			body: func(t testing.TB) []byte {
				return review(t, metav1.GroupVersionKind{Version: "v1", Kind: "Service"}, admissionv1.Create, corev1.Service{})
			}},
		{name: "a pod update", path: PathAnnotated, result: Invalid, warning: `got operation "UPDATE" of kind "Pod"`,
			body: func(t testing.TB) []byte { return review(t, podKind, admissionv1.Update, corev1.Pod{}) }},
		{name: "a pod that is not one", path: PathAnnotated, result: Invalid, warning: "cannot read the pod",
			body: func(t testing.TB) []byte {
				return review(t, podKind, admissionv1.Create, map[string]any{"spec": "nope"})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			m := NewMetrics(reg)
			h := NewHandler(HandlerOptions{Config: testConfig(), Metrics: m})
			rec := post(h, tc.path, tc.body(t))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			r := out.Response
			switch {
			case out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || r == nil:
				t.Fatalf("answer %s", rec.Body)
			case r.UID != "7c1a" || !r.Allowed:
				t.Errorf("uid %q allowed %v, want 7c1a true", r.UID, r.Allowed)
			case tc.patched != (r.Patch != nil) || tc.patched != (r.PatchType != nil):
				t.Errorf("patch %s type %v, want patched %v", r.Patch, r.PatchType, tc.patched)
			case tc.patched && *r.PatchType != admissionv1.PatchTypeJSONPatch:
				t.Errorf("patch type %s", *r.PatchType)
			}
			if tc.warning == "" && len(r.Warnings) > 0 || tc.warning != "" && !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, tc.warning) }) {
				t.Errorf("warnings %q, want %q", r.Warnings, tc.warning)
			}
			if got := testutil.ToFloat64(m.admissions.WithLabelValues(string(tc.result))); got != 1 {
				t.Errorf("meshdns_injector_admissions_total{result=%q} = %v, want 1", tc.result, got)
			}
			if n := testutil.CollectAndCount(reg, "meshdns_injector_admissions_total"); n != len(Results) {
				t.Errorf("%d series, want one per result (%d)", n, len(Results))
			}
		})
	}
}

// TestHandlerRejectsBadBodies: what is not an AdmissionReview gets a 4xx and one line saying
// why; the handler goes on answering.
func TestHandlerRejectsBadBodies(t *testing.T) {
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		code               int
		want               string
	}{
		{name: "empty", body: nil, code: 400, want: "AdmissionReview: not JSON of one: unexpected end of JSON input"},
		{name: "not JSON", body: []byte("<html>"), code: 400, want: "AdmissionReview: not JSON of one: invalid character '<'"},
		{name: "a JSON list", body: []byte("[1,2]"), code: 400, want: "AdmissionReview: not JSON of one"},
		{name: "v1beta1", body: []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1"}}`), code: 400,
			want: `AdmissionReview: apiVersion "admission.k8s.io/v1beta1" kind "AdmissionReview", want admission.k8s.io/v1 AdmissionReview`},
		{name: "no request", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), code: 400, want: "AdmissionReview: no request"},
		{name: "no uid", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`), code: 400, want: "AdmissionReview: request without a uid"},
		{name: "too large", body: bytes.Repeat([]byte(" "), maxReview+1), code: 413, want: "AdmissionReview: larger than 8388608 bytes"},
		{name: "GET", method: http.MethodGet, code: 405, want: "AdmissionReviews are POSTed"},
		{name: "unknown path", path: "/mutate", body: podReview(t, nil), code: 404, want: "no webhook at /mutate (want /inject or /inject/namespace-enabled)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			m := NewMetrics(reg)
			h := NewHandler(HandlerOptions{Config: testConfig(), Metrics: m})
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = PathAnnotated
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(tc.body)))
			body := rec.Body.String()
			if rec.Code != tc.code || !strings.HasPrefix(body, tc.want) || strings.Count(body, "\n") != 1 {
				t.Errorf("got %d %q, want %d and one line starting %q", rec.Code, body, tc.code, tc.want)
			}
			if tc.code == 400 || tc.code == 413 {
				if got := testutil.ToFloat64(m.admissions.WithLabelValues(string(Invalid))); got != 1 {
					t.Errorf("invalid admissions %v, want 1", got)
				}
			}
			if rec := post(h, PathAnnotated, podReview(t, nil)); rec.Code != 200 {
				t.Errorf("the next review: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// FuzzHandler: no body makes the handler panic, and every answer is an error line or an
// AdmissionReview that allows.
func FuzzHandler(f *testing.F) {
	f.Add(podReview(f, map[string]string{InjectAnnotation: "true"}))
	f.Add(podReview(f, map[string]string{IstioProxyConfig: "proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}"}))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"initContainers":null,"volumes":[{"name":"x"}]}}}}`))
	h := NewHandler(HandlerOptions{Config: testConfig()})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{PathAnnotated, PathNamespace} {
			rec := post(h, path, body)
			if rec.Code != http.StatusOK {
				continue
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || !out.Response.Allowed {
				t.Fatalf("answer %s (%v)", rec.Body, err)
			}
		}
	})
}
