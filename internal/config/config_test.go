package config

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/server"
	"github.com/meshdns/meshdns/internal/upstream"
	"github.com/meshdns/meshdns/internal/vip"
)

func TestValidate(t *testing.T) {
	inPod := Pod{InCluster: true, Namespace: "mesh"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		pod  Pod
		flag string // "" when valid
	}{
		{"defaults with a registry", func(c *Config) {}, Pod{}, ""},
		{"no registry", func(c *Config) { c.Registry = "" }, Pod{}, "registry"},
		{"no registry in a pod", func(c *Config) { c.Registry = "" }, inPod, ""},
		{"listen without port", func(c *Config) { c.Listen = []string{"127.0.0.1"} }, Pod{}, "listen"},
		{"listen with a name", func(c *Config) { c.Listen = []string{"dns.example:53"} }, Pod{}, "listen"},
		{"listen port too big", func(c *Config) { c.Listen = []string{"127.0.0.1:70000"} }, Pod{}, "listen"},
		{"listen on all addresses", func(c *Config) { c.Listen = []string{":53", "[::1]:53"} }, Pod{}, ""},
		{"max UDP size below 512", func(c *Config) { c.MaxUDPSize = 511 }, Pod{}, "max-udp-size"},
		{"max UDP size above 4096", func(c *Config) { c.MaxUDPSize = 4097 }, Pod{}, "max-udp-size"},
		{"max UDP size 4096", func(c *Config) { c.MaxUDPSize = 4096 }, Pod{}, ""},
		{"allow clients garbage", func(c *Config) { c.AllowClients = []string{"10.0.0.0/8", "lan"} }, Pod{}, "allow-clients"},
		{"allow clients mapped", func(c *Config) { c.AllowClients = []string{"::ffff:10.0.0.0/104"} }, Pod{}, "allow-clients"},
		{"admin garbage", func(c *Config) { c.Admin = "nope" }, Pod{}, "admin"},
		{"admin off", func(c *Config) { c.Admin = "" }, Pod{}, ""},
		{"upstream name", func(c *Config) { c.Upstreams = []string{"dns.google"} }, Pod{}, "upstream"},
		{"upstream forms", func(c *Config) { c.Upstreams = []string{"10.0.0.1", "10.0.0.1:5353", "[fd00::1]:53", "fd00::1"} }, Pod{}, ""},
		{"cluster domain", func(c *Config) { c.ClusterDomain = "a..b" }, Pod{}, "cluster-domain"},
		{"cluster domain root", func(c *Config) { c.ClusterDomain = "." }, Pod{}, "cluster-domain"},
		{"search", func(c *Config) { c.Search = []string{"ok.example", "bad..example"} }, Pod{}, "search"},
		{"namespace with a dot", func(c *Config) { c.Namespace = "a.b" }, Pod{}, "namespace"},
		{"namespace in upper case", func(c *Config) { c.Namespace = "Bookinfo" }, Pod{}, "namespace"},
		{"namespace with an underscore", func(c *Config) { c.Namespace = "foo_bar" }, Pod{}, "namespace"},
		{"namespace ok", func(c *Config) { c.Namespace = "team-1" }, Pod{}, ""},
		{"ttl zero", func(c *Config) { c.TTL = 0 }, Pod{}, "ttl"},
		{"ttl huge", func(c *Config) { c.TTL = 48 * time.Hour }, Pod{}, "ttl"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, Pod{}, "log-level"},
		{"log level in slog's spelling", func(c *Config) { c.LogLevel = "INFO" }, Pod{}, "log-level"},
		{"cache size negative", func(c *Config) { c.CacheSize = -1 }, Pod{}, "cache-size"},
		{"cache off", func(c *Config) { c.CacheSize = 0 }, Pod{}, ""},
		{"cache bytes in bytes", func(c *Config) { c.CacheMaxBytes = "1048576" }, Pod{}, ""},
		{"cache bytes in GiB", func(c *Config) { c.CacheMaxBytes = "2GiB" }, Pod{}, ""},
		{"cache bytes too few", func(c *Config) { c.CacheMaxBytes = "1023KiB" }, Pod{}, "cache-max-bytes"},
		{"cache bytes zero", func(c *Config) { c.CacheMaxBytes = "0" }, Pod{}, "cache-max-bytes"},
		{"cache bytes negative", func(c *Config) { c.CacheMaxBytes = "-64MiB" }, Pod{}, "cache-max-bytes"},
		{"cache bytes SI unit", func(c *Config) { c.CacheMaxBytes = "64MB" }, Pod{}, "cache-max-bytes"},
		{"cache bytes fraction", func(c *Config) { c.CacheMaxBytes = "1.5GiB" }, Pod{}, "cache-max-bytes"},
		{"cache bytes overflow", func(c *Config) { c.CacheMaxBytes = "9223372036854775807GiB" }, Pod{}, "cache-max-bytes"},
		{"cache min above max", func(c *Config) { c.CacheMinTTL = 2 * time.Hour }, Pod{}, "cache-min-ttl"},
		{"cache max zero", func(c *Config) { c.CacheMaxTTL = 0 }, Pod{}, "cache-max-ttl"},
		{"serve stale negative", func(c *Config) { c.ServeStale = -time.Second }, Pod{}, "serve-stale"},
		{"serve stale off", func(c *Config) { c.ServeStale = 0 }, Pod{}, ""},
		{"chaos version", func(c *Config) { c.ChaosVersion = "meshdns 1.2 (node-a)" }, Pod{}, ""},
		{"chaos version with a backslash", func(c *Config) { c.ChaosVersion = `a\b` }, Pod{}, "chaos-version"},
		{"chaos id too long", func(c *Config) { c.ChaosID = strings.Repeat("a", 256) }, Pod{}, "chaos-id"},
		{"upstream policy", func(c *Config) { c.UpstreamPolicy = "fastest" }, Pod{}, "upstream-policy"},
		{"upstream policy parallel", func(c *Config) { c.UpstreamPolicy = "parallel" }, Pod{}, ""},
		{"vip pool garbage", func(c *Config) { c.VIPCIDR = "240.240.0.0" }, Pod{}, "vip-cidr"},
		{"vip pool of the wrong family", func(c *Config) { c.VIPCIDR = "2001:2::/48" }, Pod{}, "vip-cidr"},
		{"vip6 pool of the wrong family", func(c *Config) { c.VIPCIDR6 = "10.0.0.0/8" }, Pod{}, "vip-cidr6"},
		{"vip6 pool IPv4-mapped", func(c *Config) { c.VIPCIDR6 = "::ffff:10.0.0.0/104" }, Pod{}, "vip-cidr6"},
		{"vip pool too small", func(c *Config) { c.VIPCIDR = "10.0.0.0/31" }, Pod{}, "vip-cidr"},
		{"vip6 pool too small", func(c *Config) { c.VIPCIDR6 = "fd00::/127" }, Pod{}, "vip-cidr6"},
		{"vip pools off", func(c *Config) { c.VIPCIDR, c.VIPCIDR6 = "", "" }, Pod{}, ""},
		{"vip quarantine negative", func(c *Config) { c.VIPQuarantine = -time.Second }, Pod{}, "vip-quarantine"},
		{"vip quarantine zero", func(c *Config) { c.VIPQuarantine = 0 }, Pod{}, "vip-quarantine"},
		{"forward vips", func(c *Config) { c.ForwardVIPs = true }, Pod{}, ""},
		{"forward vips without pools", func(c *Config) { c.ForwardVIPs, c.VIPCIDR, c.VIPCIDR6 = true, "", "" }, Pod{}, "forward-vips"},
		{"vip nat", func(c *Config) { c.ForwardVIPs, c.VIPNAT = true, true }, Pod{}, ""},
		{"vip nat without the forwarder", func(c *Config) { c.VIPNAT = true }, Pod{}, "vip-nat"},
		{"vip forward port too big", func(c *Config) { c.VIPForwardPort = 65536 }, Pod{}, "vip-forward-port"},
		{"vip forward port negative", func(c *Config) { c.VIPForwardPort = -1 }, Pod{}, "vip-forward-port"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, Pod{}, "log-format"},
		{"kubeconfig alone", func(c *Config) { c.Registry, c.Kubeconfig = "", "/k" }, Pod{}, ""},
		{"namespaces without kubernetes", func(c *Config) { c.Namespaces = []string{"a"} }, Pod{}, "namespaces"},
		{"namespaces in a pod", func(c *Config) { c.Namespaces = []string{"a"} }, inPod, ""},
		{"namespaces", func(c *Config) { c.Kubeconfig, c.Namespaces = "/k", []string{"a", "team-1"} }, Pod{}, ""},
		{"namespaces bad name", func(c *Config) { c.Kubeconfig, c.Namespaces = "/k", []string{"a,b"} }, Pod{}, "namespaces"},
		{"kube api qps zero", func(c *Config) { c.Kubeconfig, c.KubeAPIQPS = "/k", 0 }, Pod{}, "kube-api-qps"},
		{"kube api burst zero", func(c *Config) { c.Kubeconfig, c.KubeAPIBurst = "/k", 0 }, Pod{}, "kube-api-burst"},
		{"lease duration short", func(c *Config) { c.LeaderElectLeaseDuration = time.Second / 2 }, Pod{}, "leader-elect-lease-duration"},
		{"lease namespace bad name", func(c *Config) { c.LeaderElectNamespace = "A" }, Pod{}, "leader-elect-namespace"},
		{"node agent", func(c *Config) { c.Registry, c.Kubeconfig, c.NodeAgent, c.NodeName = "", "/k", true, "n1" }, Pod{}, ""},
		{"node agent named by the pod", func(c *Config) { c.Registry, c.NodeAgent = "", true }, Pod{InCluster: true, NodeName: "n1"}, ""},
		{"node agent without a node", func(c *Config) { c.Kubeconfig, c.NodeAgent = "/k", true }, Pod{}, "node-name"},
		{"node agent without kubernetes", func(c *Config) { c.NodeAgent, c.NodeName = true, "n1" }, Pod{}, "node-agent"},
		{"node agent of a controller", func(c *Config) {
			c.Registry, c.Kubeconfig, c.NodeAgent, c.NodeName, c.Controller = "", "/k", true, "n1", []string{"ctl:1"}
		}, Pod{}, ""},
		{"node agent of a controller in a pod", func(c *Config) { c.Registry, c.NodeAgent, c.Controller = "", true, []string{"ctl:1"} },
			Pod{InCluster: true, NodeName: "n1"}, ""},
		{"node name alone", func(c *Config) { c.NodeName = "n1" }, Pod{}, "node-name"},
		{"node name bad", func(c *Config) { c.Kubeconfig, c.NodeAgent, c.NodeName = "/k", true, "a/b" }, Pod{}, "node-name"},
		{"controller alone", func(c *Config) { c.Registry, c.Controller = "", []string{"ctl:15012"} }, Pod{}, ""},
		{"controller with token", func(c *Config) {
			c.Registry, c.Controller, c.ControllerCA, c.TokenFile = "", []string{"ctl:15012", "[::1]:15012"}, "/ca", "/t"
		}, Pod{}, ""},
		{"controller without port", func(c *Config) { c.Controller = []string{"ctl"} }, Pod{}, "controller"},
		{"controller with kubeconfig", func(c *Config) { c.Controller, c.Kubeconfig = []string{"ctl:1"}, "/k" }, Pod{}, "controller"},
		{"token without ca", func(c *Config) { c.Controller, c.TokenFile = []string{"ctl:1"}, "/t" }, Pod{}, "token-file"},
		{"token without controller", func(c *Config) { c.TokenFile = "/t" }, Pod{}, "token-file"},
		{"ca without controller", func(c *Config) { c.ControllerCA = "/ca" }, Pod{}, "controller-ca"},
		{"namespaces of a controller's agent", func(c *Config) { c.Controller, c.Namespaces = []string{"ctl:1"}, []string{"a"} }, inPod, "namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Registry = "examples/registry"
			tc.edit(&c)
			_, err := c.Validate(tc.pod)
			var fe *FlagError
			switch {
			case tc.flag == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.flag != "" && (!errors.As(err, &fe) || fe.Flag != tc.flag):
				t.Errorf("err = %v, want one naming --%s", err, tc.flag)
			case tc.flag != "" && !strings.HasPrefix(err.Error(), "--"+tc.flag+": "):
				t.Errorf("err = %q, want it to start with the flag", err)
			}
		})
	}
}

