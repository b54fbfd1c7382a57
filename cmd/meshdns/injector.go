//go:build !nokube

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/inject"
	"github.com/meshdns/meshdns/internal/safefile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of meshdns injector (docs/injection.md).
const (
	defaultInjectorListen = ":15443"
	defaultInjectorAdmin  = ":15054"
)

// maxCAFile bounds --controller-ca: every injected pod carries it in an annotation, and a
// pod's annotations may hold 256 KiB in all.
const maxCAFile = 64 << 10

// HTTP limits of the webhook and its admin endpoint: the API server waits for a webhook at
// most 30 s (timeoutSeconds), so nothing needs longer.
const (
	injectorHeaderTimeout = 5 * time.Second
	injectorReadTimeout   = 10 * time.Second
	injectorWriteTimeout  = 10 * time.Second
	injectorIdleTimeout   = 90 * time.Second
)

type injectorFlags struct {
	listen, admin       string
	tlsCert, tlsKey     string
	controllerCA        string // file; its PEM becomes cfg.ControllerCA
	cfg                 inject.Config
	logLevel, logFormat string
}

func newInjectorFlags() (*flag.FlagSet, *injectorFlags) {
	f := &injectorFlags{cfg: inject.DefaultConfig()}
	c := &f.cfg
	fs := flag.NewFlagSet("injector", flag.ContinueOnError)
	fs.StringVar(&f.listen, "listen", defaultInjectorListen, "HTTPS `address` of the webhook (paths "+inject.PathAnnotated+" and "+inject.PathNamespace+")")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate `file` of the webhook (required; read again when it changes)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key `file` of the webhook (required; read again when it changes)")
	fs.StringVar(&f.admin, "admin", defaultInjectorAdmin, "plain HTTP `address` of /healthz, /readyz and /metrics (empty: off)")
	fs.StringVar(&c.Image, "image", "", "meshdns `image` of the injected containers (required)")
	fs.StringVar(&c.CaptureImage, "capture-image", "", "`image` of the capture step, which needs iptables or nft beside meshdns (default: --image)")
	fs.Int64Var(&c.ExemptUID, "exempt-uid", inject.DefaultExemptUID, "`uid` and gid the sidecar runs as; capture leaves its traffic alone")
	fs.IntVar(&c.ProxyPort, "proxy-port", inject.DefaultProxyPort, "`port` the sidecar listens on (127.0.0.1) and capture redirects DNS to")
	fs.StringVar(&c.SidecarAdmin, "sidecar-admin", inject.DefaultSidecarAdmin, "the sidecar's --admin `address`, probed by the kubelet on its port")
	fs.Var(argsFlag{&c.SidecarArgs}, "sidecar-args", "more `arguments` of the sidecar's meshdns serve (split at spaces; repeatable)")
	fs.Var(argsFlag{&c.CaptureArgs}, "capture-args", "more `arguments` of the capture step's meshdns capture install (split at spaces; repeatable)")
	fs.StringVar(&c.SidecarCPU, "sidecar-cpu", c.SidecarCPU, "CPU `request` of the sidecar (empty: none)")
	fs.StringVar(&c.SidecarMemory, "sidecar-memory", c.SidecarMemory, "memory `request` of the sidecar (empty: none)")
	fs.StringVar(&c.SidecarMemoryLimit, "sidecar-memory-limit", c.SidecarMemoryLimit, "memory `limit` of the sidecar (empty: none)")
	fs.StringVar(&c.Controller, "controller", "", "make the sidecars agents of the meshdns controller at `host:port` (comma-separated), with no access to the API server (empty: they watch it)")
	fs.StringVar(&f.controllerCA, "controller-ca", "", "CA certificate `file` (PEM) that verifies the controller, handed to each pod (read at start)")
	fs.StringVar(&c.ControllerCAConfigMap, "controller-ca-configmap", "", "ConfigMap `name`, in each pod's namespace, whose ca.crt verifies the controller")
	fs.StringVar(&c.TokenAudience, "token-audience", c.TokenAudience, "`audience` of the sidecars' tokens for the controller (its --token-audience)")
	fs.StringVar(&f.logLevel, "log-level", config.DefaultLogLevel, "log `level`: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", config.DefaultLogFormat, "log `format`: text or json")
	return fs, f
}

