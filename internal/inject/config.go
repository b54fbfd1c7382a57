package inject

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Names of what the injector adds to a pod; their presence marks a pod as injected.
const (
	CaptureName = "meshdns-capture"
	SidecarName = "meshdns"
	// VolumeName is the sidecar's own service account token volume.
	VolumeName = "meshdns-kube-api-access"
)

// Defaults of the injector's flags.
const (
	DefaultExemptUID = 1337
	DefaultProxyPort = 15053
	// PodIPEnv is the sidecar's environment variable holding the pod IP (downward API), for
	// DefaultSidecarAdmin.
	PodIPEnv = "MESHDNS_POD_IP"
	// DefaultSidecarAdmin is the sidecar's admin address: the pod IP, which the kubelet's
	// probes connect to (as deploy/meshdns.yaml). An IPv6-only cluster writes
	// "[$(MESHDNS_POD_IP)]:15054".
	DefaultSidecarAdmin    = "$(" + PodIPEnv + "):15054"
	DefaultSidecarCPU      = "10m"
	DefaultSidecarMemory   = "64Mi"
	DefaultSidecarMemLimit = "512Mi"
)

// Config is what the injected containers are made of.
type Config struct {
	// Image runs the sidecar (meshdns serve); CaptureImage the capture step, which needs
	// iptables or nft beside meshdns (default Image).
	Image, CaptureImage string
	// ExemptUID is the sidecar's uid and gid, whose traffic capture leaves alone.
	ExemptUID int64
	// ProxyPort is where the sidecar listens on 127.0.0.1 and capture redirects DNS.
	ProxyPort int
	// SidecarAdmin is the sidecar's --admin address; its port is probed.
	SidecarAdmin string
	// SidecarArgs and CaptureArgs are appended to the containers' arguments.
	SidecarArgs, CaptureArgs []string
	// SidecarCPU and SidecarMemory are the sidecar's requests, SidecarMemoryLimit its limit
	// ("" leaves each out).
	SidecarCPU, SidecarMemory, SidecarMemoryLimit string
}

// DefaultConfig returns a Config with every default but the image.
func DefaultConfig() Config {
	return Config{ExemptUID: DefaultExemptUID, ProxyPort: DefaultProxyPort, SidecarAdmin: DefaultSidecarAdmin,
		SidecarCPU: DefaultSidecarCPU, SidecarMemory: DefaultSidecarMemory, SidecarMemoryLimit: DefaultSidecarMemLimit}
}

// FlagError is a problem with one setting, named by its flag.
type FlagError struct{ Flag, Msg string }

func (e *FlagError) Error() string { return "--" + e.Flag + ": " + e.Msg }

// Validate checks c; errors name the flag.
func (c Config) Validate() error {
	switch {
	case strings.TrimSpace(c.Image) == "":
		return &FlagError{"image", "required: the meshdns image of the injected containers"}
	case c.ExemptUID < 1 || c.ExemptUID > 1<<31-1:
		return &FlagError{"exempt-uid", fmt.Sprintf("%d: want 1 to %d (the sidecar must not run as root)", c.ExemptUID, 1<<31-1)}
	case c.ProxyPort < 1 || c.ProxyPort > 65535:
		return &FlagError{"proxy-port", fmt.Sprintf("%d: want 1 to 65535", c.ProxyPort)}
	}
	if _, err := c.adminPort(); err != nil {
		return &FlagError{"sidecar-admin", fmt.Sprintf("%q: %v", c.SidecarAdmin, err)}
	}
	for _, q := range []struct{ flag, value string }{
		{"sidecar-cpu", c.SidecarCPU}, {"sidecar-memory", c.SidecarMemory}, {"sidecar-memory-limit", c.SidecarMemoryLimit},
	} {
		if q.value == "" {
			continue
		}
		if _, err := resource.ParseQuantity(q.value); err != nil {
			return &FlagError{q.flag, fmt.Sprintf("%q: not a Kubernetes quantity (e.g. 100m, 64Mi)", q.value)}
		}
	}
	return nil
}

// adminPort is the port of SidecarAdmin. The host must be one the kubelet's probes reach (the
// pod IP, through a $(VAR), or an address of the pod), so loopback is refused.
func (c Config) adminPort() (int, error) {
	host, port, err := net.SplitHostPort(c.SidecarAdmin)
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q: want 1 to 65535", port)
	}
	if p == c.ProxyPort {
		return 0, fmt.Errorf("port %d is --proxy-port's", p)
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() || host == "localhost" {
		return 0, errors.New("a loopback address: the kubelet's probes cannot reach it (use the pod IP, the default)")
	}
	return p, nil
}
