package kube_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/meshdns/meshdns/test/kube/harness"
)

// resources maps the kinds of the example registry to their API resources.
var resources = map[string]string{
	"Namespace": "namespaces", "Service": "services", "Pod": "pods", "EndpointSlice": "endpointslices",
	"ServiceEntry": "serviceentries", "WorkloadEntry": "workloadentries",
	"ServiceAccount": "serviceaccounts", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
	"Role": "roles", "RoleBinding": "rolebindings", "Deployment": "deployments", "DaemonSet": "daemonsets",
	"MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
	"PodDisruptionBudget":          "poddisruptionbudgets",
}

// readManifests reads every object of the manifest files in dir (List items unpacked).
func readManifests(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.IsDir() {
			continue // e.g. deploy/grafana: not Kubernetes objects
		}
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if u.Object == nil {
				continue
			}
			if u.IsList() {
				l, err := u.ToList()
				if err != nil {
					t.Fatal(err)
				}
				for i := range l.Items {
					out = append(out, &l.Items[i])
				}
				continue
			}
			out = append(out, &u)
		}
		r.Close()
	}
	return out
}

// apply creates objs in the API server, namespaces first, then writes their status (the API
// ignores status on create; kubelet and Istio would write it).
func apply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return boolInt(a.GetKind() != "Namespace") - boolInt(b.GetKind() != "Namespace")
	})
	for _, u := range objs {
		gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
		if err != nil {
			t.Fatal(err)
		}
		res, ok := resources[u.GetKind()]
		if !ok {
			t.Fatalf("no resource known for kind %s", u.GetKind())
		}
		if u.GetKind() == "Pod" {
			// The registry leaves out what DNS does not read; the API requires a container.
			if c, _, _ := unstructured.NestedSlice(u.Object, "spec", "containers"); len(c) == 0 {
				unstructured.SetNestedSlice(u.Object, []any{map[string]any{"name": "app", "image": "app"}}, "spec", "containers")
			}
		}
		client := dyn.Resource(gv.WithResource(res)).Namespace(u.GetNamespace())
		status, hasStatus := u.Object["status"]
		created, err := client.Create(ctx(t), u, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		if hasStatus && u.GetKind() != "Namespace" {
			created.Object["status"] = status
			if _, err := client.UpdateStatus(ctx(t), created, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("status of %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// normalizedTable is the table in a form that compares across sources: VIP allocation times and
// the order of addresses differ, nothing else may.
func normalizedTable(entries []harness.TableEntry) []string {
	var out []string
	for _, e := range entries {
		recs := slices.Clone(e.Records)
		for i, r := range recs {
			recs[i] = withoutSerial(r)
		}
		slices.Sort(recs)
		var vips []string
		for _, v := range e.VIPs {
			vips = append(vips, v.Address)
		}
		out = append(out, fmt.Sprintf("%s origin=%q exportTo=%v aliases=%v vips=%v\n  %s",
			e.Name, e.Origin, e.ExportTo, e.Aliases, vips, strings.Join(recs, "\n  ")))
	}
	slices.Sort(out)
	return out
}

// withoutSerial blanks an SOA record's serial: it is the table's generation, which counts
// builds rather than content (the API source publishes tables while it is still syncing).
func withoutSerial(rr string) string {
	f := strings.Fields(rr)
	if len(f) == 11 && f[3] == "SOA" {
		f[6] = "SERIAL"
		return strings.Join(f, " ")
	}
	return rr
}

var examplesLoaded sync.Once

// loadExamples applies the example registry to the API server, once for every test that
// uses it.
func loadExamples(t *testing.T) {
	t.Helper()
	examplesLoaded.Do(func() { apply(t, readManifests(t, filepath.Join(repoRoot, "examples", "registry"))) })
}

// TestExamplesThroughAPIServer loads the example registry into the API server and checks that
// meshdns, watching only the examples' namespaces, builds the very table it builds from the
// manifest directory: every record kind of the examples (services, dual stack, headless and
// StatefulSet names, ExternalName, pods, ServiceEntries of three API versions with addresses,
// endpoints, VIPs, wildcards, WorkloadEntries) arrives through the API as it does from files.
func TestExamplesThroughAPIServer(t *testing.T) {
	dir := filepath.Join(repoRoot, "examples", "registry")
	loadExamples(t)
	// Clients in bookinfo, as in the README's walk-through (billing is exported to them).
	fromAPI := startWithKube(t, "--namespaces", "bookinfo,data,vms", "--namespace", "bookinfo")
	fromFiles := startMeshdns(t, "--registry", dir, "--namespace", "bookinfo")
	fromAPI.WaitReady(t)
	fromFiles.WaitReady(t)
	want := normalizedTable(fromFiles.Table(t))
	eventually(t, "the same table from the API server as from the directory", func() error {
		got := normalizedTable(fromAPI.Table(t))
		if slices.Equal(got, want) {
			return nil
		}
		return fmt.Errorf("from the API server:\n%s\n\nfrom the directory:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	})
	// And a few answers, as a client sees them.
	fromAPI.Expect(t, "reviews.bookinfo.svc.cluster.local", dns.TypeAAAA, "NOERROR", "fd00:10:96::20")
	fromAPI.Expect(t, "mysql-2.mysql.data.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.3.23")
	fromAPI.Expect(t, "billing.vms.example.com", dns.TypeA, "NOERROR", "192.0.2.50", "192.0.2.51")
	fromAPI.Expect(t, "anything.internal.example.com", dns.TypeA, "NOERROR", "198.51.100.7")
	fromAPI.Expect(t, "reviews", dns.TypeA, "NOERROR", "reviews.bookinfo.svc.cluster.local.", "10.96.10.20")
}
