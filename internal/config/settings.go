package config

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/server"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
)

// Settings is a validated Config, each value parsed into the type its user takes. Only
// Validate makes one; the daemon reads nothing else.
type Settings struct {
	Registry               string
	RegistryFollowSymlinks bool
	Kubeconfig             string
	// InCluster: meshdns runs in a pod whose service account reaches the API server (used
	// when there is no Kubeconfig).
	InCluster bool
	// NodeAgent and NodeName: see Config.
	NodeAgent bool
	NodeName  string
	// Controller, ControllerCA and TokenFile: see Config.
	Controller   []string
	ControllerCA string
	TokenFile    string
	Namespaces   []string
	WatchPods    bool
	KubeAPIQPS   float64
	KubeAPIBurst int
	LeaderElect  bool
	// LeaseNamespace holds the VIP writer's Lease: --leader-elect-namespace, else the pod's
	// namespace, else DefaultLeaseNamespace.
	LeaseNamespace string
	LeaseDuration  time.Duration
	// Listen are the DNS addresses; an unspecified address (from ":53" as well) listens on
	// every address of both families.
	Listen                     []netip.AddrPort
	Admin                      netip.AddrPort // the zero AddrPort: no admin endpoint
	ResolvConf                 string
	Upstreams                  []netip.AddrPort // empty: the nameservers of ResolvConf
	ClusterDomain              dnsname.FQDN
	Namespace                  string
	Search                     []dnsname.FQDN
	TTL                        time.Duration
	ForwardUnknownClusterNames bool
	LogLevel                   slog.Level
	LogJSON                    bool
	LogQueries                 bool
	CacheSize                  int // 0: no cache
	CacheMaxBytes              int // estimated heap of the cache
	CacheMinTTL                time.Duration
	CacheMaxTTL                time.Duration
	ServeStale                 time.Duration
	UpstreamPolicy             upstream.Policy
	StateDir                   string
	VIPv4, VIPv6               netip.Prefix // the zero Prefix turns a family off
	VIPQuarantine              time.Duration
	// VIPForward are the loopback addresses of the VIP forwarder, one per VIP family in use;
	// nil without --forward-vips.
	VIPForward []netip.AddrPort
	// VIPNAT: the forwarder's kernel path (--vip-nat).
	VIPNAT bool

	ChaosVersion, ChaosID string // empty: REFUSED
	MaxUDPSize            int
	// AllowClients are the client networks answered; nil answers every client (every listen
	// address is loopback, so only this host reaches them, and --allow-clients is not given).
	AllowClients []netip.Prefix
	// ReusePort: see Config.
	ReusePort bool
}

// APIAccess reports whether meshdns reaches the API server: --kubeconfig, or a pod's service
// account.
func (s *Settings) APIAccess() bool { return s.Kubeconfig != "" || s.InCluster }

// Kubernetes reports whether the Kubernetes source is on: API access, unless a controller
// watches the API server instead (a node agent of a controller reads only its node's pods).
func (s *Settings) Kubernetes() bool { return s.APIAccess() && len(s.Controller) == 0 }

