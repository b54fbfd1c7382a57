package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/server"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/meshdns/meshdns/internal/vip"
)

// Defaults, referenced by flags and docs. Defaults that a package also applies to its zero
// Options (cache size, bytes and TTL ceiling, VIP quarantine) live in that package; Default uses
// them.
const (
	DefaultAdmin         = "127.0.0.1:15054"
	DefaultResolvConf    = "/etc/resolv.conf"
	DefaultClusterDomain = "cluster.local"
	// DefaultTTL is the TTL of local answers; Istio's agent uses 30s too.
	DefaultTTL       = 30 * time.Second
	DefaultLogLevel  = "info"
	DefaultLogFormat = "text"
	// DefaultServeStale is how long an expired answer may be served when every upstream fails
	// (RFC 8767 suggests one to three days; an hour bounds how stale a mesh's view can get).
	DefaultServeStale     = time.Hour
	DefaultUpstreamPolicy = upstream.Sequential
	// DefaultVIPCIDR and DefaultVIPCIDR6 are the pools of auto-allocated VIPs (Istio's).
	DefaultVIPCIDR  = "240.240.0.0/16"
	DefaultVIPCIDR6 = "2001:2::/48"
	// DefaultVIPForwardPort is where the VIP forwarder (--forward-vips) accepts the
	// connections capture redirects from VIPs; not 15001, which Envoy uses.
	DefaultVIPForwardPort = 15055
	// DefaultProxyPort is where meshdns listens by default (DefaultListen) and so where
	// capture redirects DNS.
	DefaultProxyPort = 15053
	// DefaultProxyID is the uid and gid whose traffic capture leaves alone: meshdns's own
	// upstream queries (Istio's proxy runs as 1337 too).
	DefaultProxyID = 1337
	// DefaultKubeAPIQPS and DefaultKubeAPIBurst limit requests to the API server (client-go's
	// own defaults, 5 and 10, are for tools; informers need few requests, status writes more).
	DefaultKubeAPIQPS   = 20
	DefaultKubeAPIBurst = 40
	// DefaultLeaseNamespace holds the VIP writer's Lease outside a pod (deploy/rbac.yaml's).
	DefaultLeaseNamespace = "meshdns-system"
	// DefaultLeaseDuration is how long a VIP writer that stopped renewing keeps the Lease.
	DefaultLeaseDuration = 15 * time.Second
	// ShutdownTimeout bounds how long in-flight queries may take after SIGTERM.
	ShutdownTimeout = 5 * time.Second
)

// DefaultListen is where meshdns answers DNS without --listen: the loopback address, on
// DefaultProxyPort.
var DefaultListen = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), DefaultProxyPort)

// DefaultAllowClients are the networks answered on a listen address other than loopback
// without --allow-clients: loopback, the private ranges (RFC 1918, unique local fc00::/7),
// link-local (169.254/16, fe80::/10) and shared address space 100.64/10 (RFC 6598), which
// some clusters use for pods and overlays (EKS custom networking, Tailscale). None of them
// is routed on the Internet, so an open resolver needs them to be given explicitly.
var DefaultAllowClients = []string{
	"127.0.0.0/8", "::1/128",
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
	"169.254.0.0/16", "fe80::/10",
	"100.64.0.0/10",
}

