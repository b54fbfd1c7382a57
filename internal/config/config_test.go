package config

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		flag string // "" when valid
	}{
		{"defaults with a registry", func(c *Config) {}, ""},
		{"no registry", func(c *Config) { c.Registry = "" }, "registry"},
		{"listen without port", func(c *Config) { c.Listen = []string{"127.0.0.1"} }, "listen"},
		{"listen with a name", func(c *Config) { c.Listen = []string{"dns.example:53"} }, "listen"},
		{"listen port too big", func(c *Config) { c.Listen = []string{"127.0.0.1:70000"} }, "listen"},
		{"listen on all addresses", func(c *Config) { c.Listen = []string{":53", "[::1]:53"} }, ""},
		{"admin garbage", func(c *Config) { c.Admin = "nope" }, "admin"},
		{"admin off", func(c *Config) { c.Admin = "" }, ""},
		{"upstream name", func(c *Config) { c.Upstreams = []string{"dns.google"} }, "upstream"},
		{"upstream forms", func(c *Config) { c.Upstreams = []string{"10.0.0.1", "10.0.0.1:5353", "[fd00::1]:53", "fd00::1"} }, ""},
		{"cluster domain", func(c *Config) { c.ClusterDomain = "a..b" }, "cluster-domain"},
		{"search", func(c *Config) { c.Search = []string{"ok.example", "bad..example"} }, "search"},
		{"namespace with a dot", func(c *Config) { c.Namespace = "a.b" }, "namespace"},
		{"namespace in upper case", func(c *Config) { c.Namespace = "Bookinfo" }, "namespace"},
		{"namespace with an underscore", func(c *Config) { c.Namespace = "foo_bar" }, "namespace"},
		{"namespace ok", func(c *Config) { c.Namespace = "team-1" }, ""},
		{"ttl zero", func(c *Config) { c.TTL = 0 }, "ttl"},
		{"ttl huge", func(c *Config) { c.TTL = 48 * time.Hour }, "ttl"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "log-level"},
		{"cache size negative", func(c *Config) { c.CacheSize = -1 }, "cache-size"},
		{"cache off", func(c *Config) { c.CacheSize = 0 }, ""},
		{"cache min above max", func(c *Config) { c.CacheMinTTL = 2 * time.Hour }, "cache-min-ttl"},
		{"cache max zero", func(c *Config) { c.CacheMaxTTL = 0 }, "cache-max-ttl"},
		{"serve stale negative", func(c *Config) { c.ServeStale = -time.Second }, "serve-stale"},
		{"serve stale off", func(c *Config) { c.ServeStale = 0 }, ""},
		{"upstream policy", func(c *Config) { c.UpstreamPolicy = "fastest" }, "upstream-policy"},
		{"upstream policy parallel", func(c *Config) { c.UpstreamPolicy = "parallel" }, ""},
		{"vip pool garbage", func(c *Config) { c.VIPCIDR = "240.240.0.0" }, "vip-cidr"},
		{"vip pool of the wrong family", func(c *Config) { c.VIPCIDR = "2001:2::/48" }, "vip-cidr"},
		{"vip6 pool of the wrong family", func(c *Config) { c.VIPCIDR6 = "10.0.0.0/8" }, "vip-cidr6"},
		{"vip pool too small", func(c *Config) { c.VIPCIDR = "10.0.0.0/31" }, "vip-cidr"},
		{"vip pools off", func(c *Config) { c.VIPCIDR, c.VIPCIDR6 = "", "" }, ""},
		{"vip quarantine negative", func(c *Config) { c.VIPQuarantine = -time.Second }, "vip-quarantine"},
		{"vip quarantine zero", func(c *Config) { c.VIPQuarantine = 0 }, "vip-quarantine"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "log-format"},
		{"kubeconfig alone", func(c *Config) { c.Registry, c.Kubeconfig = "", "/k" }, ""},
		{"namespaces without kubernetes", func(c *Config) { c.Namespaces = []string{"a"} }, "namespaces"},
		{"namespaces", func(c *Config) { c.Kubeconfig, c.Namespaces = "/k", []string{"a", "team-1"} }, ""},
		{"namespaces bad name", func(c *Config) { c.Kubeconfig, c.Namespaces = "/k", []string{"a,b"} }, "namespaces"},
		{"kube api qps zero", func(c *Config) { c.Kubeconfig, c.KubeAPIQPS = "/k", 0 }, "kube-api-qps"},
		{"kube api burst zero", func(c *Config) { c.Kubeconfig, c.KubeAPIBurst = "/k", 0 }, "kube-api-burst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Registry = "examples/registry"
			tc.edit(&c)
			err := c.Validate()
			var fe *FlagError
			switch {
			case tc.flag == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.flag != "" && (!errors.As(err, &fe) || fe.Flag != tc.flag):
				t.Errorf("err = %v, want one naming --%s", err, tc.flag)
			}
		})
	}
}

func TestValidateFillsListen(t *testing.T) {
	c := Default()
	c.Registry = "x"
	if err := c.Validate(); err != nil || !slices.Equal(c.Listen, []string{DefaultListen}) {
		t.Errorf("listen = %v, err %v", c.Listen, err)
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
			c.Namespace, c.Search = tc.ns, tc.search
			ns, search := c.ClientContext(tc.resolv)
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
	} {
		up := netip.MustParseAddrPort(tc.upstream)
		if got := IsSelf(up, tc.listen, local); got != tc.self {
			t.Errorf("IsSelf(%s, %v) = %v, want %v", tc.upstream, tc.listen, got, tc.self)
		}
	}
}