// namespaceName is a Kubernetes namespace name: an RFC 1123 label.
var namespaceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// logLevels are the values of --log-level.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// Validate checks c and returns its Settings; pod is what DetectPod found. Errors name the
// flag at fault. It reads no files and no environment.
func (c Config) Validate(pod Pod) (Settings, error) {
	s := Settings{
		Registry: c.Registry, RegistryFollowSymlinks: c.RegistryFollowSymlinks, Kubeconfig: c.Kubeconfig, InCluster: pod.InCluster,
		Controller: c.Controller, ControllerCA: c.ControllerCA, TokenFile: c.TokenFile,
		NodeAgent: c.NodeAgent, NodeName: cmp.Or(c.NodeName, pod.NodeName),
		Namespaces: c.Namespaces, WatchPods: c.WatchPods, KubeAPIQPS: c.KubeAPIQPS,
		KubeAPIBurst: c.KubeAPIBurst, LeaderElect: c.LeaderElect, LeaseDuration: c.LeaderElectLeaseDuration,
		ResolvConf: c.ResolvConf, Namespace: c.Namespace, TTL: c.TTL,
		ForwardUnknownClusterNames: c.ForwardUnknownClusterNames, LogJSON: c.LogFormat == "json",
		LogQueries: c.LogQueries, CacheSize: c.CacheSize, CacheMinTTL: c.CacheMinTTL,
		CacheMaxTTL: c.CacheMaxTTL, ServeStale: c.ServeStale, StateDir: c.StateDir,
		VIPQuarantine: c.VIPQuarantine, ChaosVersion: c.ChaosVersion, ChaosID: c.ChaosID, MaxUDPSize: c.MaxUDPSize,
		ReusePort: c.ReusePort,
	}
	if c.Registry == "" && !s.Kubernetes() && len(c.Controller) == 0 {
		return Settings{}, flagErr("registry", "required: the manifest directory to serve (or --kubeconfig, --controller, or run in a pod)")
	}
	s.LeaseNamespace = leaseNamespace(c.LeaderElectNamespace, pod)
	for _, parse := range []func(*Settings) error{c.checkKube, c.checkController, c.checkNodeAgent, c.parseAddrs, c.parseClients, c.parseUpstream, c.parseVIPs, c.parseNames, c.checkChaos} {
		if err := parse(&s); err != nil {
			return Settings{}, err
		}
	}
	return s, nil
}