// argsFlag collects arguments given as one or more space-separated words per use.
type argsFlag struct{ values *[]string }

func (a argsFlag) String() string {
	if a.values == nil {
		return ""
	}
	return strings.Join(*a.values, " ")
}

func (a argsFlag) Set(s string) error {
	*a.values = append(*a.values, strings.Fields(s)...)
	return nil
}

// validate checks what Config.Validate does not: addresses, files and logging; errors name
// the flag.
func (f *injectorFlags) validate(stderr io.Writer) (*slog.Logger, error) {
	if f.controllerCA != "" {
		pem, err := safefile.ReadRegular(f.controllerCA, maxCAFile)
		if err != nil {
			return nil, fmt.Errorf("--controller-ca: %w", err)
		}
		f.cfg.ControllerCA = string(pem)
	}
	if err := f.cfg.Validate(); err != nil {
		return nil, err
	}
	for _, a := range []struct{ flag, value string }{{"listen", f.listen}, {"admin", f.admin}} {
		if a.value == "" && a.flag == "admin" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.value); err != nil {
			return nil, fmt.Errorf("--%s: %q: %v", a.flag, a.value, err)
		}
	}
	switch {
	case f.tlsCert == "":
		return nil, errors.New("--tls-cert: required: the webhook serves HTTPS only")
	case f.tlsKey == "":
		return nil, errors.New("--tls-key: required: the webhook serves HTTPS only")
	case f.logFormat != "text" && f.logFormat != "json":
		return nil, fmt.Errorf("--log-format: %q: want text or json", f.logFormat)
	}
	var s config.Settings
	if err := s.LogLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %q: want debug, info, warn or error", f.logLevel)
	}
	s.LogJSON = f.logFormat == "json"
	return newLogger(s, stderr), nil
}

// injectorCmd runs `meshdns injector`: bad flags or an unusable key pair exit 2, a failure to
// listen 1; SIGTERM or SIGINT stops it (exit 0).
func injectorCmd(args []string, stdout, stderr io.Writer) int {
	fs, f := newInjectorFlags()
	if code := parseFlags(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	log, err := f.validate(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "meshdns injector: %s\n", oneLine(err.Error()))
		return exitUsage
	}
	reg := newRegistry()
	metrics := inject.NewMetrics(reg)
	certs := inject.NewCertReloader(f.tlsCert, f.tlsKey, metrics, log)
	if err := certs.Load(); err != nil {
		fmt.Fprintf(stderr, "meshdns injector: %s\n", oneLine(err.Error()))
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runInjector(ctx, f, certs, reg, metrics, log); err != nil {
		log.Error("meshdns injector failed", "err", err)
		return 1
	}
	return 0
}

func runInjector(ctx context.Context, f *injectorFlags, certs *inject.CertReloader, reg *prometheus.Registry, m *inject.Metrics, log *slog.Logger) error {
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	webhook := newInjectorServer(inject.NewHandler(inject.HandlerOptions{Config: f.cfg, Metrics: m, Logger: log}), log)
	webhook.TLSConfig = &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12}
	servers := []*http.Server{webhook}
	errc := make(chan error, 2)
	go func() { errc <- webhook.ServeTLS(ln, "", "") }()
	adminAddr := ""
	if f.admin != "" {
		aln, err := net.Listen("tcp", f.admin)
		if err != nil {
			webhook.Close()
			return fmt.Errorf("--admin: %w", err)
		}
		adm := newInjectorServer(injectorAdmin(reg), log)
		servers = append(servers, adm)
		adminAddr = aln.Addr().String()
		go func() { errc <- adm.Serve(aln) }()
	}
	log.Info("meshdns injector serving", "webhook", ln.Addr().String(), "admin", adminAddr, "image", f.cfg.Image, "controller", f.cfg.Controller)
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), config.ShutdownTimeout)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newInjectorServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: injectorHeaderTimeout, ReadTimeout: injectorReadTimeout,
		WriteTimeout: injectorWriteTimeout, IdleTimeout: injectorIdleTimeout,
		// TLS handshake failures (a client without the CA) are the client's problem: debug.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
}

// injectorAdmin serves /healthz, /readyz and /metrics. The injector is ready once it serves:
// its key pair is loaded before it listens, and it reads nothing else.
func injectorAdmin(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
