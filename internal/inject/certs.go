package inject

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/meshdns/meshdns/internal/safefile"
)

// maxPEM bounds a certificate or key file.
const maxPEM = 1 << 20

// CertReloader serves the key pair of two files and reads them again when either changes, so
// a rotated Secret takes effect without a restart. A pair that cannot be used (a key written
// before its certificate, say) is logged and the previous one stays in use until the files
// change again.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	m                 *Metrics

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp [2]fileStamp // of the files as last read
}

// fileStamp tells a file's versions apart: a Secret volume swaps a symbolic link to new files.
type fileStamp struct {
	mod  int64 // UnixNano
	size int64
	ino  uint64
}

// NewCertReloader returns a reloader of certFile and keyFile (PEM); Load reads them.
func NewCertReloader(certFile, keyFile string, m *Metrics, log *slog.Logger) *CertReloader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &CertReloader{certFile: certFile, keyFile: keyFile, log: log, m: m}
}

// Load reads the pair; its error names the file or says that they do not match.
func (r *CertReloader) Load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := r.stamps()
	if err != nil {
		return err
	}
	return r.load(stamp)
}

// GetCertificate is tls.Config's: the current pair, read again first if a file changed.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if stamp, err := r.stamps(); err == nil && stamp != r.stamp {
		if err := r.load(stamp); err != nil {
			r.log.Warn("TLS key pair changed but cannot be used; serving the previous one", "err", err)
		} else {
			r.log.Info("TLS key pair reloaded", "cert", r.certFile, "notAfter", r.cert.Leaf.NotAfter)
		}
	}
	if r.cert == nil {
		return nil, fmt.Errorf("no TLS key pair loaded from %s and %s", r.certFile, r.keyFile)
	}
	return r.cert, nil
}

// load reads both files; stamp is recorded even on failure, so a bad pair is reported once
// per change.
func (r *CertReloader) load(stamp [2]fileStamp) error {
	r.stamp = stamp
	certPEM, err := safefile.ReadRegular(r.certFile, maxPEM)
	if err != nil {
		return fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM, err := safefile.ReadRegular(r.keyFile, maxPEM)
	if err != nil {
		return fmt.Errorf("--tls-key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("--tls-cert %s, --tls-key %s: %s", r.certFile, r.keyFile, oneLine(err))
	}
	r.cert = &cert
	r.m.certExpiry.Set(float64(cert.Leaf.NotAfter.Unix()))
	return nil
}

func (r *CertReloader) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, f := range []struct{ flag, path string }{{"tls-cert", r.certFile}, {"tls-key", r.keyFile}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return s, fmt.Errorf("--%s: %w", f.flag, err)
		}
		s[i] = fileStamp{mod: fi.ModTime().UnixNano(), size: fi.Size()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s[i].ino = st.Ino
		}
	}
	return s, nil
}
