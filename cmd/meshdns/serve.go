package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"

	"github.com/meshdns/meshdns/internal/admin"
	"github.com/meshdns/meshdns/internal/agent"
	"github.com/meshdns/meshdns/internal/builder"
	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/resolvconf"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/safefile"
	"github.com/meshdns/meshdns/internal/server"
	"github.com/meshdns/meshdns/internal/source"
	"github.com/meshdns/meshdns/internal/source/file"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/meshdns/meshdns/internal/vipfwd"
	"github.com/meshdns/meshdns/internal/xds"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func serveFlags(c *config.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	kubeFlags(fs, c)
	vipFlags(fs, c)
	logFlags(fs, c)
	fs.StringVar(&c.Registry, "registry", c.Registry, "manifest `directory` (Services, EndpointSlices, Pods, ServiceEntries, ...); watched for changes")
	fs.BoolVar(&c.RegistryFollowSymlinks, "registry-follow-symlinks", c.RegistryFollowSymlinks, "follow symbolic links of --registry that lead out of its directory (off: ignored, with a warning)")
	fs.Var(listFlag{&c.Controller}, "controller", "meshdns controller `host:port` to take the cluster's names from instead of watching the API server (comma-separated or repeated: tried in turn)")
	fs.StringVar(&c.ControllerCA, "controller-ca", c.ControllerCA, "CA certificate `file` (PEM) that verifies the controller (empty: plain text, no token)")
	fs.BoolVar(&c.NodeAgent, "node-agent", c.NodeAgent, "answer each pod of this node in its own context (namespace, search list), found by the query's source address; needs the Kubernetes source")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "`node` whose pods --node-agent serves (default: $NODE_NAME)")
	fs.StringVar(&c.TokenFile, "token-file", c.TokenFile, "service account token `file` presented to the controller; read again on every reconnection")
	fs.BoolVar(&c.WatchPods, "watch-pods", c.WatchPods, "watch pods: pod names (a-b-c-d.<ns>.pod.<domain>), StatefulSet names from pods, pods selected by ServiceEntries")
	fs.Var(listFlag{&c.Listen}, "listen", "DNS `address` for UDP and TCP (repeatable; default "+config.DefaultListen.String()+")")
	fs.Var(listFlag{&c.AllowClients}, "allow-clients", "client `networks` (CIDR or IP, comma-separated or repeated) answered; others get REFUSED (default: everyone on loopback listen addresses, else loopback, private, link-local and 100.64.0.0/10)")
	fs.IntVar(&c.MaxUDPSize, "max-udp-size", c.MaxUDPSize, "largest UDP reply in `bytes`, whatever the client advertises (512 to 4096); larger answers are truncated with TC")
	fs.StringVar(&c.Admin, "admin", c.Admin, "admin HTTP `address` for /metrics, /healthz, /readyz, /debug/table (empty: off)")
	fs.StringVar(&c.ResolvConf, "resolv-conf", c.ResolvConf, "resolv.conf `file`: upstream nameservers, search list, namespace")
	fs.Var(listFlag{&c.Upstreams}, "upstream", "upstream resolver `IP[:port]` (repeatable; default: nameservers of --resolv-conf)")
	fs.StringVar(&c.ClusterDomain, "cluster-domain", c.ClusterDomain, "cluster `domain`")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "client `namespace` (default: from the resolv.conf search list)")
	fs.Var(listFlag{&c.Search}, "search", "client search `domain` (repeatable; default: from --namespace or resolv.conf)")
	fs.DurationVar(&c.TTL, "ttl", c.TTL, "TTL of local answers")
	fs.BoolVar(&c.ForwardUnknownClusterNames, "forward-unknown-cluster-names", c.ForwardUnknownClusterNames, "forward unknown names of the cluster domain instead of answering NXDOMAIN")
	fs.StringVar(&c.ChaosVersion, "chaos-version", c.ChaosVersion, "`text` of CHAOS TXT version.bind and version.server (empty: REFUSED)")
	fs.StringVar(&c.ChaosID, "chaos-id", c.ChaosID, "`text` of CHAOS TXT hostname.bind and id.server (empty: REFUSED)")
	fs.StringVar(&c.UpstreamPolicy, "upstream-policy", c.UpstreamPolicy, "order of upstream tries: sequential, random or parallel")
	fs.IntVar(&c.CacheSize, "cache-size", c.CacheSize, "entries in each of the positive and negative caches of upstream answers (0: no cache)")
	fs.StringVar(&c.CacheMaxBytes, "cache-max-bytes", c.CacheMaxBytes, "estimated memory of the cache of upstream answers, both stores together (bytes, KiB, MiB or GiB)")
	fs.DurationVar(&c.CacheMinTTL, "cache-min-ttl", c.CacheMinTTL, "lower clamp of cached positive TTLs")
	fs.DurationVar(&c.CacheMaxTTL, "cache-max-ttl", c.CacheMaxTTL, "upper clamp of cached TTLs")
	fs.DurationVar(&c.ServeStale, "serve-stale", c.ServeStale, "how long after expiry a cached answer may be served when every upstream fails (0: off)")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "`directory` where VIP assignments are kept across restarts (empty: in memory only)")
	fs.BoolVar(&c.ForwardVIPs, "forward-vips", c.ForwardVIPs, "forward TCP connections to VIPs (redirected by capture install --vips) to their ServiceEntry hosts")
	fs.IntVar(&c.VIPForwardPort, "vip-forward-port", c.VIPForwardPort, "loopback `port` of the VIP forwarder")
	fs.BoolVar(&c.VIPNAT, "vip-nat", c.VIPNAT, "after forwarding a VIP's connection, send later ones to the same host by nftables DNAT until the answer's TTL ends (needs nft and CAP_NET_ADMIN)")
	fs.BoolVar(&c.LogQueries, "log-queries", c.LogQueries, "log every query (debug aid; costly)")
	fs.BoolVar(&c.ReusePort, "reuse-port", c.ReusePort, "let a new meshdns of the same user bind --listen and --admin while this one runs, and take over (SO_REUSEPORT); off: a second one fails to start")
	return fs
}