func (c Config) checkKube(s *Settings) error {
	for _, ns := range c.Namespaces {
		if !namespaceName.MatchString(ns) {
			return flagErr("namespaces", "%q is not a namespace name (lowercase letters, digits and '-', at most 63)", ns)
		}
	}
	switch {
	case len(c.Namespaces) > 0 && !s.Kubernetes():
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

func (c Config) checkController(*Settings) error {
	for _, a := range c.Controller {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return flagErr("controller", "%q: want host:port", a)
		}
	}
	switch {
	case len(c.Controller) == 0 && c.ControllerCA != "":
		return flagErr("controller-ca", "needs --controller")
	case len(c.Controller) == 0 && c.TokenFile != "":
		return flagErr("token-file", "needs --controller")
	case len(c.Controller) > 0 && c.Kubeconfig != "" && !c.NodeAgent:
		return flagErr("controller", "not with --kubeconfig: the controller watches the API server for its agents (a --node-agent reads its node's pods with it)")
	case c.TokenFile != "" && c.ControllerCA == "":
		return flagErr("token-file", "needs --controller-ca: a token is only sent to a controller verified over TLS")
	}
	return nil
}

func (c Config) checkNodeAgent(s *Settings) error {
	switch {
	case c.NodeAgent && !s.APIAccess():
		return flagErr("node-agent", "needs --kubeconfig (or a pod's service account): the agent watches the pods of its node")
	case c.NodeAgent && s.NodeName == "":
		return flagErr("node-name", "required with --node-agent (or NODE_NAME, from the downward API's spec.nodeName)")
	case c.NodeName != "" && !c.NodeAgent:
		return flagErr("node-name", "needs --node-agent")
	case strings.ContainsAny(s.NodeName, "/, \t"):
		return flagErr("node-name", "%q is not a node name", s.NodeName)
	}
	return nil
}

// checkChaos accepts as CHAOS answers what one TXT string holds as sent: at most 255
// printable ASCII characters, no backslash (the record's text would take it as an escape).
func (c Config) checkChaos(*Settings) error {
	for flag, v := range map[string]string{"chaos-version": c.ChaosVersion, "chaos-id": c.ChaosID} {
		if len(v) > 255 {
			return flagErr(flag, "%d characters: at most 255", len(v))
		}
		for _, r := range v {
			if r < ' ' || r > '~' || r == '\\' {
				return flagErr(flag, "%q: only printable ASCII characters, no backslash", v)
			}
		}
	}
	return nil
}

func leaseNamespace(flag string, pod Pod) string {
	switch {
	case flag != "":
		return flag
	case pod.Namespace != "":
		return pod.Namespace
	}
	return DefaultLeaseNamespace
}

func (c Config) parseAddrs(s *Settings) error {
	s.Listen = []netip.AddrPort{DefaultListen}
	if len(c.Listen) > 0 {
		s.Listen = make([]netip.AddrPort, len(c.Listen))
	}
	for i, l := range c.Listen {
		ap, err := parseListen(l)
		if err != nil {
			return flagErr("listen", "%q: %v", l, err)
		}
		s.Listen[i] = ap
	}
	if c.Admin != "" {
		ap, err := parseListen(c.Admin)
		if err != nil {
			return flagErr("admin", "%q: %v", c.Admin, err)
		}
		s.Admin = ap
	}
	for _, u := range c.Upstreams {
		ap, err := parseUpstream(u)
		if err != nil {
			return flagErr("upstream", "%q: %v", u, err)
		}
		s.Upstreams = append(s.Upstreams, ap)
	}
	return nil
}

// parseClients checks --max-udp-size and parses --allow-clients (after parseAddrs: the
// default depends on the listen addresses).
func (c Config) parseClients(s *Settings) error {
	if c.MaxUDPSize < dns.MinMsgSize || c.MaxUDPSize > server.MaxUDPSizeLimit {
		return flagErr("max-udp-size", "%d: must be between %d and %d", c.MaxUDPSize, dns.MinMsgSize, server.MaxUDPSizeLimit)
	}
	nets := c.AllowClients
	if len(nets) == 0 {
		if allLoopback(s.Listen) {
			return nil
		}
		nets = DefaultAllowClients
	}
	for _, n := range nets {
		p, err := parseClientNet(n)
		if err != nil {
			return flagErr("allow-clients", "%q: %v", n, err)
		}
		s.AllowClients = append(s.AllowClients, p)
	}
	return nil
}

// parseClientNet parses a CIDR, or an address standing for itself alone.
func parseClientNet(s string) (netip.Prefix, error) {
	if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
		return netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not a CIDR or IP address")
	}
	if p.Addr().Is4In6() {
		// Clients are compared unmapped; a mapped prefix would match none of them.
		return netip.Prefix{}, errors.New("an IPv4-mapped prefix: give the IPv4 CIDR")
	}
	return p.Masked(), nil
}

// allLoopback reports whether only this host can reach the listen addresses.
func allLoopback(listen []netip.AddrPort) bool {
	for _, l := range listen {
		if !l.Addr().IsLoopback() {
			return false
		}
	}
	return true
}

// parseListen parses a listen address "host:port". The host is an IP address, "localhost"
// (the IPv4 loopback address, which Go listens on for it) or empty: every address, spelled
// 0.0.0.0, on which Go listens for both families as it does for an empty host.
func parseListen(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	var ip netip.Addr
	switch host {
	case "":
		ip = netip.IPv4Unspecified()
	case "localhost":
		ip = DefaultListen.Addr()
	default:
		if ip, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, fmt.Errorf("host %q is not an IP address", host)
		}
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

// parseUpstream parses "IP" or "IP:port" (port 53 by default; IPv6 with a port in brackets).
func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ip, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, errors.New("want IP or IP:port")
	}
	return netip.AddrPortFrom(ip, 53), nil
}

