package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults, referenced by flags and docs.
const (
	DefaultListen        = "127.0.0.1:15053"
	DefaultAdmin         = "127.0.0.1:15054"
	DefaultResolvConf    = "/etc/resolv.conf"
	DefaultClusterDomain = "cluster.local"
	// DefaultTTL is the TTL of local answers; Istio's agent uses 30s too.
	DefaultTTL       = 30 * time.Second
	DefaultLogLevel  = "info"
	DefaultLogFormat = "text"
	// DefaultCacheSize is the number of entries in each of the positive and negative caches.
	DefaultCacheSize   = 10000
	DefaultCacheMaxTTL = time.Hour
	// DefaultServeStale is how long an expired answer may be served when every upstream fails
	// (RFC 8767 suggests one to three days; an hour bounds how stale a mesh's view can get).
	DefaultServeStale     = time.Hour
	DefaultUpstreamPolicy = "sequential"
	// DefaultVIPCIDR and DefaultVIPCIDR6 are the pools of auto-allocated VIPs (Istio's).
	DefaultVIPCIDR  = "240.240.0.0/16"
	DefaultVIPCIDR6 = "2001:2::/48"
	// DefaultVIPQuarantine keeps a freed VIP from another host for longer than any client
	// caches the old answer.
	DefaultVIPQuarantine = time.Hour
	// DefaultProxyPort is where capture redirects DNS: the port of DefaultListen.
	DefaultProxyPort = 15053
	// DefaultProxyID is the uid and gid whose traffic capture leaves alone: meshdns's own
	// upstream queries (Istio's proxy runs as 1337 too).
	DefaultProxyID = 1337
	// DefaultKubeAPIQPS and DefaultKubeAPIBurst limit requests to the API server (client-go's
	// own defaults, 5 and 10, are for tools; informers need few requests, status writes more).
	DefaultKubeAPIQPS   = 20
	DefaultKubeAPIBurst = 40
	// ServiceAccountToken is where a pod's service account token is mounted, and
	// ServiceAccountNamespace the file naming the pod's namespace.
	ServiceAccountToken     = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	ServiceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
	// DefaultLeaseNamespace holds the VIP writer's Lease outside a pod (deploy/rbac.yaml's).
	DefaultLeaseNamespace = "meshdns-system"
	// DefaultLeaseDuration is how long a VIP writer that stopped renewing keeps the Lease.
	DefaultLeaseDuration = 15 * time.Second
	// ShutdownTimeout bounds how long in-flight queries may take after SIGTERM.
	ShutdownTimeout = 5 * time.Second
)

// namespaceName is a Kubernetes namespace name: an RFC 1123 label.
var namespaceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Config is the configuration of `meshdns serve`.
type Config struct {
	Registry string
	// Kubeconfig is the kubeconfig file of the Kubernetes source; in a pod, the service
	// account is used without it (InCluster).
	Kubeconfig string
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
	Listen                     []string
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
	CacheMinTTL                time.Duration
	CacheMaxTTL                time.Duration
	ServeStale                 time.Duration
	UpstreamPolicy             string
	StateDir                   string
	VIPCIDR                    string
	VIPCIDR6                   string
	VIPQuarantine              time.Duration
}