// kubeFlags are the Kubernetes source's flags, which serve and controller share.
func kubeFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig `file` of the Kubernetes API server to watch (in a pod: its service account, without this flag)")
	fs.Var(listFlag{&c.Namespaces}, "namespaces", "watch only these Kubernetes `namespaces` (comma-separated or repeated; default: all)")
	fs.Float64Var(&c.KubeAPIQPS, "kube-api-qps", c.KubeAPIQPS, "requests per second to the API server")
	fs.IntVar(&c.KubeAPIBurst, "kube-api-burst", c.KubeAPIBurst, "request burst to the API server")
	fs.BoolVar(&c.LeaderElect, "leader-elect", c.LeaderElect, "elect one replica (with a Lease) to write VIPs to ServiceEntry status; off: this one writes")
	fs.StringVar(&c.LeaderElectNamespace, "leader-elect-namespace", c.LeaderElectNamespace, "`namespace` of the Lease (default: the pod's, else "+config.DefaultLeaseNamespace+")")
	fs.DurationVar(&c.LeaderElectLeaseDuration, "leader-elect-lease-duration", c.LeaderElectLeaseDuration, "how long the Lease of a writer that stopped renewing lasts")
}

// vipFlags are the VIP allocator's flags.
func vipFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.VIPCIDR, "vip-cidr", c.VIPCIDR, "IPv4 `pool` of auto-allocated ServiceEntry VIPs (empty: none)")
	fs.StringVar(&c.VIPCIDR6, "vip-cidr6", c.VIPCIDR6, "IPv6 `pool` of auto-allocated ServiceEntry VIPs (empty: none)")
	fs.DurationVar(&c.VIPQuarantine, "vip-quarantine", c.VIPQuarantine, "how long a freed VIP is kept from other hosts")
}

func logFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: text or json")
}