// Config is the command line of `meshdns serve` as given: values that need parsing are
// strings here. Validate checks it and returns the Settings the daemon runs with.
type Config struct {
	Registry string
	// RegistryFollowSymlinks follows symbolic links of the registry that lead out of it;
	// off, they are ignored with a warning.
	RegistryFollowSymlinks bool
	// Kubeconfig is the kubeconfig file of the Kubernetes source; in a pod, the service
	// account is used without it (Pod.InCluster).
	Kubeconfig string
	// Controller are the addresses (host:port) of a meshdns controller to take the cluster's
	// objects from instead of watching the API server (docs/controller.md); ControllerCA
	// verifies it, TokenFile holds the service account token the agent presents.
	Controller   []string
	ControllerCA string
	TokenFile    string
	// NodeAgent answers every pod of node NodeName in its own context, found by the query's
	// source address (docs/nodeagent.md); NodeName defaults to Pod.NodeName.
	NodeAgent bool
	NodeName  string
	// Namespaces limits the Kubernetes watch; empty watches every namespace.
	Namespaces []string
	// WatchPods watches pods; off, the Kubernetes source has no pod names, no StatefulSet
	// names from pods and no pods selected by ServiceEntries.
	WatchPods    bool
	KubeAPIQPS   float64
	KubeAPIBurst int
	// LeaderElect elects one replica to write VIPs to ServiceEntry status, with a Lease in
	// LeaderElectNamespace (default: the pod's namespace, else DefaultLeaseNamespace).
	LeaderElect                bool
	LeaderElectNamespace       string
	LeaderElectLeaseDuration   time.Duration
	Listen                     []string // empty: DefaultListen
	Admin                      string
	ResolvConf                 string
	Upstreams                  []string
	ClusterDomain              string
	Namespace                  string
	Search                     []string
	TTL                        time.Duration
	ForwardUnknownClusterNames bool
	LogLevel                   string
	LogFormat                  string
	LogQueries                 bool
	CacheSize                  int
	CacheMaxBytes              string // a size: 64MiB
	CacheMinTTL                time.Duration
	CacheMaxTTL                time.Duration
	ServeStale                 time.Duration
	UpstreamPolicy             string
	StateDir                   string
	VIPCIDR                    string
	VIPCIDR6                   string
	VIPQuarantine              time.Duration
	// ForwardVIPs runs the VIP forwarder on VIPForwardPort (docs/vips.md, Forwarding).
	ForwardVIPs    bool
	VIPForwardPort int
	// VIPNAT sends later connections to a forwarded VIP straight to its host by nftables
	// DNAT (docs/vips.md, The kernel path).
	VIPNAT bool

	// ChaosVersion and ChaosID answer the CHAOS TXT names version.bind/version.server and
	// hostname.bind/id.server; empty refuses them.
	ChaosVersion, ChaosID string

	// MaxUDPSize caps UDP replies whatever size the client advertises.
	MaxUDPSize int
	// AllowClients are the networks (CIDR or address) whose queries are answered; empty:
	// everyone when every listen address is loopback, else DefaultAllowClients.
	AllowClients []string
	// ReusePort lets a new meshdns of the same user bind the listen and admin addresses while
	// this one runs, and take over (docs/cli.md, Signals).
	ReusePort bool
}

// Default returns a Config with every default set.
func Default() Config {
	return Config{
		Admin: DefaultAdmin, ResolvConf: DefaultResolvConf, ClusterDomain: DefaultClusterDomain,
		TTL: DefaultTTL, LogLevel: DefaultLogLevel, LogFormat: DefaultLogFormat,
		CacheSize: cache.DefaultSize, CacheMaxBytes: formatBytes(cache.DefaultMaxBytes),
		CacheMaxTTL: cache.DefaultMaxTTL, ServeStale: DefaultServeStale,
		UpstreamPolicy: DefaultUpstreamPolicy.String(),
		WatchPods:      true, KubeAPIQPS: DefaultKubeAPIQPS, KubeAPIBurst: DefaultKubeAPIBurst,
		LeaderElect: true, LeaderElectLeaseDuration: DefaultLeaseDuration,
		VIPCIDR: DefaultVIPCIDR, VIPCIDR6: DefaultVIPCIDR6, VIPQuarantine: vip.DefaultQuarantine,
		VIPForwardPort: DefaultVIPForwardPort, MaxUDPSize: server.DefaultMaxUDPSize,
		ReusePort: true,
	}
}

// FlagError is a configuration error attributed to one flag.
type FlagError struct {
	Flag string
	Msg  string
}

func (e *FlagError) Error() string { return "--" + e.Flag + ": " + e.Msg }

func flagErr(flag, format string, args ...any) error {
	return &FlagError{Flag: flag, Msg: fmt.Sprintf(format, args...)}
}