// TestAnAgentInAPodDoesNotWatchTheAPIServer: with --controller, the pod's service account
// is for the token only.
func TestAnAgentInAPodDoesNotWatchTheAPIServer(t *testing.T) {
	c := Default()
	c.Controller = []string{"meshdns-controller.meshdns-system:15012"}
	s, err := c.Validate(Pod{InCluster: true, Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kubernetes() {
		t.Error("an agent in a pod would watch the API server itself")
	}
}

// TestValidateSettings checks the typed values Validate hands the daemon, defaults first.
func TestValidateSettings(t *testing.T) {
	c := Default()
	c.Registry = "x"
	s, err := c.Validate(Pod{})
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		Registry: "x", WatchPods: true, KubeAPIQPS: DefaultKubeAPIQPS, KubeAPIBurst: DefaultKubeAPIBurst,
		LeaderElect: true, LeaseNamespace: DefaultLeaseNamespace, LeaseDuration: DefaultLeaseDuration,
		Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:15053")},
		Admin:  netip.MustParseAddrPort(DefaultAdmin), ResolvConf: DefaultResolvConf,
		ClusterDomain: "cluster.local.", TTL: DefaultTTL, LogLevel: slog.LevelInfo,
		CacheSize: cache.DefaultSize, CacheMaxBytes: cache.DefaultMaxBytes, CacheMaxTTL: cache.DefaultMaxTTL,
		ServeStale: DefaultServeStale, UpstreamPolicy: upstream.Sequential,
		VIPv4: netip.MustParsePrefix(DefaultVIPCIDR), VIPv6: netip.MustParsePrefix(DefaultVIPCIDR6),
		VIPQuarantine: vip.DefaultQuarantine, MaxUDPSize: server.DefaultMaxUDPSize,
		ReusePort: true,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", s, want)
	}

	c.Listen = []string{":53", "localhost:5353", "[::1]:53", "[::]:53"}
	c.Admin, c.Upstreams = "", []string{"10.0.0.1", "[fd00::1]:5353", "fd00::2"}
	c.ClusterDomain, c.Search = "Corp.Example.", []string{"Team.svc.Corp.Example", "svc.corp.example."}
	c.LogLevel, c.LogFormat, c.UpstreamPolicy = "debug", "json", "parallel"
	c.VIPCIDR, c.VIPCIDR6 = "10.1.2.3/16", ""
	c.ForwardVIPs, c.VIPForwardPort = true, 3306
	if s, err = c.Validate(Pod{}); err != nil {
		t.Fatal(err)
	}
	got := []any{s.Listen, s.Admin, s.Upstreams, s.ClusterDomain, s.Search, s.LogLevel, s.LogJSON,
		s.UpstreamPolicy, s.VIPv4, s.VIPv6, s.VIPForward}
	wantTyped := []any{
		[]netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:53"), netip.MustParseAddrPort("127.0.0.1:5353"),
			netip.MustParseAddrPort("[::1]:53"), netip.MustParseAddrPort("[::]:53")},
		netip.AddrPort{},
		[]netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:53"), netip.MustParseAddrPort("[fd00::1]:5353"),
			netip.MustParseAddrPort("[fd00::2]:53")},
		dnsname.FQDN("corp.example."), []dnsname.FQDN{"team.svc.corp.example.", "svc.corp.example."},
		slog.LevelDebug, true, upstream.Parallel, netip.MustParsePrefix("10.1.0.0/16"), netip.Prefix{},
		[]netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:3306")}, // the IPv6 pool is off
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], wantTyped[i]) {
			t.Errorf("value %d = %v, want %v", i, got[i], wantTyped[i])
		}
	}
}