func serveCmd(args []string, stdout, stderr io.Writer) int {
	cfg := config.Default()
	fs := serveFlags(&cfg)
	if code := parseFlags(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	settings, err := cfg.Validate(detectPod())
	if err != nil {
		fmt.Fprintf(stderr, "meshdns serve: %s\n", oneLine(err.Error()))
		return exitUsage
	}
	if settings.Registry != "" {
		if err := file.CheckDir(settings.Registry); err != nil {
			fmt.Fprintf(stderr, "meshdns serve: --registry: %q is not a readable directory: %s\n", settings.Registry, oneLine(err.Error()))
			return exitUsage
		}
	}
	var kcfg *kubeConfig
	if settings.Kubernetes() || settings.NodeAgent {
		if kcfg, err = loadKubeConfig(settings); err != nil {
			fmt.Fprintf(stderr, "meshdns serve: %s\n", oneLine(err.Error()))
			return exitUsage
		}
	}
	log := newLogger(settings, stderr)
	logKubeClient(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, settings, kcfg, log, newRegistry()); err != nil {
		log.Error("meshdns serve failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg config.Settings, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// clientSetup returns the upstream servers, the client context (namespace, search list) and
// the resolv.conf they came from.
func clientSetup(cfg config.Settings, log *slog.Logger) ([]netip.AddrPort, resolver.Client, resolvconf.Config) {
	rc, err := resolvconf.ParseFile(cfg.ResolvConf)
	if err != nil {
		log.Warn("cannot read resolv.conf; no search list or nameservers from it", "err", err)
	}
	servers := rc.Nameservers
	if len(cfg.Upstreams) > 0 {
		servers = cfg.Upstreams
	}
	ns, search := cfg.ClientContext(rc.Search)
	return withoutSelf(servers, cfg.Listen, log), resolver.Client{Namespace: ns, Search: search}, rc
}

// watchResolvConf follows the nameservers of --resolv-conf (a VM's DHCP client may rewrite
// it): they replace the forwarder's servers, and the cache is flushed since the new servers may
// answer differently (a VPN's split horizon). A file without nameservers is taken for one
// being rewritten and changes nothing. The search list is read once at start.
func watchResolvConf(ctx context.Context, cfg config.Settings, rc resolvconf.Config, fwd *upstream.Forwarder, c *cache.Cache, log *slog.Logger) (stop func()) {
	current := fmt.Sprint(withoutSelf(rc.Nameservers, cfg.Listen, log))
	w, err := resolvconf.Watch(ctx, cfg.ResolvConf, rc, func(rc resolvconf.Config) {
		servers := withoutSelf(rc.Nameservers, cfg.Listen, log)
		if len(servers) == 0 {
			log.Warn("resolv.conf has no usable nameserver now; keeping the upstreams", "upstreams", current)
			return
		}
		if fmt.Sprint(servers) == current {
			return
		}
		current = fmt.Sprint(servers)
		log.Info("resolv.conf changed; new upstreams, cache flushed", "upstreams", current)
		fwd.SetServers(servers)
		if c != nil {
			c.Flush()
		}
	}, log)
	if err != nil {
		log.Warn("not watching resolv.conf for changes", "err", err)
		return func() {}
	}
	return w.Wait
}

// withoutSelf drops upstreams that are meshdns's own listen addresses: forwarding there would
// send every unknown name around in a loop.
func withoutSelf(servers []netip.AddrPort, listen []netip.AddrPort, log *slog.Logger) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range servers {
		if config.IsSelf(s, listen, isLocalAddr) {
			log.Warn("ignoring upstream: it is meshdns's own listen address", "upstream", s.String())
			continue
		}
		out = append(out, s)
	}
	return out
}

func isLocalAddr(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

// daemon holds what serve wires together. Components start in dependency order; when serve
// returns, background work is cancelled, then the functions registered with onStop run in
// reverse order.
type daemon struct {
	cfg      config.Settings
	kube     *kubeConfig // nil without the Kubernetes source
	kubeSrc  *kubeSource
	agentSrc *agent.Source // nil without --controller
	views    *server.Views // nil without --node-agent
	// podsSynced is closed once the node agent has listed its node's pods; nil without
	// --node-agent.
	podsSynced <-chan struct{}
	vipStore   *vip.FileStore // nil without --state-dir
	log        *slog.Logger
	reg        *prometheus.Registry
	bg         context.Context // background work: source watch, builder, resolv.conf watch
	cancelBg   context.CancelFunc
	stops      []func()
	// What --resolv-conf and the flags say of upstreams and the client, read once at start.
	servers []netip.AddrPort
	client  resolver.Client
	resolv  resolvconf.Config
}

func (d *daemon) onStop(f func()) { d.stops = append(d.stops, f) }

func (d *daemon) close() {
	d.cancelBg()
	for i := len(d.stops) - 1; i >= 0; i-- {
		d.stops[i]()
	}
}

// newRegistry returns the registry /metrics serves, with the Go runtime's and the process's
// metrics; serve's components add theirs.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func serve(ctx context.Context, cfg config.Settings, kube *kubeConfig, log *slog.Logger, reg *prometheus.Registry) error {
	bg, cancelBg := context.WithCancel(context.Background())
	d := &daemon{cfg: cfg, kube: kube, log: log, reg: reg, bg: bg, cancelBg: cancelBg}
	defer d.close()
	d.servers, d.client, d.resolv = clientSetup(cfg, log)
	if cfg.NodeAgent {
		// A client the agent cannot place (the host network, a pod not seen yet) is answered
		// as by a plain cluster DNS: no namespace, no search list.
		d.client = resolver.Client{}
		if err := d.startNodeAgent(); err != nil {
			return err
		}
	}
	src, err := d.startSources()
	if err != nil {
		return err
	}
	res, client := d.newResolver()
	publish, tableReady := signalReady(res.SetTable)
	if err := d.startBuilder(src, publish); err != nil {
		return err
	}
	if !d.awaitTurn(ctx, tableReady) {
		return nil
	}
	if err := d.startVIPForwarder(res, client); err != nil {
		return err
	}
	srv, err := d.startServing(res, client)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down: leaving the listen addresses, answering what is queued")
	sctx, cancel := context.WithTimeout(context.Background(), config.ShutdownTimeout)
	defer cancel()
	srv.Shutdown(sctx)
	res.Close() // after the server: no query can start a refresh any more
	return nil
}

// startSources starts the manifest directory and the Kubernetes sources that are configured.
// The directory is ready at once (read before startSources returns), Kubernetes after the
// informers' first lists (source.Ready).
func (d *daemon) startSources() (source.Source, error) {
	var srcs []source.Source
	if d.cfg.Registry != "" {
		parseErrors := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_registry_parse_errors_total",
			Help: "Manifest files that failed to parse (their last good content stays in effect).",
		})
		d.reg.MustRegister(parseErrors)
		f := file.New(file.Options{Dir: d.cfg.Registry, FollowSymlinks: d.cfg.RegistryFollowSymlinks,
			Logger: d.log, ParseErrors: parseErrors})
		if err := f.Start(d.bg); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		d.onStop(f.Wait)
		srcs = append(srcs, f)
	}
	if d.cfg.Kubernetes() {
		k, err := d.startKubeSource()
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, k)
	}
	if len(d.cfg.Controller) > 0 {
		a, err := d.startAgent()
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, a)
	}
	return source.Merge(d.bg, srcs...), nil
}