func (c Config) parseUpstream(s *Settings) error {
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
	n, err := parseBytes(c.CacheMaxBytes)
	switch {
	case err != nil:
		return flagErr("cache-max-bytes", "%q: %v", c.CacheMaxBytes, err)
	case n < MinCacheMaxBytes:
		return flagErr("cache-max-bytes", "%s: must be at least %s (--cache-size 0 turns the cache off)",
			c.CacheMaxBytes, formatBytes(MinCacheMaxBytes))
	}
	p, err := upstream.ParsePolicy(c.UpstreamPolicy)
	if err != nil {
		return flagErr("upstream-policy", "%v", err)
	}
	s.CacheMaxBytes, s.UpstreamPolicy = n, p
	return nil
}

func (c Config) parseVIPs(s *Settings) error {
	var err error
	if s.VIPv4, err = ParseVIPPool(vip.IPv4, c.VIPCIDR); err != nil {
		return flagErr("vip-cidr", "%v", err)
	}
	if s.VIPv6, err = ParseVIPPool(vip.IPv6, c.VIPCIDR6); err != nil {
		return flagErr("vip-cidr6", "%v", err)
	}
	if c.VIPQuarantine <= 0 {
		// Handing a freed VIP to another host at once is the bug quarantine exists to prevent.
		return flagErr("vip-quarantine", "%s: must be positive", c.VIPQuarantine)
	}
	return c.parseVIPForward(s)
}

// parseVIPForward sets where the VIP forwarder listens: nat REDIRECT of a locally made
// connection delivers it to the loopback address of its family.
func (c Config) parseVIPForward(s *Settings) error {
	if c.VIPForwardPort < 0 || c.VIPForwardPort > 65535 {
		return flagErr("vip-forward-port", "%d: not a port", c.VIPForwardPort)
	}
	if !c.ForwardVIPs {
		if c.VIPNAT {
			return flagErr("vip-nat", "needs --forward-vips: the forwarder makes the kernel path's entries")
		}
		return nil
	}
	s.VIPNAT = c.VIPNAT
	port := uint16(c.VIPForwardPort)
	if s.VIPv4.IsValid() {
		s.VIPForward = append(s.VIPForward, netip.AddrPortFrom(DefaultListen.Addr(), port))
	}
	if s.VIPv6.IsValid() {
		s.VIPForward = append(s.VIPForward, netip.AddrPortFrom(netip.IPv6Loopback(), port))
	}
	if len(s.VIPForward) == 0 {
		return flagErr("forward-vips", "no VIP pool to forward (--vip-cidr and --vip-cidr6 are empty)")
	}
	return nil
}

// ParseVIPPool parses a VIP pool flag, of serve and of capture --vips: "" turns the family
// off (the zero Prefix). vip decides what makes a pool usable.
func ParseVIPPool(f vip.Family, s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
	}
	if err := vip.CheckPool(f, p); err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

func (c Config) parseNames(s *Settings) error {
	var err error
	if s.ClusterDomain, err = parseDomain(c.ClusterDomain); err != nil {
		return flagErr("cluster-domain", "%q is not a domain name: %v", c.ClusterDomain, err)
	}
	for _, d := range c.Search {
		f, err := parseDomain(d)
		if err != nil {
			return flagErr("search", "%q is not a domain name: %v", d, err)
		}
		s.Search = append(s.Search, f)
	}
	if c.Namespace != "" && !namespaceName.MatchString(c.Namespace) {
		return flagErr("namespace", "%q is not a namespace name (lowercase letters, digits and '-', at most 63)", c.Namespace)
	}
	if c.TTL < time.Second || c.TTL > 24*time.Hour {
		return flagErr("ttl", "%s: must be between 1s and 24h", c.TTL)
	}
	var ok bool
	if s.LogLevel, ok = logLevels[c.LogLevel]; !ok {
		return flagErr("log-level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return flagErr("log-format", "%q: want text or json", c.LogFormat)
	}
	return nil
}

// parseDomain parses a configured domain; the root is not one (it would hold every name).
func parseDomain(s string) (dnsname.FQDN, error) {
	f, err := dnsname.ToFQDN(s)
	if err == nil && f == dnsname.Root {
		err = errors.New("the root")
	}
	return f, err
}
