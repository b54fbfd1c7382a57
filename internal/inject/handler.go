package inject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The webhook's paths. The API server calls PathNamespace for pods of namespaces labelled
// NamespaceLabel=NamespaceEnabled and PathAnnotated for the others (two entries of the
// MutatingWebhookConfiguration with namespaceSelectors; a webhook URL cannot carry a query).
const (
	PathAnnotated = "/inject"
	PathNamespace = "/inject/namespace-enabled"
)

// maxReview bounds an AdmissionReview's body: the API server sends at most its 3 MiB request
// limit plus the review's own fields.
const maxReview = 8 << 20

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	Config  Config   // valid
	Metrics *Metrics // nil: counted nowhere
	Logger  *slog.Logger
}

// Handler answers the API server's AdmissionReviews for pods on PathAnnotated and
// PathNamespace.
type Handler struct {
	cfg Config
	m   *Metrics
	log *slog.Logger
}

// NewHandler returns the webhook's handler.
func NewHandler(o HandlerOptions) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Handler{cfg: o.Config, m: o.Metrics, log: o.Logger}
}

// ServeHTTP answers one AdmissionReview. A body that is not one is answered 400 with one line
// saying what is wrong (the API server then applies the failurePolicy); otherwise the answer
// is an AdmissionReview that allows the pod, with a patch when it is injected.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var namespaceEnabled bool
	switch r.URL.Path {
	case PathAnnotated:
	case PathNamespace:
		namespaceEnabled = true
	default:
		http.Error(w, fmt.Sprintf("no webhook at %s (want %s or %s)", r.URL.Path, PathAnnotated, PathNamespace), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "AdmissionReviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	req, status, err := readReview(http.MaxBytesReader(w, r.Body, maxReview))
	if err != nil {
		h.m.count(Invalid)
		h.log.Warn("bad AdmissionReview", "from", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), status)
		return
	}
	resp := h.admit(req, namespaceEnabled)
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.log.Debug("writing AdmissionReview", "err", err)
	}
}

// readReview decodes an admission.k8s.io/v1 AdmissionReview with a request; errors are one
// line, with the HTTP status to answer.
func readReview(body io.Reader) (*admissionv1.AdmissionRequest, int, error) {
	data, err := io.ReadAll(body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("AdmissionReview: larger than %d bytes", tooLarge.Limit)
	}
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("AdmissionReview: reading the body: %s", oneLine(err))
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("AdmissionReview: not JSON of one: %s", oneLine(err))
	}
	switch {
	case review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview":
		return nil, http.StatusBadRequest, fmt.Errorf("AdmissionReview: apiVersion %q kind %q, want %s AdmissionReview (admissionReviewVersions: [v1])",
			review.APIVersion, review.Kind, admissionv1.SchemeGroupVersion)
	case review.Request == nil:
		return nil, http.StatusBadRequest, errors.New("AdmissionReview: no request")
	case review.Request.UID == "":
		return nil, http.StatusBadRequest, errors.New("AdmissionReview: request without a uid")
	}
	return review.Request, 0, nil
}

var podKind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}

// admit decides about one request and counts it. It always allows: the injector adds to pods,
// it never refuses them.
func (h *Handler) admit(req *admissionv1.AdmissionRequest, namespaceEnabled bool) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	pod, err := readPod(req)
	var result Result
	var warnings []string
	if err == nil {
		result, warnings, err = h.inject(pod, namespaceEnabled, resp)
	}
	if err != nil {
		result, warnings = Invalid, append(warnings, "pod not injected: "+err.Error())
	}
	for _, w := range warnings {
		resp.Warnings = append(resp.Warnings, "meshdns injector: "+w)
	}
	h.m.count(result)
	level := slog.LevelDebug
	if result == Injected || result == Invalid {
		level = slog.LevelInfo
	}
	h.log.Log(context.Background(), level, "admission", "namespace", req.Namespace, "pod", podName(req, pod),
		"namespaceEnabled", namespaceEnabled, "result", string(result), "warnings", warnings)
	return resp
}

// readPod decodes the pod of a pod creation.
func readPod(req *admissionv1.AdmissionRequest) (*corev1.Pod, error) {
	if req.Kind != podKind || req.Operation != admissionv1.Create {
		return nil, fmt.Errorf("the injector takes pod creations, got operation %q of kind %q (check the webhook's rules)", req.Operation, req.Kind.Kind)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return nil, fmt.Errorf("cannot read the pod: %s", oneLine(err))
	}
	return &pod, nil
}

// inject sets resp's patch when pod is to be injected.
func (h *Handler) inject(pod *corev1.Pod, namespaceEnabled bool, resp *admissionv1.AdmissionResponse) (Result, []string, error) {
	result, warnings := Select(pod, namespaceEnabled)
	if result != Injected {
		return result, warnings, nil
	}
	patch, err := json.Marshal(h.cfg.Patch(pod))
	if err != nil {
		return Invalid, warnings, fmt.Errorf("encoding the patch: %s", oneLine(err))
	}
	resp.Patch, resp.PatchType = patch, ptr.To(admissionv1.PatchTypeJSONPatch)
	return Injected, warnings, nil
}

// podName names the pod of a request for the log: a pod being created may have only a
// generateName.
func podName(req *admissionv1.AdmissionRequest, pod *corev1.Pod) string {
	switch {
	case req.Name != "":
		return req.Name
	case pod != nil && pod.Name != "":
		return pod.Name
	case pod != nil && pod.GenerateName != "":
		return pod.GenerateName + "*"
	}
	return ""
}
