package inject

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Names of what the injector adds to a pod; their presence marks a pod as injected.
const (
	CaptureName = "meshdns-capture"
	SidecarName = "meshdns"
	// VolumeName is the sidecar's own service account token volume.
	VolumeName = "meshdns-kube-api-access"
	// AgentVolumeName holds an agent sidecar's token for the controller and the CA that
	// verifies the controller; StateVolumeName its saved state.
	AgentVolumeName = "meshdns-agent"
	StateVolumeName = "meshdns-state"
	// CAAnnotation carries the controller's CA (--controller-ca) into each pod, for the
	// downward API to make it a file of the agent volume.
	CAAnnotation = "meshdns.io/controller-ca"
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
	// DefaultTokenAudience is the audience of the agents' tokens: meshdns controller's
	// --token-audience default.
	DefaultTokenAudience = "meshdns"
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
	// Controller, when set, makes the sidecar an agent of a meshdns controller
	// (docs/controller.md), serve's --controller: host:port, comma-separated. The sidecar then
	// needs no access to the API server, only a token for TokenAudience, and the CA that
	// verifies the controller: ControllerCA (PEM, handed to each pod) or the key ca.crt of
	// the ConfigMap ControllerCAConfigMap in the pod's namespace.
	Controller, ControllerCA, ControllerCAConfigMap, TokenAudience string
}

// DefaultConfig returns a Config with every default but the image.
func DefaultConfig() Config {
	return Config{ExemptUID: DefaultExemptUID, ProxyPort: DefaultProxyPort, SidecarAdmin: DefaultSidecarAdmin,
		SidecarCPU: DefaultSidecarCPU, SidecarMemory: DefaultSidecarMemory, SidecarMemoryLimit: DefaultSidecarMemLimit,
		TokenAudience: DefaultTokenAudience}
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
	return c.validateAgent()
}

// validateAgent checks the settings of agent sidecars: all or none, and a CA from one place,
// since a controller serves TLS only.
func (c Config) validateAgent() error {
	if c.Controller == "" {
		for _, f := range []struct{ flag, value string }{{"controller-ca", c.ControllerCA}, {"controller-ca-configmap", c.ControllerCAConfigMap}} {
			if f.value != "" {
				return &FlagError{f.flag, "needs --controller"}
			}
		}
		return nil
	}
	for a := range strings.SplitSeq(c.Controller, ",") {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return &FlagError{"controller", fmt.Sprintf("%q: want host:port (comma-separated)", a)}
		}
	}
	switch {
	case c.ControllerCA == "" && c.ControllerCAConfigMap == "":
		return &FlagError{"controller", "needs --controller-ca or --controller-ca-configmap: the controller serves TLS only"}
	case c.ControllerCA != "" && c.ControllerCAConfigMap != "":
		return &FlagError{"controller-ca", "not with --controller-ca-configmap: give the CA one way"}
	case c.ControllerCAConfigMap != "" && len(validation.IsDNS1123Subdomain(c.ControllerCAConfigMap)) > 0:
		return &FlagError{"controller-ca-configmap", fmt.Sprintf("%q: not a ConfigMap name", c.ControllerCAConfigMap)}
	case strings.TrimSpace(c.TokenAudience) == "":
		return &FlagError{"token-audience", "empty: the controller reviews tokens for one audience"}
	}
	if c.ControllerCA != "" && !holdsCertificate(c.ControllerCA) {
		return &FlagError{"controller-ca", "holds no PEM certificate"}
	}
	return nil
}

// holdsCertificate reports whether pem holds at least one X.509 certificate, and nothing else
// than certificates.
func holdsCertificate(data string) bool {
	rest, n := []byte(data), 0
	for {
		block, more := pem.Decode(rest)
		if block == nil {
			return n > 0 && strings.TrimSpace(string(rest)) == ""
		}
		if block.Type != "CERTIFICATE" {
			return false
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return false
		}
		rest, n = more, n+1
	}
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