// Default returns a Config with every default set.
func Default() Config {
	return Config{
		Admin: DefaultAdmin, ResolvConf: DefaultResolvConf, ClusterDomain: DefaultClusterDomain,
		TTL: DefaultTTL, LogLevel: DefaultLogLevel, LogFormat: DefaultLogFormat,
		CacheSize: DefaultCacheSize, CacheMaxTTL: DefaultCacheMaxTTL, ServeStale: DefaultServeStale,
		UpstreamPolicy: DefaultUpstreamPolicy,
		WatchPods:      true, KubeAPIQPS: DefaultKubeAPIQPS, KubeAPIBurst: DefaultKubeAPIBurst,
		LeaderElect: true, LeaderElectLeaseDuration: DefaultLeaseDuration,
		VIPCIDR: DefaultVIPCIDR, VIPCIDR6: DefaultVIPCIDR6, VIPQuarantine: DefaultVIPQuarantine,
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

// Validate checks c and fills derived defaults (the listen address).
func (c *Config) Validate() error {
	if c.Registry == "" && !c.Kubernetes() {
		return flagErr("registry", "required: the manifest directory to serve (or --kubeconfig, or run in a pod)")
	}
	if err := c.validateKube(); err != nil {
		return err
	}
	if len(c.Listen) == 0 {
		c.Listen = []string{DefaultListen}
	}
	for _, l := range c.Listen {
		if err := checkHostPort(l); err != nil {
			return flagErr("listen", "%q: %v", l, err)
		}
	}
	if c.Admin != "" {
		if err := checkHostPort(c.Admin); err != nil {
			return flagErr("admin", "%q: %v", c.Admin, err)
		}
	}
	for _, u := range c.Upstreams {
		if _, err := ParseUpstream(u); err != nil {
			return flagErr("upstream", "%q: %v", u, err)
		}
	}
	if err := c.validateUpstream(); err != nil {
		return err
	}
	if err := c.validateVIPs(); err != nil {
		return err
	}
	return c.validateNames()
}

// Kubernetes reports whether the Kubernetes source is on: --kubeconfig, or a pod's service
// account.
func (c *Config) Kubernetes() bool { return c.Kubeconfig != "" || InCluster() }

// InCluster reports whether meshdns runs in a pod with a service account token mounted, as
// client-go's in-cluster configuration needs.
func InCluster() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" || os.Getenv("KUBERNETES_SERVICE_PORT") == "" {
		return false
	}
	_, err := os.Stat(ServiceAccountToken)
	return err == nil
}

func (c *Config) validateKube() error {
	for _, ns := range c.Namespaces {
		if !namespaceName.MatchString(ns) {
			return flagErr("namespaces", "%q is not a namespace name (lowercase letters, digits and '-', at most 63)", ns)
		}
	}
	switch {
	case len(c.Namespaces) > 0 && !c.Kubernetes():
		return flagErr("namespaces", "needs --kubeconfig (or a pod's service account)")
	case c.KubeAPIQPS <= 0:
		return flagErr("kube-api-qps", "%v: must be above 0", c.KubeAPIQPS)
	case c.KubeAPIBurst < 1:
		return flagErr("kube-api-burst", "%d: must be at least 1", c.KubeAPIBurst)
	case c.LeaderElectLeaseDuration < time.Second:
		return flagErr("leader-elect-lease-duration", "%s: must be at least 1s", c.LeaderElectLeaseDuration)
	case c.LeaderElectNamespace != "" && !namespaceName.MatchString(c.LeaderElectNamespace):
		return flagErr("leader-elect-namespace", "%q is not a namespace name", c.LeaderElectNamespace)
	}
	return nil
}

// LeaseNamespace is where the VIP writer's Lease lives: --leader-elect-namespace, else the
// pod's own namespace, else DefaultLeaseNamespace.
func (c *Config) LeaseNamespace() string {
	if c.LeaderElectNamespace != "" {
		return c.LeaderElectNamespace
	}
	if b, err := os.ReadFile(ServiceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	return DefaultLeaseNamespace
}

func (c *Config) validateUpstream() error {
	switch {
	case c.CacheSize < 0:
		return flagErr("cache-size", "%d: must be 0 (no cache) or more", c.CacheSize)
	case c.CacheMinTTL < 0:
		return flagErr("cache-min-ttl", "%s: must not be negative", c.CacheMinTTL)
	case c.CacheMaxTTL < time.Second:
		return flagErr("cache-max-ttl", "%s: must be at least 1s", c.CacheMaxTTL)
	case c.CacheMinTTL > c.CacheMaxTTL:
		return flagErr("cache-min-ttl", "%s: above --cache-max-ttl %s", c.CacheMinTTL, c.CacheMaxTTL)
	case c.ServeStale < 0:
		return flagErr("serve-stale", "%s: must be 0 (off) or more", c.ServeStale)
	}
	switch c.UpstreamPolicy {
	case "sequential", "random", "parallel":
	default:
		return flagErr("upstream-policy", "%q: want sequential, random or parallel", c.UpstreamPolicy)
	}
	return nil
}

func (c *Config) validateVIPs() error {
	if _, err := VIPPool(c.VIPCIDR, false); err != nil {
		return flagErr("vip-cidr", "%v", err)
	}
	if _, err := VIPPool(c.VIPCIDR6, true); err != nil {
		return flagErr("vip-cidr6", "%v", err)
	}
	if c.VIPQuarantine <= 0 {
		// Handing a freed VIP to another host at once is the bug quarantine exists to prevent.
		return flagErr("vip-quarantine", "%s: must be positive", c.VIPQuarantine)
	}
	return nil
}

// VIPPool parses a VIP pool flag: "" turns the family off (the zero Prefix).
func VIPPool(s string, v6 bool) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
	case p.Addr().Is6() != v6 || p.Addr().Is4In6():
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv%d CIDR", s, map[bool]int{false: 4, true: 6}[v6])
	case p.Bits() > p.Addr().BitLen()-2:
		return netip.Prefix{}, fmt.Errorf("%q leaves no usable address", s)
	}
	return p.Masked(), nil
}

