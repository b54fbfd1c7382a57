package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/test/kube/harness"
)

// controllerTLS writes a CA and a certificate it signs for 127.0.0.1 into dir, and returns
// the CA file, the certificate file and the key file.
func controllerTLS(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	ca := testutil.NewCA(t, "meshdns test CA")
	cert, key := ca.Issue(t, time.Now().Add(24*time.Hour), []string{"meshdns-controller"}, net.IPv4(127, 0, 0, 1))
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", ca.CertPEM), write("tls.crt", cert), write("tls.key", key)
}

// agentToken creates service account sa in ns (if needed) and writes a token for it, for
// audience and bound to Secret secret when not "" (deleting the Secret revokes the token), to
// a file.
func agentToken(t testing.TB, ns, sa, audience, secret string) string {
	t.Helper()
	_, err := clients.CoreV1().ServiceAccounts(ns).Create(harness.Ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](3600)}}
	if secret != "" {
		s, err := clients.CoreV1().Secrets(ns).Create(harness.Ctx(t), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		req.Spec.BoundObjectRef = &authv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: s.Name, UID: s.UID}
	}
	tr, err := clients.CoreV1().ServiceAccounts(ns).CreateToken(harness.Ctx(t), sa, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// expiredToken writes a token of service account sa in ns for audience meshdns that expired
// an hour ago: a token from the TokenRequest API (which issues none that lives under 10
// minutes) with its times moved back, signed again with the API server's service-account key.
// With expire false it keeps its times: the same token, signed again the same way, valid.
func expiredToken(t *testing.T, ns, sa string, expire bool) string {
	t.Helper()
	issued, err := os.ReadFile(agentToken(t, ns, sa, "meshdns", ""))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(issued), ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if expire {
		now := time.Now()
		claims["iat"], claims["nbf"], claims["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	}
	if payload, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)

	// envtest's service-account key: ECDSA P-256 in PKCS #8, so the token is ES256.
	keyPEM, err := os.ReadFile(filepath.Join(env.ControlPlane.APIServer.CertDir, "sa-signer.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("sa-signer.key: no PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("sa-signer.key holds a %T, not an ECDSA key", parsed)
	}
	digest := sha256.Sum256([]byte(signed))
	r, sig, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	size := (key.Curve.Params().BitSize + 7) / 8
	raw := append(r.FillBytes(make([]byte, size)), sig.FillBytes(make([]byte, size))...)
	p := filepath.Join(t.TempDir(), "resigned-token")
	if err := os.WriteFile(p, []byte(signed+"."+base64.RawURLEncoding.EncodeToString(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sameView waits until the names agent's client sees are those direct's client sees.
func sameView(t *testing.T, what string, agent, direct *harness.Meshdns) {
	t.Helper()
	eventually(t, what, func() error {
		got, want := normalizedTable(agent.View(t)), normalizedTable(direct.View(t))
		if slices.Equal(got, want) {
			return nil
		}
		return fmt.Errorf("agent:\n%s\n\nAPI watcher:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	})
}

func hasName(entries []harness.TableEntry, name string) bool {
	return slices.ContainsFunc(entries, func(e harness.TableEntry) bool { return e.Name == name })
}

func freeAddr(t testing.TB) string {
	t.Helper()
	a, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

// controllerProc is a meshdns controller of the test's API server.
type controllerProc struct {
	*harness.Meshdns
	xds, ca string
	args    []string // to start it again on the same address
}

// runController runs a controller on a free address with the certificate of pki (from
// controllerTLS), authenticating to the API server with kubeconfig kc, plus extra flags.
func runController(t *testing.T, pki [3]string, kc string, extra ...string) *controllerProc {
	t.Helper()
	c := &controllerProc{xds: freeAddr(t), ca: pki[0]}
	c.args = append([]string{"--kubeconfig", kc, "--xds-listen", c.xds, "--tls-cert", pki[1], "--tls-key", pki[2]}, extra...)
	c.Meshdns = cluster.Controller(t, c.args...)
	c.WaitReady(t)
	return c
}

// restart starts the controller again, as it was started, after Kill.
func (c *controllerProc) restart(t *testing.T) {
	t.Helper()
	c.Meshdns = cluster.Controller(t, c.args...)
}

// agentArgs are the flags of an agent of c in namespace ns presenting the token in file token.
func (c *controllerProc) agentArgs(ns, token string) []string {
	return []string{"--controller", c.xds, "--controller-ca", c.ca, "--token-file", token, "--namespace", ns}
}

// newPKI writes a CA and a controller certificate (controllerTLS) to a temporary directory.
func newPKI(t *testing.T) [3]string {
	t.Helper()
	ca, cert, key := controllerTLS(t, t.TempDir())
	return [3]string{ca, cert, key}
}

// TestControllerAndAgents runs a controller and agents of two namespaces (separate processes,
// authenticated with service account tokens from the TokenRequest API) next to meshdns
// processes watching the API server themselves, and checks that each agent's client sees
// exactly what the watcher of its namespace sees, through changes of every kind.
func TestControllerAndAgents(t *testing.T) {
	loadExamples(t)
	ctl := runController(t, newPKI(t), kubeconfig)
	agentArgs := func(ns, token, stateDir string) []string {
		return append(ctl.agentArgs(ns, token), "--state-dir", stateDir)
	}
	bookinfoState := t.TempDir()
	// bookinfo's agent is the build without Kubernetes client code (-tags nokube).
	bookinfo := cluster.Run(t, cluster.AgentBinary(t), agentArgs("bookinfo", agentToken(t, "bookinfo", "agent", "meshdns", ""), bookinfoState)...)
	data := startMeshdns(t, agentArgs("data", agentToken(t, "data", "agent", "meshdns", ""), t.TempDir())...)
	directBookinfo := startWithKube(t, "--namespace", "bookinfo")
	directData := startWithKube(t, "--namespace", "data")
	for _, m := range []*harness.Meshdns{bookinfo, data, directBookinfo, directData} {
		m.WaitReady(t)
	}
	sameView(t, "bookinfo's agent sees what its API watcher sees", bookinfo, directBookinfo)
	sameView(t, "data's agent sees what its API watcher sees", data, directData)

	// A ServiceEntry exported to its own namespace never reaches another namespace's agent.
	applyYAML(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ctl-private, namespace: bookinfo}
spec:
  hosts: [private.ctl.example.com]
  addresses: [192.0.2.77]
  resolution: STATIC
  endpoints: [{address: 192.0.2.77}]
  exportTo: ["."]
`)
	bookinfo.Expect(t, "private.ctl.example.com", dns.TypeA, "NOERROR", "192.0.2.77")
	sameView(t, "after a ServiceEntry for bookinfo only", data, directData)
	if hasName(data.Table(t), "private.ctl.example.com.") {
		t.Error("data's agent holds bookinfo's exportTo . ServiceEntry")
	}
	if !hasName(directData.Table(t), "private.ctl.example.com.") {
		t.Error("the API watcher of data does not even have the hidden name: the check above proves nothing")
	}

	// Changes of every kind reach every agent: a Service, its EndpointSlice (created, then
	// changed), a WorkloadEntry selected by a new ServiceEntry, and deletions.
	applyYAML(t, `
apiVersion: v1
kind: Service
metadata: {name: ctl-db, namespace: data}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ctl-db-1, namespace: data, labels: {kubernetes.io/service-name: ctl-db}}
addressType: IPv4
ports: [{name: pg, port: 5432}]
endpoints: [{addresses: [10.244.9.1], targetRef: {kind: Pod, namespace: data, name: ctl-db-0}}]
---
apiVersion: v1
kind: Pod
metadata: {name: ctl-db-0, namespace: data}
spec: {hostname: ctl-db-0, subdomain: ctl-db}
status: {podIP: 10.244.9.1, podIPs: [{ip: 10.244.9.1}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: ctl-new}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ctl-vm, namespace: data, labels: {app: ctl-legacy}}
spec: {address: 10.10.9.9}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ctl-legacy, namespace: data}
spec:
  hosts: [legacy.ctl.example.com]
  addresses: [192.0.2.78]
  resolution: STATIC
  workloadSelector: {labels: {app: ctl-legacy}}
`)
	for _, m := range []*harness.Meshdns{bookinfo, data} {
		m.Expect(t, "ctl-db.data.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.9.1")
		m.Expect(t, "legacy.ctl.example.com", dns.TypeA, "NOERROR", "192.0.2.78")
		// The endpoint's name comes from its pod (hostname and subdomain).
		m.Expect(t, "ctl-db-0.ctl-db.data.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.9.1")
		eventually(t, "the new namespace's pod zone", func() error {
			if !hasName(m.Table(t), "ctl-new.pod.cluster.local.") {
				return fmt.Errorf("no ctl-new.pod.cluster.local")
			}
			return nil
		})
	}
	esClient := clients.DiscoveryV1().EndpointSlices("data")
	es, err := esClient.Get(ctx(t), "ctl-db-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es.Endpoints[0].Addresses = []string{"10.244.9.2"}
	if _, err := esClient.Update(ctx(t), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	bookinfo.Expect(t, "ctl-db.data.svc.cluster.local", dns.TypeA, "NOERROR", "10.244.9.2")
	sameView(t, "after the changes, bookinfo", bookinfo, directBookinfo)
	sameView(t, "after the changes, data", data, directData)
	if err := clients.CoreV1().Services("data").Delete(ctx(t), "ctl-db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dyn.Resource(serviceEntriesV1).Namespace("data").Delete(ctx(t), "ctl-legacy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dyn.Resource(workloadEntriesV1).Namespace("data").Delete(ctx(t), "ctl-vm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := clients.CoreV1().Pods("data").Delete(ctx(t), "ctl-db-0", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	data.Expect(t, "ctl-db.data.svc.cluster.local", dns.TypeA, "NXDOMAIN")
	sameView(t, "after the deletions, data", data, directData)
	sameView(t, "after the deletions, bookinfo", bookinfo, directBookinfo)

	// The controller goes away: the agent keeps answering; an agent restarted meanwhile answers
	// from its saved state at once; the controller back, both converge without a restart.
	ctl.Kill()
	bookinfo.Expect(t, "private.ctl.example.com", dns.TypeA, "NOERROR", "192.0.2.77")
	bookinfo.Kill()
	restarted := startMeshdns(t, agentArgs("bookinfo", agentToken(t, "bookinfo", "agent", "meshdns", ""), bookinfoState)...)
	restarted.WaitReady(t)
	restarted.Expect(t, "private.ctl.example.com", dns.TypeA, "NOERROR", "192.0.2.77")
	if body := readyz(t, restarted); !strings.Contains(body, "answering from the state saved at") {
		t.Errorf("/readyz of an agent without its controller: %q", body)
	}
	applyYAML(t, harness.StaticServiceEntry("bookinfo", "ctl-while-away", "away.ctl.example.com", "192.0.2.79"))
	ctl.restart(t)
	restarted.Expect(t, "away.ctl.example.com", dns.TypeA, "NOERROR", "192.0.2.79")
	data.Expect(t, "away.ctl.example.com", dns.TypeA, "NOERROR", "192.0.2.79")
	sameView(t, "after the controller came back", restarted, directBookinfo)
}

// TestControllerRefusesWrongTokens: a token of another namespace, of another audience, an
// expired one or garbage gets no names; a rotated token file is used from the next
// reconnection.
func TestControllerRefusesWrongTokens(t *testing.T) {
	loadExamples(t)
	ctl := runController(t, newPKI(t), kubeconfig)
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, namespace, token, want string }{
		{"another namespace's view", "data", agentToken(t, "bookinfo", "agent", "meshdns", ""), "PermissionDenied"},
		{"a token for the API server", "bookinfo", agentToken(t, "bookinfo", "agent", "https://kubernetes.default.svc", ""), "Unauthenticated"},
		{"a garbage token", "bookinfo", garbage, "Unauthenticated"},
		{"an expired token", "bookinfo", expiredToken(t, "bookinfo", "agent", true), "Unauthenticated: token rejected: [invalid bearer token, service account token has expired]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startMeshdns(t, ctl.agentArgs(tc.namespace, tc.token)...)
			eventually(t, "the refusal", func() error {
				if body := readyz(t, a); !strings.Contains(body, tc.want) {
					return fmt.Errorf("/readyz: %q, want %s", body, tc.want)
				}
				return nil
			})
			if code := a.Readyz(); code == 200 {
				t.Error("a refused agent is ready")
			}
			if got, _, _ := a.Answers("productpage.bookinfo.svc.cluster.local", dns.TypeA); got == "NOERROR" {
				t.Error("a refused agent answers cluster names")
			}
		})
	}

	// The expired token is refused for its times alone: signed again the same way with its
	// own, it is taken.
	resigned := startMeshdns(t, ctl.agentArgs("bookinfo", expiredToken(t, "bookinfo", "agent", false))...)
	resigned.WaitReady(t)
	resigned.Kill() // the rotation below counts the controller's agents

	// Rotation: the first token is revoked (its Secret deleted) after a new one is written; the
	// agent uses the new one when it reconnects (the controller restarts).
	tokenFile := agentToken(t, "bookinfo", "rotating", "meshdns", "rotating-1")
	a := startMeshdns(t, ctl.agentArgs("bookinfo", tokenFile)...)
	a.WaitReady(t)
	next, err := os.ReadFile(agentToken(t, "bookinfo", "rotating", "meshdns", "rotating-2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, next, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := clients.CoreV1().Secrets("bookinfo").Delete(ctx(t), "rotating-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctl.Kill()
	ctl.restart(t)
	ctl.WaitReady(t)
	eventually(t, "the agent reconnects with the rotated token", func() error {
		if v := ctl.Metric(t, "meshdns_controller_agents"); v != 1 {
			return fmt.Errorf("%v agents connected", v)
		}
		return nil
	})
	if v := ctl.Metric(t, "meshdns_controller_refused_streams_total"); v != 0 {
		t.Errorf("%v streams refused: the agent presented the revoked token", v)
	}
}

// TestAgentFailsOverBetweenControllers: two controller replicas; killing the one an agent
// streams from moves it to the other, with no wrong answer in between.
func TestAgentFailsOverBetweenControllers(t *testing.T) {
	loadExamples(t)
	pki := newPKI(t)
	first, second := runController(t, pki, kubeconfig), runController(t, pki, kubeconfig)
	args := first.agentArgs("bookinfo", agentToken(t, "bookinfo", "agent", "meshdns", ""))
	args[1] = first.xds + "," + second.xds // --controller: both replicas
	a := startMeshdns(t, args...)
	direct := startWithKube(t, "--namespace", "bookinfo")
	a.WaitReady(t)
	direct.WaitReady(t)
	eventually(t, "the agent streams from the first replica", func() error {
		if v := first.Metric(t, "meshdns_controller_agents"); v != 1 {
			return fmt.Errorf("%v agents on the first", v)
		}
		return nil
	})
	before := normalizedTable(a.View(t))
	first.Kill()
	eventually(t, "the agent moves to the second replica", func() error {
		if v := second.Metric(t, "meshdns_controller_agents"); v != 1 {
			return fmt.Errorf("%v agents on the second", v)
		}
		return nil
	})
	if after := normalizedTable(a.View(t)); !slices.Equal(before, after) {
		t.Errorf("the view changed when the agent moved:\n%s\nbefore:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
	applyYAML(t, harness.StaticServiceEntry("bookinfo", "ctl-failover", "failover.ctl.example.com", "192.0.2.80"))
	a.Expect(t, "failover.ctl.example.com", dns.TypeA, "NOERROR", "192.0.2.80")
	sameView(t, "after the fail-over", a, direct)
}

// applyYAML creates the objects of a multi-document manifest, and deletes them when the test
// ends: other tests compare the example namespaces' names with the example registry.
func applyYAML(t *testing.T, manifest string) {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(manifest, "\n---\n") {
		objs = append(objs, harness.Object(t, doc))
	}
	apply(t, objs)
	t.Cleanup(func() {
		for _, u := range objs {
			gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
			client := dyn.Resource(gv.WithResource(resources[u.GetKind()]))
			var err error
			if u.GetKind() == "Namespace" {
				err = client.Delete(context.Background(), u.GetName(), metav1.DeleteOptions{})
			} else {
				err = client.Namespace(u.GetNamespace()).Delete(context.Background(), u.GetName(),
					metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			}
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		}
	})
}

// readyz is the body of /readyz.
func readyz(t *testing.T, m *harness.Meshdns) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + m.Admin + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
