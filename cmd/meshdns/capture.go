package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/meshdns/meshdns/internal/capture"
	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/resolvconf"
	"github.com/meshdns/meshdns/internal/vip"
)

const captureUsage = "want print, install, uninstall or verify"

type captureFlags struct {
	port, uid, gid uint
	resolvConf     string
	all            bool
	backend        string
	// vips redirects TCP to the VIP pools to the VIP forwarder (serve --forward-vips).
	vips              bool
	vipCIDR, vipCIDR6 string
	vipForwardPort    uint
	// node builds a node agent's rules (docs/capture.md, Node) for the addresses of
	// --cluster-dns and --local-ip, comma-separated.
	node                bool
	clusterDNS, localIP string
}

func newCaptureFlags(action string) (*flag.FlagSet, *captureFlags) {
	c := &captureFlags{}
	fs := flag.NewFlagSet("capture "+action, flag.ContinueOnError)
	fs.UintVar(&c.port, "proxy-port", config.DefaultProxyPort, "`port` meshdns listens on; DNS is redirected there")
	fs.UintVar(&c.uid, "proxy-uid", config.DefaultProxyID, "`uid` meshdns runs as; its own queries are not captured")
	fs.UintVar(&c.gid, "proxy-gid", config.DefaultProxyID, "`gid` meshdns runs as; its own queries are not captured")
	fs.StringVar(&c.resolvConf, "resolv-conf", config.DefaultResolvConf, "resolv.conf `file` whose nameservers are captured")
	fs.BoolVar(&c.all, "all", false, "capture all port-53 traffic, not only to the resolv.conf nameservers")
	fs.StringVar(&c.backend, "backend", "", "iptables, iptables-legacy or nftables (default: what the host uses)")
	fs.BoolVar(&c.vips, "vips", false, "also redirect TCP to the VIP pools to the VIP forwarder (serve --forward-vips)")
	fs.StringVar(&c.vipCIDR, "vip-cidr", config.DefaultVIPCIDR, "IPv4 VIP `pool` redirected with --vips (empty: none)")
	fs.StringVar(&c.vipCIDR6, "vip-cidr6", config.DefaultVIPCIDR6, "IPv6 VIP `pool` redirected with --vips (empty: none)")
	fs.UintVar(&c.vipForwardPort, "vip-forward-port", config.DefaultVIPForwardPort, "`port` of the VIP forwarder; VIP connections are redirected there")
	fs.BoolVar(&c.node, "node", false, "node agent rules: the pods' DNS to --cluster-dns reaches meshdns on this node while it listens there, the cluster DNS otherwise")
	fs.StringVar(&c.clusterDNS, "cluster-dns", "", "cluster DNS Service `IPs` (comma-separated, one per family) captured with --node")
	fs.StringVar(&c.localIP, "local-ip", joinAddrs(capture.DefaultLocalIPs), "more `IPs` (comma-separated; empty: none) put on lo for the node agent with --node")
	return fs, c
}

// captureCmd runs `meshdns capture ACTION`: bad flags exit 2, failures 1, a verify that finds
// the rules incomplete 1 with the difference on stdout.
func captureCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(stderr, "meshdns capture: %s\n", captureUsage)
		return exitUsage
	}
	action := args[0]
	switch action {
	case "print", "install", "uninstall", "verify":
	default:
		fmt.Fprintf(stderr, "meshdns capture: unknown action %q (%s)\n", action, captureUsage)
		return exitUsage
	}
	fs, c := newCaptureFlags(action)
	if code := parseFlags(fs, args[1:], stdout, stderr); code >= 0 {
		return code
	}
	backend, rules, err := c.parse()
	if err != nil {
		fmt.Fprintf(stderr, "meshdns capture %s: %s\n", action, oneLine(err.Error()))
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runCapture(ctx, action, backend, rules, stdout); err != nil {
		fmt.Fprintf(stderr, "meshdns capture %s: %s\n", action, oneLine(err.Error()))
		return 1
	}
	return 0
}

// parse returns the backend ("" to detect it) and the rules the flags ask for; errors name
// the flag.
func (c *captureFlags) parse() (capture.Backend, capture.Rules, error) {
	var backend capture.Backend
	if c.backend != "" {
		var err error
		if backend, err = capture.ParseBackend(c.backend); err != nil {
			return "", capture.Rules{}, fmt.Errorf("--backend: %w", err)
		}
	}
	rules, err := c.rules()
	return backend, rules, err
}

