//go:build !nokube

package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/client-go/rest"

	"github.com/meshdns/meshdns/internal/admin"
	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/controller"
	"github.com/meshdns/meshdns/internal/table"
)

// DefaultXDSListen is the controller's gRPC address (istiod's xDS port, familiar to operators).
const DefaultXDSListen = ":15012"

// controllerOptions are the flags of `meshdns controller` beyond the Kubernetes source's.
type controllerOptions struct {
	xdsListen, tlsCert, tlsKey, audience string
	fullView                             []string // namespace/name
}

func controllerFlags(c *config.Config, o *controllerOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.StringVar(&o.xdsListen, "xds-listen", DefaultXDSListen, "gRPC `address` of the delta xDS service agents stream from")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM) of the xDS service; re-read when it changes (required)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key `file` (PEM) of the xDS service (required)")
	fs.StringVar(&o.audience, "token-audience", controller.DefaultAudience, "`audience` agents' service account tokens must be issued for")
	fs.Var(listFlag{&o.fullView}, "full-view", "service `accounts` (namespace/name, comma-separated or repeated) whose agents may have every namespace's names: node agents")
	kubeFlags(fs, c)
	vipFlags(fs, c)
	logFlags(fs, c)
	fs.StringVar(&c.Admin, "admin", c.Admin, "admin HTTP `address` for /metrics, /healthz, /readyz, /debug/table (empty: off)")
	fs.StringVar(&c.ClusterDomain, "cluster-domain", c.ClusterDomain, "cluster `domain` (of the table /debug/table shows)")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "`directory` where VIP assignments are kept across restarts (empty: in memory only)")
	return fs
}

func controllerCmd(args []string, stdout, stderr io.Writer) int {
	cfg := config.Default()
	var o controllerOptions
	fs := controllerFlags(&cfg, &o)
	if code := parseFlags(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "meshdns controller: "+format+"\n", a...)
		return exitUsage
	}
	pod := config.DetectPod()
	if cfg.Kubeconfig == "" && !pod.InCluster {
		return fail("--kubeconfig: required (or run in a pod with a service account)")
	}
	if o.tlsCert == "" || o.tlsKey == "" {
		return fail("--tls-cert and --tls-key: required (agents send their tokens only over TLS)")
	}
	if _, _, err := net.SplitHostPort(o.xdsListen); err != nil {
		return fail("--xds-listen: %q: want host:port", o.xdsListen)
	}
	fullView, err := serviceAccounts(o.fullView)
	if err != nil {
		return fail("--full-view: %s", err)
	}
	certs, err := newCertReloader(o.tlsCert, o.tlsKey)
	if err != nil {
		return fail("--tls-cert/--tls-key: %s", oneLine(err.Error()))
	}
	settings, err := cfg.Validate(pod)
	if err != nil {
		return fail("%s", oneLine(err.Error()))
	}
	kcfg, err := loadKubeConfig(settings)
	if err != nil {
		return fail("%s", oneLine(err.Error()))
	}
	log := newLogger(settings, stderr)
	logKubeClient(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runController(ctx, settings, kcfg, o, fullView, certs, log); err != nil {
		log.Error("meshdns controller failed", "err", err)
		return 1
	}
	return 0
}

// runController watches the API server (with the VIP allocator and status writer of serve)
// and serves the objects to agents until ctx ends.
func runController(ctx context.Context, cfg config.Settings, kcfg *rest.Config, o controllerOptions, fullView []controller.ServiceAccount, certs *certReloader, log *slog.Logger) error {
	reg := newRegistry()
	bg, cancelBg := context.WithCancel(context.Background())
	d := &daemon{cfg: cfg, kube: kcfg, log: log, reg: reg, bg: bg, cancelBg: cancelBg}
	defer d.close()
	src, err := d.startSources()
	if err != nil {
		return err
	}
	// The table is built as serve builds it: the VIPs it allocates are written to status, and
	// /debug/table shows it.
	var current atomic.Pointer[table.Table]
	// The builder reads the source's signal; it passes each published table on to the
	// controller, which then reads the source (the builder has debounced the burst).
	built := make(chan struct{}, 1)
	publish := func(t *table.Table) {
		current.Store(t)
		select {
		case built <- struct{}{}:
		default:
		}
	}
	if err := d.startBuilder(src, publish); err != nil {
		return err
	}
	auth, err := controller.NewTokenReviewer(kcfg, o.audience)
	if err != nil {
		return err
	}
	ctrl := controller.New(controller.Options{Source: src, Changed: built, Auth: auth, FullView: fullView, Logger: log, Metrics: controller.NewMetrics(reg)})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctrl.Run(bg)
	}()
	d.onStop(wg.Wait)

	srv := grpc.NewServer(append(controller.ServerOptions(),
		grpc.Creds(credentials.NewTLS(&tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12})))...)
	ctrl.Register(srv)
	ln, err := net.Listen("tcp", o.xdsListen)
	if err != nil {
		return fmt.Errorf("--xds-listen: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if cfg.Admin.IsValid() {
		adm := admin.New(admin.Options{Addr: cfg.Admin.String(), Gatherer: reg, Logger: log,
			Ready: ctrl.Ready, Details: d.readyDetails,
			Table:      func() admin.TableDump { return tableDump(current.Load(), "") },
			ClientView: clientView(""), Limits: adminLimits(fileLimit(), log), Metrics: admin.NewMetrics(reg)})
		if err := adm.Start(); err != nil {
			srv.Stop()
			return err
		}
		d.onStop(func() {
			sctx, cancel := context.WithTimeout(context.Background(), config.ShutdownTimeout)
			defer cancel()
			adm.Shutdown(sctx)
		})
	}
	log.Info("meshdns controller serving", "xds", ln.Addr().String(), "admin", adminAddr(cfg), "audience", o.audience)
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("xDS server: %w", err)
	}
	log.Info("shutting down")
	// Agents reconnect to another replica; a stream is endless, so do not wait for them.
	srv.Stop()
	return nil
}

// certReloader serves the key pair of two files, loaded again when either changes, so that a
// renewed certificate Secret takes effect without a restart.
type certReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	stamp             string
	cert              *tls.Certificate
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(nil); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	stamp := fileStamp(r.certFile) + "|" + fileStamp(r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && stamp == r.stamp {
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // a Secret being rewritten: keep the last good pair
		}
		return nil, err
	}
	r.cert, r.stamp = &c, stamp
	return r.cert, nil
}

// fileStamp changes when a file is replaced or rewritten.
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
}

// serviceAccounts parses namespace/name pairs.
func serviceAccounts(list []string) ([]controller.ServiceAccount, error) {
	var out []controller.ServiceAccount
	for _, v := range list {
		ns, name, ok := strings.Cut(v, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("%q: want namespace/name of a service account", v)
		}
		out = append(out, controller.ServiceAccount{Namespace: ns, Name: name})
	}
	return out, nil
}