// agentNamespace is the view an agent asks its controller for: its client's namespace, or
// for a node agent, which answers the pods of every namespace, all of them.
func agentNamespace(cfg config.Settings, client resolver.Client) string {
	if cfg.NodeAgent {
		return xds.AllNamespaces
	}
	return client.Namespace
}

// startAgent streams the cluster's objects from the controller (docs/controller.md).
func (d *daemon) startAgent() (*agent.Source, error) {
	var tlsCfg *tls.Config
	if d.cfg.ControllerCA != "" {
		pem, err := safefile.ReadRegular(d.cfg.ControllerCA, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("--controller-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--controller-ca: %s holds no PEM certificate", d.cfg.ControllerCA)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	id, _ := os.Hostname()
	a, err := agent.New(agent.Options{Addrs: d.cfg.Controller, TLS: tlsCfg, TokenFile: d.cfg.TokenFile,
		Namespace: agentNamespace(d.cfg, d.client), NodeID: id, StateDir: d.cfg.StateDir, Logger: d.log,
		Metrics: agent.NewMetrics(d.reg)})
	if err != nil {
		return nil, err
	}
	d.onStop(a.Start(d.bg))
	d.agentSrc = a
	return a, nil
}

// newResolver wires the forwarder, the cache and the resolver, and follows resolv.conf.
func (d *daemon) newResolver() (*resolver.Resolver, resolver.Client) {
	cfg, log, servers, client, rc := d.cfg, d.log, d.servers, d.client, d.resolv
	fwd := upstream.New(servers, upstream.Options{Policy: cfg.UpstreamPolicy, Logger: log, Metrics: upstream.NewMetrics(d.reg)})
	d.onStop(fwd.Close)
	if len(servers) == 0 {
		log.Warn("no upstream nameservers: names meshdns does not own will get SERVFAIL")
	}
	answers := newCache(cfg, d.reg)
	if len(cfg.Upstreams) == 0 {
		d.onStop(watchResolvConf(d.bg, cfg, rc, fwd, answers, log))
	}
	res := resolver.New(resolver.Options{Zone: cfg.ClusterDomain.String(), Forwarder: fwd,
		ForwardUnknownClusterNames: cfg.ForwardUnknownClusterNames, Logger: log,
		Cache: answers, ChaosVersion: cfg.ChaosVersion, ChaosID: cfg.ChaosID})
	d.onStop(res.Close) // Close is idempotent
	log.Info("upstreams", "servers", fmt.Sprint(servers), "namespace", client.Namespace, "search", client.Search)
	return res, client
}

// startBuilder runs the table builder. Until every source is ready its tables are partial:
// the names of the ready sources are answered, other cluster names get SERVFAIL (not ready).
func (d *daemon) startBuilder(src source.Source, publish func(*table.Table)) error {
	vips, store, err := newVIPs(d.cfg, d.reg, d.log)
	if err != nil {
		return err
	}
	// An agent answers as a meshdns watching the API server would.
	cluster := d.cfg.Kubernetes() || d.agentSrc != nil
	opts := builder.Options{
		Table: table.Options{Zone: d.cfg.ClusterDomain.String(), TTL: d.cfg.TTL,
			NoPodRecords: cluster && !d.cfg.WatchPods, StatusFirst: cluster},
		Snapshot: src.Snapshot, Changed: src.Changed(), Ready: func() bool { return source.Ready(src) },
		Publish: publish, Logger: d.log, Metrics: builder.NewMetrics(d.reg), VIPs: vips,
	}
	if store != nil {
		opts.VIPStore, d.vipStore = store, store
	}
	if d.kubeSrc != nil && vips != nil {
		opts.Assigned = d.startStatusWriter()
	}
	b := builder.New(opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(d.bg)
	}()
	d.onStop(func() { <-done })
	return nil
}

// startVIPForwarder runs the VIP forwarder with --forward-vips (docs/vips.md, Forwarding);
// it stops with serve.
func (d *daemon) startVIPForwarder(res *resolver.Resolver, client resolver.Client) error {
	if len(d.cfg.VIPForward) == 0 {
		return nil
	}
	var nat *vipfwd.NAT
	if d.cfg.VIPNAT {
		var err error
		if nat, err = vipfwd.NewNAT(d.bg, d.log, d.reg); err != nil {
			return err
		}
	}
	f := vipfwd.New(vipfwd.Options{Listen: addrStrings(d.cfg.VIPForward), Resolver: res,
		Control: server.ListenConfig(d.cfg.ReusePort).Control,
		Client:  client, Logger: d.log, Metrics: vipfwd.NewMetrics(d.reg), NAT: nat})
	if err := f.Start(); err != nil {
		return err
	}
	d.onStop(f.Close)
	d.log.Info("forwarding VIPs", "addrs", f.Addrs())
	return nil
}

// signalReady wraps publish: the channel closes once a table built from every source is
// published.
func signalReady(publish func(*table.Table)) (func(*table.Table), <-chan struct{}) {
	ready := make(chan struct{})
	var once sync.Once
	return func(t *table.Table) {
		publish(t)
		if t != nil && !t.Partial() {
			once.Do(func() { close(ready) })
		}
	}, ready
}

// awaitTurn returns at once unless a running meshdns holds the listen addresses
// (--reuse-port: an upgrade) or this one is a node agent. Then, before this one binds
// anything, it waits until tableReady is closed and a node agent has listed its node's pods
// (so that it knows its clients): no query or VIP connection reaches it before it can answer.
// Until then the running one serves alone; for a node agent with nothing running (a first
// start, a restart after a crash), capture --node sends the pods' queries to the cluster DNS
// while no socket of the agent exists (docs/nodeagent.md). It returns false when ctx ends
// first.
func (d *daemon) awaitTurn(ctx context.Context, tableReady <-chan struct{}) bool {
	listen := addrStrings(d.cfg.Listen)
	switch {
	case d.cfg.ReusePort && slices.ContainsFunc(listen, server.Held):
		d.log.Info("listen addresses in use (a meshdns being replaced?): joining them once the name table is ready (and a node agent's pods listed)", "dns", listen)
	case d.cfg.NodeAgent:
		d.log.Info("node agent: binding the listen addresses once the name table is ready and the node's pods are listed", "dns", listen)
	default:
		return true
	}
	for _, ready := range []<-chan struct{}{tableReady, d.podsSynced} {
		if ready == nil {
			continue
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// startServing binds the DNS listeners, then the admin endpoint; the admin server stops with
// serve, the DNS server is shut down by serve itself (first, and within a deadline).
func (d *daemon) startServing(res *resolver.Resolver, client resolver.Client) (*server.Server, error) {
	srv := server.New(res, server.Options{Listen: addrStrings(d.cfg.Listen), Client: client, Views: d.views, Logger: d.log,
		Metrics: server.NewMetrics(d.reg), LogQueries: d.cfg.LogQueries,
		MaxUDPSize: d.cfg.MaxUDPSize, AllowClients: d.cfg.AllowClients, ReusePort: d.cfg.ReusePort})
	if err := srv.Start(); err != nil {
		return nil, err
	}
	adm, err := startAdmin(d.cfg, d.reg, res, client.Namespace, explainer(d.cfg, res, client, d.resolv.Search), d.readyDetails, d.podsSynced, d.log)
	if err != nil {
		srv.Shutdown(context.Background())
		return nil, err
	}
	if adm != nil {
		d.onStop(func() {
			ctx, cancel := context.WithTimeout(context.Background(), config.ShutdownTimeout)
			defer cancel()
			adm.Shutdown(ctx)
		})
	}
	d.log.Info("meshdns serving", "dns", srv.Addrs(), "admin", adminAddr(d.cfg), "registry", d.cfg.Registry)
	return srv, nil
}

// newVIPs returns the VIP allocator, restored from --state-dir, and the store that keeps its
// state there; nil when both pools are off. A state file whose content is unusable is set
// aside and reported, and VIPs start from an empty state (the first choices are
// deterministic, so most come back the same); one that is not a regular file or cannot be
// read stops the start, since starting over it could lose VIPs (docs/vips.md, A bad state
// file).
func newVIPs(cfg config.Settings, reg prometheus.Registerer, log *slog.Logger) (*vip.Allocator, *vip.FileStore, error) {
	if !cfg.VIPv4.IsValid() && !cfg.VIPv6.IsValid() {
		return nil, nil, nil
	}
	a, err := vip.New(vip.Options{V4: cfg.VIPv4, V6: cfg.VIPv6, Quarantine: cfg.VIPQuarantine,
		Metrics: vip.NewMetrics(reg), Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if cfg.StateDir == "" {
		log.Info("no --state-dir: VIP assignments live in memory only")
		return a, nil, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("--state-dir: %w", err)
	}
	store := vip.NewFileStore(cfg.StateDir, vip.FileStoreOptions{Metrics: vip.NewStoreMetrics(reg)})
	state, err := store.Load()
	var aside *vip.SetAsideError
	switch {
	case errors.As(err, &aside):
		log.Error("VIP state file unusable: kept aside, VIPs start from an empty state",
			"file", aside.Path, "problem", aside.Err, "kept", aside.Kept)
	case err != nil:
		return nil, nil, err
	}
	a.Restore(state)
	return a, store, nil
}

// newCache returns the cache of upstream answers, nil when --cache-size is 0.
func newCache(cfg config.Settings, reg prometheus.Registerer) *cache.Cache {
	if cfg.CacheSize == 0 {
		return nil
	}
	return cache.New(cache.Options{Size: cfg.CacheSize, MaxBytes: cfg.CacheMaxBytes, MinTTL: cfg.CacheMinTTL,
		MaxTTL: cfg.CacheMaxTTL, ServeStale: cfg.ServeStale, Metrics: cache.NewMetrics(reg)})
}

// readyDetails are the lines /readyz adds: problems with the VIP state file, and an agent's
// connection to its controller.
func (d *daemon) readyDetails() []string {
	var out []string
	if d.vipStore != nil {
		out = append(out, d.vipStore.Problems()...)
	}
	if d.agentSrc != nil {
		out = append(out, d.agentSrc.Status()...)
	}
	if d.podsSynced != nil && !closed(d.podsSynced) {
		out = append(out, "node agent: the pods of node "+d.cfg.NodeName+" are not listed yet")
	}
	return out
}

// closed reports whether c is closed.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// startAdmin serves the admin endpoint; it is ready once the table is complete and, with
// podsSynced (a node agent), the node's pods are listed: until then the agent cannot tell its
// pods apart.
func startAdmin(cfg config.Settings, reg *prometheus.Registry, res *resolver.Resolver, namespace string, explain admin.ExplainFunc, details func() []string, podsSynced <-chan struct{}, log *slog.Logger) (*admin.Server, error) {
	if !cfg.Admin.IsValid() {
		return nil, nil
	}
	adm := admin.New(admin.Options{
		Addr: cfg.Admin.String(), Gatherer: reg, Logger: log, Details: details,
		Listen: server.ListenConfig(cfg.ReusePort && cfg.Admin.Port() != 0),
		Ready: func() bool {
			t := res.Table()
			return t != nil && !t.Partial() && (podsSynced == nil || closed(podsSynced))
		},
		Table:      func() admin.TableDump { return tableDump(res.Table(), namespace) },
		ClientView: clientView(namespace),
		Limits:     adminLimits(fileLimit(), log), Metrics: admin.NewMetrics(reg),
		Explain: explain,
	})
	return adm, adm.Start()
}

// tableDump is t as /debug/table shows it: the view of a client in namespace, or every name.
func tableDump(t *table.Table, namespace string) admin.TableDump {
	if t == nil {
		return admin.TableDump{Write: func(w io.Writer, _ bool) error {
			_, err := io.WriteString(w, "[]\n")
			return err
		}}
	}
	return admin.TableDump{Generation: t.Generation(), Write: func(w io.Writer, all bool) error {
		return t.WriteDump(w, table.View{All: all, Namespace: namespace})
	}}
}

// clientView describes the names a client in namespace sees, for /debug/table.
func clientView(namespace string) string {
	if namespace == "" {
		return "client namespace unknown: names exported to every namespace"
	}
	return "client namespace " + namespace
}

// addrStrings spells addresses as the server's listen options take them.
func addrStrings(addrs []netip.AddrPort) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// adminAddr is the admin address for the log: "" when there is none.
func adminAddr(cfg config.Settings) string {
	if !cfg.Admin.IsValid() {
		return ""
	}
	return cfg.Admin.String()
}