// rules builds the rules from the flags; errors name the flag.
func (c *captureFlags) rules() (capture.Rules, error) {
	if c.node {
		return c.nodeRules()
	}
	if c.clusterDNS != "" {
		return capture.Rules{}, errors.New("--cluster-dns: only with --node")
	}
	switch {
	case c.port == 0 || c.port > 65535:
		return capture.Rules{}, fmt.Errorf("--proxy-port %d: want 1 to 65535", c.port)
	case c.uid > 1<<32-1:
		return capture.Rules{}, fmt.Errorf("--proxy-uid %d: out of range", c.uid)
	case c.gid > 1<<32-1:
		return capture.Rules{}, fmt.Errorf("--proxy-gid %d: out of range", c.gid)
	}
	var nameservers []netip.Addr
	if !c.all {
		rc, err := resolvconf.ParseFile(c.resolvConf)
		if err != nil {
			return capture.Rules{}, fmt.Errorf("--resolv-conf: %w", err)
		}
		for _, ns := range rc.Nameservers {
			nameservers = append(nameservers, ns.Addr())
		}
	}
	spec := capture.Spec{ProxyPort: uint16(c.port), ProxyUID: uint32(c.uid),
		ProxyGID: uint32(c.gid), Nameservers: nameservers, All: c.all}
	if c.vips {
		pools, err := c.pools()
		if err != nil {
			return capture.Rules{}, err
		}
		spec.VIPPools, spec.VIPPort = pools, uint16(c.vipForwardPort)
	}
	return capture.Build(spec)
}

// nodeRules builds a node agent's rules from the flags; errors name the flag.
func (c *captureFlags) nodeRules() (capture.Rules, error) {
	switch {
	case c.all:
		return capture.Rules{}, errors.New("--all: not with --node, which captures the cluster DNS addresses only")
	case c.vips:
		return capture.Rules{}, errors.New("--vips: not with --node")
	}
	clusterDNS, err := parseAddrs(c.clusterDNS)
	if err != nil {
		return capture.Rules{}, fmt.Errorf("--cluster-dns: %w", err)
	}
	if len(clusterDNS) == 0 {
		return capture.Rules{}, errors.New("--cluster-dns: required with --node (the cluster DNS Service IPs)")
	}
	localIPs, err := parseAddrs(c.localIP)
	if err != nil {
		return capture.Rules{}, fmt.Errorf("--local-ip: %w", err)
	}
	r, err := capture.Build(capture.Spec{Node: true, ClusterDNS: clusterDNS, LocalIPs: localIPs})
	if err != nil {
		return capture.Rules{}, fmt.Errorf("--cluster-dns, --local-ip: %w", err)
	}
	return r, nil
}

// parseAddrs parses a comma-separated list of IP addresses; "" is none.
func parseAddrs(list string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: not an IP address", s)
		}
		out = append(out, a)
	}
	return out, nil
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// pools returns the VIP pools of --vips, parsed as serve parses them; errors name the flag.
func (c *captureFlags) pools() ([]netip.Prefix, error) {
	if c.vipForwardPort == 0 || c.vipForwardPort > 65535 {
		return nil, fmt.Errorf("--vip-forward-port %d: want 1 to 65535", c.vipForwardPort)
	}
	var pools []netip.Prefix
	for _, p := range []struct {
		flag, value string
		family      vip.Family
	}{{"vip-cidr", c.vipCIDR, vip.IPv4}, {"vip-cidr6", c.vipCIDR6, vip.IPv6}} {
		pool, err := config.ParseVIPPool(p.family, p.value)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", p.flag, err)
		}
		if pool.IsValid() {
			pools = append(pools, pool)
		}
	}
	if len(pools) == 0 {
		return nil, errors.New("--vips: no VIP pool (--vip-cidr and --vip-cidr6 are empty)")
	}
	return pools, nil
}

func runCapture(ctx context.Context, action string, backend capture.Backend, rules capture.Rules, stdout io.Writer) error {
	run := capture.ExecRunner
	if action != "print" {
		if err := capture.CheckPrivileges(); err != nil {
			return err
		}
	}
	b, err := chooseBackend(ctx, backend, run)
	if err != nil {
		return err
	}
	switch action {
	case "print":
		r, err := rules.Render(b)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, r.String())
	case "install":
		if err := capture.Install(ctx, run, b, rules); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "capture installed (%s)\n", b)
	case "uninstall":
		if err := capture.Uninstall(ctx, run, b, rules); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "capture removed (%s)\n", b)
	case "verify":
		diff, err := capture.Verify(ctx, run, b, rules)
		if err != nil {
			return err
		}
		if diff != "" {
			fmt.Fprint(stdout, diff)
			return fmt.Errorf("the %s rules differ from what install puts there (above)", b)
		}
		fmt.Fprintf(stdout, "capture complete (%s)\n", b)
	}
	return nil
}

// chooseBackend returns the backend of --backend, or the one the host uses without it.
func chooseBackend(ctx context.Context, backend capture.Backend, run capture.Runner) (capture.Backend, error) {
	if backend != "" {
		return backend, nil
	}
	return capture.Detect(ctx, run)
}
