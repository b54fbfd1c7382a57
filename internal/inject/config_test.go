package inject

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // the error's start; "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"no image", func(c *Config) { c.Image = " " }, "--image: required"},
		{"root", func(c *Config) { c.ExemptUID = 0 }, "--exempt-uid: 0: want 1 to"},
		{"uid too large", func(c *Config) { c.ExemptUID = 1 << 32 }, "--exempt-uid: 4294967296: want 1 to"},
		{"port 0", func(c *Config) { c.ProxyPort = 0 }, "--proxy-port: 0: want 1 to 65535"},
		{"admin IPv6", func(c *Config) { c.SidecarAdmin = "[$(MESHDNS_POD_IP)]:15054" }, ""},
		{"admin everywhere", func(c *Config) { c.SidecarAdmin = ":15054" }, ""},
		{"admin without port", func(c *Config) { c.SidecarAdmin = "$(MESHDNS_POD_IP)" }, `--sidecar-admin: "$(MESHDNS_POD_IP)": address $(MESHDNS_POD_IP): missing port`},
		{"admin bad port", func(c *Config) { c.SidecarAdmin = ":http" }, `--sidecar-admin: ":http": port "http": want 1 to 65535`},
		{"admin on the DNS port", func(c *Config) { c.SidecarAdmin = ":15053" }, `--sidecar-admin: ":15053": port 15053 is --proxy-port's`},
		{"admin on loopback", func(c *Config) { c.SidecarAdmin = "127.0.0.1:15054" }, `--sidecar-admin: "127.0.0.1:15054": a loopback address`},
		{"admin on localhost", func(c *Config) { c.SidecarAdmin = "localhost:15054" }, `--sidecar-admin: "localhost:15054": a loopback address`},
		{"bad cpu", func(c *Config) { c.SidecarCPU = "lots" }, `--sidecar-cpu: "lots": not a Kubernetes quantity`},
		{"bad memory limit", func(c *Config) { c.SidecarMemoryLimit = "1 GB" }, `--sidecar-memory-limit: "1 GB": not a Kubernetes quantity`},
		{"no resources", func(c *Config) { c.SidecarCPU, c.SidecarMemory, c.SidecarMemoryLimit = "", "", "" }, ""},
		{"agent with a CA bundle", func(c *Config) { *c = agentConfig(t) }, ""},
		{"agent with a CA ConfigMap", func(c *Config) { c.Controller, c.ControllerCAConfigMap = "ctl.example:15012", "meshdns-ca" }, ""},
		{"agent of two controllers", func(c *Config) { *c = agentConfig(t); c.Controller = "10.0.0.1:15012,[fd00::1]:15012" }, ""},
		{"agent without a CA", func(c *Config) { c.Controller = "ctl.example:15012" }, "--controller: needs --controller-ca or --controller-ca-configmap"},
		{"agent with two CAs", func(c *Config) { *c = agentConfig(t); c.ControllerCAConfigMap = "meshdns-ca" }, "--controller-ca: not with --controller-ca-configmap"},
		{"controller without port", func(c *Config) { *c = agentConfig(t); c.Controller = "ctl.example" }, `--controller: "ctl.example": want host:port`},
		{"controller list with a hole", func(c *Config) { *c = agentConfig(t); c.Controller = "ctl.example:15012," }, `--controller: "": want host:port`},
		{"CA without controller", func(c *Config) { c.ControllerCA = agentConfig(t).ControllerCA }, "--controller-ca: needs --controller"},
		{"CA ConfigMap without controller", func(c *Config) { c.ControllerCAConfigMap = "meshdns-ca" }, "--controller-ca-configmap: needs --controller"},
		{"CA not PEM", func(c *Config) { *c = agentConfig(t); c.ControllerCA = "not a certificate" }, "--controller-ca: holds no PEM certificate"},
		{"CA with a key", func(c *Config) {
			*c = agentConfig(t)
			c.ControllerCA += "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
		}, "--controller-ca: holds no PEM certificate"},
		{"bad ConfigMap name", func(c *Config) { c.Controller, c.ControllerCAConfigMap = "ctl.example:15012", "Meshdns CA" }, `--controller-ca-configmap: "Meshdns CA": not a ConfigMap name`},
		{"no audience", func(c *Config) { *c = agentConfig(t); c.TokenAudience = "" }, "--token-audience: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
}