// TestValidateVIPErrorsNameTheFlag: vip names the pool, Validate adds the flag.
func TestValidateVIPErrorsNameTheFlag(t *testing.T) {
	c := Default()
	c.Registry, c.VIPCIDR6 = "x", "fd00::/127"
	_, err := c.Validate(Pod{})
	if want := "--vip-cidr6: pool fd00::/127: too small"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want one starting %q", err, want)
	}
}

func TestLeaseNamespace(t *testing.T) {
	for _, tc := range []struct {
		name, flag string
		pod        Pod
		want       string
	}{
		{"flag first", "team", Pod{Namespace: "mesh"}, "team"},
		{"then the pod's", "", Pod{InCluster: true, Namespace: "mesh"}, "mesh"},
		{"outside a pod", "", Pod{}, DefaultLeaseNamespace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Registry, c.LeaderElectNamespace = "x", tc.flag
			s, err := c.Validate(tc.pod)
			if err != nil || s.LeaseNamespace != tc.want {
				t.Errorf("lease namespace %q (%v), want %q", s.LeaseNamespace, err, tc.want)
			}
		})
	}
}

func TestDetectPod(t *testing.T) {
	withToken, withNamespace, empty := t.TempDir(), t.TempDir(), t.TempDir()
	for path, data := range map[string]string{
		filepath.Join(withToken, "token"):         "t",
		filepath.Join(withToken, "namespace"):     "mesh\n",
		filepath.Join(withNamespace, "namespace"): "other",
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	podEnv := map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		dir  string
		want Pod
	}{
		{"in a pod", podEnv, withToken, Pod{InCluster: true, Namespace: "mesh"}},
		{"token but no API server", map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, withToken, Pod{Namespace: "mesh"}},
		{"API server but no token", podEnv, withNamespace, Pod{Namespace: "other"}},
		{"outside a pod", nil, empty, Pod{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			if got := detectPod(getenv, tc.dir); got != tc.want {
				t.Errorf("detectPod = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestClientContext(t *testing.T) {
	podSearch := []string{"prod.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "corp.example."}
	for _, tc := range []struct {
		name       string
		ns         string
		search     []string
		resolv     []string
		wantNS     string
		wantSearch []string
	}{
		{"from resolv.conf", "", nil, podSearch, "prod", podSearch},
		{"namespace flag implies the pod search list, node domains kept", "dev", nil, podSearch, "dev",
			[]string{"dev.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "corp.example."}},
		{"search flag wins, namespace from it", "", []string{"Team.svc.cluster.local", "svc.cluster.local"}, podSearch, "team",
			[]string{"team.svc.cluster.local.", "svc.cluster.local."}},
		{"VM search list: no namespace", "", nil, []string{"corp.example."}, "", []string{"corp.example."}},
		{"nothing", "", nil, nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Registry, c.Namespace, c.Search = "x", tc.ns, tc.search
			s, err := c.Validate(Pod{})
			if err != nil {
				t.Fatal(err)
			}
			ns, search := s.ClientContext(tc.resolv)
			if ns != tc.wantNS || !slices.Equal(search, tc.wantSearch) {
				t.Errorf("got %q %v, want %q %v", ns, search, tc.wantNS, tc.wantSearch)
			}
		})
	}
}

func TestIsSelf(t *testing.T) {
	local := func(ip netip.Addr) bool {
		return ip.IsLoopback() || ip == netip.MustParseAddr("192.0.2.7")
	}
	for _, tc := range []struct {
		upstream string
		listen   []string
		self     bool
	}{
		{"127.0.0.53:53", []string{"127.0.0.53:53"}, true},
		{"127.0.0.53:53", []string{"127.0.0.1:15053", "127.0.0.53:53"}, true},
		{"127.0.0.53:53", []string{"127.0.0.1:53"}, false},
		{"127.0.0.1:53", []string{"127.0.0.1:15053"}, false},
		{"192.0.2.7:53", []string{":53"}, true},
		{"192.0.2.7:53", []string{"0.0.0.0:53"}, true},
		{"[::1]:53", []string{"[::]:53"}, true},
		{"192.0.2.8:53", []string{":53"}, false},
		{"127.0.0.1:53", []string{"localhost:53"}, true},
		{"[::ffff:127.0.0.1]:53", []string{"127.0.0.1:53"}, true},
	} {
		up := netip.MustParseAddrPort(tc.upstream)
		var listen []netip.AddrPort
		for _, l := range tc.listen {
			ap, err := parseListen(l)
			if err != nil {
				t.Fatal(err)
			}
			listen = append(listen, ap)
		}
		if got := IsSelf(up, listen, local); got != tc.self {
			t.Errorf("IsSelf(%s, %v) = %v, want %v", tc.upstream, tc.listen, got, tc.self)
		}
	}
}

// TestAllowClients: without the flag, loopback listen addresses answer everyone (only this
// host reaches them) and any other listen address only the default networks; the flag's
// networks replace the default, an address standing for itself.
func TestAllowClients(t *testing.T) {
	var defaults []netip.Prefix
	for _, n := range DefaultAllowClients {
		defaults = append(defaults, netip.MustParsePrefix(n))
	}
	for _, tc := range []struct {
		name   string
		listen []string
		allow  []string
		want   []netip.Prefix
	}{
		{"loopback listen", []string{"127.0.0.1:53", "[::1]:53"}, nil, nil},
		{"default listen", nil, nil, nil},
		{"all addresses", []string{":53"}, nil, defaults},
		{"one loopback, one not", []string{"127.0.0.1:53", "10.0.0.5:53"}, nil, defaults},
		{"given", []string{":53"}, []string{"10.1.2.3/8", "192.0.2.7", "2001:db8::/32"},
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
				netip.MustParsePrefix("2001:db8::/32")}},
		{"given with loopback listen", nil, []string{"127.0.0.2"}, []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Registry, c.Listen, c.AllowClients = "x", tc.listen, tc.allow
			s, err := c.Validate(Pod{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.AllowClients, tc.want) {
				t.Errorf("AllowClients %v, want %v", s.AllowClients, tc.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		text string // formatBytes(want)
	}{
		{"64MiB", 64 << 20, "64MiB"},
		{"1048576", 1 << 20, "1MiB"},
		{"1536KiB", 1536 << 10, "1536KiB"},
		{"3GiB", 3 << 30, "3GiB"},
		{"1000B", 1000, "1000"},
		{"1025", 1025, "1025"},
	} {
		got, err := parseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if s := formatBytes(tc.want); s != tc.text {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.want, s, tc.text)
		}
	}
}
