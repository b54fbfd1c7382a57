package inject

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// secretDir writes key pairs as the kubelet updates a Secret volume: each version in a
// directory of its own, published by swapping the ..data link that tls.crt and tls.key
// point through.
type secretDir struct {
	t       *testing.T
	dir     string
	version int
}

func newSecretDir(t *testing.T) *secretDir {
	s := &secretDir{t: t, dir: t.TempDir()}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(s.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *secretDir) write(cert, key []byte) {
	s.version++
	v := fmt.Sprintf("..v%d", s.version)
	if err := os.Mkdir(filepath.Join(s.dir, v), 0o755); err != nil {
		s.t.Fatal(err)
	}
	for f, data := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(s.dir, v, f), data, 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(v, tmp); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		s.t.Fatal(err)
	}
}

func (s *secretDir) cert() string { return filepath.Join(s.dir, "tls.crt") }
func (s *secretDir) key() string  { return filepath.Join(s.dir, "tls.key") }

// servedName connects to addr over TLS, trusting ca, and returns the first DNS name of the
// certificate it was shown.
func servedName(t *testing.T, addr string, ca *testutil.CA) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestCertReload serves TLS with the reloader and rotates the Secret under it: each new
// connection is shown the pair on disk, and a pair that does not fit together leaves the
// previous one in use.
func TestCertReload(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	day := time.Now().Add(24 * time.Hour)
	issue := func(name string, notAfter time.Time) ([]byte, []byte) {
		return ca.Issue(t, notAfter, []string{name, "localhost"}, net.ParseIP("127.0.0.1"))
	}
	s := newSecretDir(t)
	certA, keyA := issue("a.example", day)
	s.write(certA, keyA)
	m := NewMetrics(nil)
	r := NewCertReloader(s.cert(), s.key(), m, nil)
	if err := r.Load(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{GetCertificate: r.GetCertificate}
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	if got := servedName(t, addr, ca); got != "a.example" {
		t.Fatalf("served %s, want a.example", got)
	}
	certB, keyB := issue("b.example", day)
	s.write(certB, keyB)
	if got := servedName(t, addr, ca); got != "b.example" {
		t.Errorf("after rotation: served %s, want b.example", got)
	}
	certC, keyC := issue("c.example", day.Add(time.Hour))
	s.write(certC, keyB) // the key of another certificate
	if got := servedName(t, addr, ca); got != "b.example" {
		t.Errorf("after a mismatched pair: served %s, want b.example still", got)
	}
	s.write(certC, keyC)
	if got := servedName(t, addr, ca); got != "c.example" {
		t.Errorf("after the pair is fixed: served %s, want c.example", got)
	}
	if got, want := promtest.ToFloat64(m.certExpiry), float64(day.Add(time.Hour).Unix()); got != want {
		t.Errorf("meshdns_injector_certificate_expiry_timestamp_seconds %v, want %v (c.example's)", got, want)
	}
}

func TestCertLoadErrors(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	cert, key := ca.Issue(t, time.Now().Add(time.Hour), []string{"localhost"})
	_, otherKey := ca.Issue(t, time.Now().Add(time.Hour), []string{"localhost"})
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile, otherKeyFile := write("tls.crt", cert), write("tls.key", key), write("other.key", otherKey)
	garbage := write("garbage", []byte("not PEM"))
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"no certificate", filepath.Join(dir, "missing.crt"), keyFile, "--tls-cert: stat " + dir + "/missing.crt: no such file or directory"},
		{"no key", certFile, filepath.Join(dir, "missing.key"), "--tls-key: stat " + dir + "/missing.key: no such file or directory"},
		{"certificate is a directory", dir, keyFile, "--tls-cert: " + dir + " is a directory, not a regular file"},
		{"not PEM", garbage, keyFile, "--tls-cert " + garbage + ", --tls-key " + keyFile + ": tls: failed to find any PEM data in certificate input"},
		{"mismatched", certFile, otherKeyFile, "--tls-cert " + certFile + ", --tls-key " + otherKeyFile + ": tls: private key does not match public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewCertReloader(tc.cert, tc.key, nil, nil).Load()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want one line starting %q", err, tc.want)
			}
		})
	}
}
