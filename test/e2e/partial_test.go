package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// unreachableKubeconfig writes a kubeconfig whose API server is a loopback port where
// nothing listens: the Kubernetes source never syncs.
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, addr)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRegistryAnsweredBeforeAPIServerSyncs: with the API server unreachable, the names the
// manifest directory defines are answered from it; other names of the zone wait (SERVFAIL,
// /readyz 503) rather than being forwarded or denied.
func TestRegistryAnsweredBeforeAPIServerSyncs(t *testing.T) {
	args := append(examplesArgs(examplePath("registry"), ""), "--kubeconfig", unreachableKubeconfig(t))
	srv := startServer(t, serveOptions{args: args, unready: true})
	for _, c := range []client{digUDP, digTCP} {
		t.Run(c.name, func(t *testing.T) {
			eventually(t, 10*time.Second, "ServiceEntry host of the registry", func() string {
				if got := lookup(t, c, srv.dnsPort, "api.payments.example.com."); got != "NOERROR 203.0.113.10" {
					return "api.payments.example.com. A: " + got
				}
				return ""
			})
			for qname, want := range map[string]string{
				"productpage.bookinfo.svc.cluster.local.": "NOERROR 10.96.10.10",
				"ghost.bookinfo.svc.cluster.local.":       "SERVFAIL",
			} {
				if got := lookup(t, c, srv.dnsPort, qname); got != want {
					t.Errorf("%s A: %s, want %s", qname, got, want)
				}
			}
		})
	}
	if code, _ := srv.get(t, "/readyz"); code != 503 {
		t.Errorf("/readyz = %d while the API server has not synced, want 503", code)
	}
}
