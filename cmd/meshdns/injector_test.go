//go:build !nokube

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/controller"
	"github.com/meshdns/meshdns/internal/inject"
	"github.com/meshdns/meshdns/internal/testutil"
	admissionv1 "k8s.io/api/admission/v1"
)

// TestInjectorServes runs the injector as the command wires it: the webhook answers a pod
// review over TLS with a patch, the admin endpoint counts it, and cancelling stops both.
func TestInjectorServes(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	cert, key := ca.Issue(t, time.Now().Add(time.Hour), []string{"localhost"}, net.IPv4(127, 0, 0, 1))
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	webhook, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	fs, f := newInjectorFlags()
	if err := fs.Parse([]string{"--listen", webhook.String(), "--admin", admin.String(), "--image", "meshdns:test",
		"--tls-cert", filepath.Join(dir, "tls.crt"), "--tls-key", filepath.Join(dir, "tls.key")}); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	log, err := f.validate(&logs)
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry()
	m := inject.NewMetrics(reg)
	certs := inject.NewCertReloader(f.tlsCert, f.tlsKey, m, log)
	if err := certs.Load(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- runInjector(ctx, f, certs, reg, m, log) }()

	client := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer client.CloseIdleConnections()
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"shop",` +
		`"object":{"metadata":{"name":"web","annotations":{"meshdns.io/inject":"true"}},"spec":{"containers":[{"name":"app","image":"app"}]}}}}`
	// runInjector listens before it logs; poll until it has.
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err = client.Post("https://"+webhook.String()+inject.PathAnnotated, "application/json", strings.NewReader(review))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var out admissionv1.AdmissionReview
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || out.Response == nil || !out.Response.Allowed || !bytes.Contains(out.Response.Patch, []byte(`"meshdns:test"`)) {
		t.Fatalf("answer %+v (%v)", out.Response, err)
	}
	metrics := getOK(t, "http://"+admin.String()+"/metrics")
	if !strings.Contains(metrics, `meshdns_injector_admissions_total{result="injected"} 1`) {
		t.Errorf("/metrics lacks the injected admission:\n%s", metrics)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if got := getOK(t, "http://"+admin.String()+path); got != "ok\n" {
			t.Errorf("%s: %q", path, got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runInjector: %v", err)
	}
	if _, err := net.Dial("tcp", webhook.String()); err == nil {
		t.Error("the webhook still accepts connections after the injector stopped")
	}
}

func getOK(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s %v", url, resp.StatusCode, body, err)
	}
	return string(body)
}

// TestInjectorAgentFlags: with --controller, the injector reads the CA file it is given and
// hands the sidecars the audience meshdns controller reviews tokens for by default.
func TestInjectorAgentFlags(t *testing.T) {
	ca := testutil.NewCA(t, "controller CA")
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	fs, f := newInjectorFlags()
	if err := fs.Parse([]string{"--image", "meshdns:test", "--tls-cert", "c", "--tls-key", "k",
		"--controller", "meshdns-controller.meshdns-system.svc:15012", "--controller-ca", file}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.validate(io.Discard); err != nil {
		t.Fatal(err)
	}
	if f.cfg.ControllerCA != string(ca.CertPEM) {
		t.Errorf("ControllerCA %q, want the file's PEM", f.cfg.ControllerCA)
	}
	if f.cfg.TokenAudience != controller.DefaultAudience {
		t.Errorf("token audience %q, want meshdns controller's default %q", f.cfg.TokenAudience, controller.DefaultAudience)
	}
}