func (c *Config) validateNames() error {
	if _, ok := dns.IsDomainName(c.ClusterDomain); !ok || strings.Trim(c.ClusterDomain, ".") == "" {
		return flagErr("cluster-domain", "%q is not a domain name", c.ClusterDomain)
	}
	for _, s := range c.Search {
		if _, ok := dns.IsDomainName(s); !ok || strings.Trim(s, ".") == "" {
			return flagErr("search", "%q is not a domain name", s)
		}
	}
	if c.Namespace != "" && !namespaceName.MatchString(c.Namespace) {
		return flagErr("namespace", "%q is not a namespace name (lowercase letters, digits and '-', at most 63)", c.Namespace)
	}
	if c.TTL < time.Second || c.TTL > 24*time.Hour {
		return flagErr("ttl", "%s: must be between 1s and 24h", c.TTL)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return flagErr("log-level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return flagErr("log-format", "%q: want text or json", c.LogFormat)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return fmt.Errorf("host %q is not an IP address", host)
		}
	}
	return nil
}

// ParseUpstream parses "IP" or "IP:port" (port 53 by default; IPv6 with a port in brackets).
func ParseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ip, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want IP or IP:port")
	}
	return netip.AddrPortFrom(ip, 53), nil
}

// ClientContext derives the client's namespace and search list: flags first, then the
// resolv.conf search list, whose first "<ns>.svc.<zone>" domain names the namespace. With
// --namespace alone, the list is the kubelet's: the three cluster domains of the namespace,
// then resolv.conf's domains outside the cluster zone (the node's own search domains).
func (c *Config) ClientContext(resolvSearch []string) (ns string, search []string) {
	zone := strings.ToLower(dns.Fqdn(c.ClusterDomain))
	ns = c.Namespace
	switch {
	case len(c.Search) > 0:
		for _, s := range c.Search {
			search = append(search, strings.ToLower(dns.Fqdn(s)))
		}
	case ns != "":
		search = []string{ns + ".svc." + zone, "svc." + zone, zone}
		for _, s := range resolvSearch {
			if s != zone && !strings.HasSuffix(s, "."+zone) {
				search = append(search, s)
			}
		}
	default:
		search = resolvSearch
	}
	if ns == "" {
		for _, s := range search {
			if rest, ok := strings.CutSuffix(s, ".svc."+zone); ok && !strings.Contains(rest, ".") && rest != "" {
				return rest, search
			}
		}
	}
	return ns, search
}

// IsSelf reports whether upstream is one of the listen addresses, so that forwarding to it
// would loop back into meshdns (a VM whose resolv.conf names the local meshdns). A listen
// address on all interfaces (":53", "0.0.0.0:53") covers every address isLocal accepts.
func IsSelf(upstream netip.AddrPort, listen []string, isLocal func(netip.Addr) bool) bool {
	for _, l := range listen {
		host, port, err := net.SplitHostPort(l)
		if err != nil || port != strconv.Itoa(int(upstream.Port())) {
			continue
		}
		ip, err := netip.ParseAddr(host)
		switch {
		case host == "" || (err == nil && ip.IsUnspecified()):
			if isLocal(upstream.Addr()) {
				return true
			}
		case host == "localhost" && upstream.Addr().IsLoopback():
			return true
		case err == nil && ip.Unmap() == upstream.Addr().Unmap():
			return true
		}
	}
	return false
}
