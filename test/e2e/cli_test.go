package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// commandTimeout bounds a meshdns run that is expected to end by itself.
const commandTimeout = 10 * time.Second

// runMeshdns runs the binary with args and returns its exit code, stdout and stderr.
func runMeshdns(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, meshdnsBin, args...)
	cmd.Dir = repoRoot
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("meshdns %s: still running after %s (killed)\nstderr:\n%s", strings.Join(args, " "), commandTimeout, &stderr)
	}
	return exitCode(err), stdout.String(), stderr.String()
}

// TestCommandLine checks the command-line contract of docs/cli.md: version, one-line
// errors with exit status 2 for bad flags, and exit 0 on SIGTERM or SIGINT.
func TestCommandLine(t *testing.T) {
	t.Run("version", func(t *testing.T) {
		code, stdout, stderr := runMeshdns(t, "version")
		if code != 0 || !regexp.MustCompile(`^meshdns \S+\n$`).MatchString(stdout) || stderr != "" {
			t.Errorf("meshdns version: exit %d, stdout %q, stderr %q; want 0, \"meshdns VERSION\\n\", nothing", code, stdout, stderr)
		}
	})

	registry := examplePath("registry")
	// quiet keeps a run that wrongly starts serving off the default ports; --listen is
	// repeatable, so the cases' own --listen values are checked as well.
	quiet := []string{"--admin", "", "--listen", "127.0.0.1:0"}
	missingDir := filepath.Join(t.TempDir(), "no-such-dir")
	for _, tc := range []struct {
		name  string
		args  []string
		codes []int  // acceptable exit codes
		names string // the error line must contain this
	}{
		{"unknown flag", []string{"serve", "--registry", registry, "--bogus"}, []int{2}, "bogus"},
		{"ttl zero", []string{"serve", "--registry", registry, "--ttl", "0s"}, []int{2}, "--ttl"},
		{"cache bytes too few", []string{"serve", "--registry", registry, "--cache-max-bytes", "64KiB"}, []int{2}, "--cache-max-bytes: 64KiB"},
		{"listen not an address", []string{"serve", "--registry", registry, "--listen", "nonsense"}, []int{2}, "--listen"},
		{"upstream not an IP", []string{"serve", "--registry", registry, "--upstream", "not-an-ip"}, []int{2}, "--upstream"},
		{"registry missing", []string{"serve"}, []int{2}, "--registry"},
		{"kubeconfig unreadable", []string{"serve", "--kubeconfig", missingDir + "/kubeconfig"}, []int{2}, "--kubeconfig: "},
		{"namespaces without kubernetes", []string{"serve", "--registry", registry, "--namespaces", "a,b"}, []int{2}, "--namespaces"},
		{"namespaces bad name", []string{"serve", "--kubeconfig", "/k", "--namespaces", "a,B"}, []int{2}, "--namespaces: \"B\""},
		{"registry does not exist", []string{"serve", "--registry", missingDir}, []int{2}, "--registry: \"" + missingDir},
		{"unknown command", []string{"bogus"}, []int{2}, "bogus"},
		{"capture without action", []string{"capture"}, []int{2}, "want print, install, uninstall or verify"},
		{"capture unknown action", []string{"capture", "apply"}, []int{2}, "apply"},
		{"capture port 0", []string{"capture", "print", "--all", "--proxy-port", "0"}, []int{2}, "--proxy-port"},
		{"capture unknown backend", []string{"capture", "print", "--all", "--backend", "pf"}, []int{2}, "--backend"},
		{"capture without nameservers", []string{"capture", "print", "--backend", "nftables", "--resolv-conf", os.DevNull}, []int{2}, "--all"},
		{"capture vips bad pool", []string{"capture", "print", "--all", "--vips", "--vip-cidr", "10.0.0.0/33"}, []int{2}, "--vip-cidr: "},
		{"capture vips without pools", []string{"capture", "print", "--all", "--vips", "--vip-cidr", "", "--vip-cidr6", ""}, []int{2}, "--vips"},
		{"capture vips port 0", []string{"capture", "print", "--all", "--vips", "--vip-forward-port", "0"}, []int{2}, "--vip-forward-port"},
		{"capture node without cluster DNS", []string{"capture", "print", "--backend", "nftables", "--node"}, []int{2}, "--cluster-dns: required with --node"},
		{"capture node cluster DNS not an IP", []string{"capture", "print", "--backend", "nftables", "--node", "--cluster-dns", "10.96.0.10,kube-dns"}, []int{2}, `--cluster-dns: "kube-dns": not an IP address`},
		{"capture node cluster DNS loopback", []string{"capture", "print", "--backend", "nftables", "--node", "--cluster-dns", "127.0.0.1"}, []int{2}, "cluster DNS 127.0.0.1: not a unicast address"},
		{"capture node local IP link-local", []string{"capture", "print", "--backend", "nftables", "--node", "--cluster-dns", "10.96.0.10", "--local-ip", "fe80::10"}, []int{2}, "local IP fe80::10: an IPv6 link-local address needs an interface"},
		{"capture node with all", []string{"capture", "print", "--backend", "nftables", "--node", "--all", "--cluster-dns", "10.96.0.10"}, []int{2}, "--all: not with --node"},
		{"capture cluster DNS without node", []string{"capture", "print", "--backend", "nftables", "--all", "--cluster-dns", "10.96.0.10"}, []int{2}, "--cluster-dns: only with --node"},
		{"injector without image", []string{"injector", "--tls-cert", "c", "--tls-key", "k"}, []int{2}, "--image: required"},
		{"injector without key pair", []string{"injector", "--image", "meshdns:dev"}, []int{2}, "--tls-cert: required"},
		{"injector key pair missing", []string{"injector", "--image", "meshdns:dev", "--tls-cert", missingDir + "/tls.crt", "--tls-key", missingDir + "/tls.key"}, []int{2}, "--tls-cert: stat " + missingDir},
		{"injector controller without CA", []string{"injector", "--image", "meshdns:dev", "--controller", "ctl:15012", "--tls-cert", "c", "--tls-key", "k"}, []int{2}, "--controller: needs --controller-ca"},
		{"injector controller CA missing", []string{"injector", "--image", "meshdns:dev", "--controller", "ctl:15012", "--controller-ca", missingDir + "/ca.crt", "--tls-cert", "c", "--tls-key", "k"}, []int{2}, "--controller-ca: "},
		{"injector controller CA not PEM", []string{"injector", "--image", "meshdns:dev", "--controller", "ctl:15012", "--controller-ca", examplePath("resolv.conf"), "--tls-cert", "c", "--tls-key", "k"}, []int{2}, "--controller-ca: holds no PEM certificate"},
		{"injector admin on loopback", []string{"injector", "--image", "meshdns:dev", "--sidecar-admin", "127.0.0.1:15054", "--tls-cert", "c", "--tls-key", "k"}, []int{2}, "--sidecar-admin"},
		{"forward vips without pools", []string{"serve", "--registry", registry, "--forward-vips", "--vip-cidr", "", "--vip-cidr6", ""}, []int{2}, "--forward-vips"},
		{"vip nat without the forwarder", []string{"serve", "--registry", registry, "--vip-nat"}, []int{2}, "--vip-nat: needs --forward-vips"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] == "serve" {
				args = append(args, quiet...)
			}
			code, stdout, stderr := runMeshdns(t, args...)
			if !slices.Contains(tc.codes, code) {
				t.Errorf("exit status %d, want one of %v", code, tc.codes)
			}
			if lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); len(lines) != 1 || lines[0] == "" {
				t.Errorf("stderr has %d lines, want exactly one:\n%s", len(lines), stderr)
			}
			if !strings.Contains(stderr, tc.names) {
				t.Errorf("stderr does not name %q:\n%s", tc.names, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
		})
	}

	// A failure at start (here the kernel path without nft) exits 1 and says what is missing.
	t.Run("vip nat without nft", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, meshdnsBin, append([]string{"serve", "--registry", registry, "--forward-vips", "--vip-nat"}, quiet...)...)
		cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), "--vip-nat: nft is needed (Debian package nftables)") {
			t.Errorf("exit status %d, want 1 and the missing nft named:\n%s", code, out)
		}
	})

	for name, sig := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT} {
		t.Run("exit 0 on "+name, func(t *testing.T) {
			srv := startServer(t, serveOptions{args: examplesArgs(registry, "")})
			code, err := srv.stop(sig)
			if err != nil || code != 0 {
				t.Errorf("after %v: exit status %d (%v), want 0\n%s", sig, code, err, srv.stderr)
			}
		})
	}
}

// TestAgentBuild: meshdns built with -tags nokube (for agents, without Kubernetes client code)
// refuses what needs the API server with a clear error, and serves a registry as the full
// build does. (Its agent mode runs against a controller in test/kube.)
func TestAgentBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "meshdns-agent")
	build := exec.Command("go", "build", "-tags", "nokube", "-o", bin, "./cmd/meshdns")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags nokube: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"serve", "--kubeconfig", filepath.Join(t.TempDir(), "kubeconfig"), "--admin", "", "--listen", "127.0.0.1:0"},
		{"serve", "--controller", "127.0.0.1:1", "--node-agent", "--node-name", "n", "--kubeconfig", "/k", "--admin", "", "--listen", "127.0.0.1:0"},
		{"controller", "--kubeconfig", "/k"},
		{"injector"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stderr = &stderr
		code := exitCode(cmd.Run())
		cancel()
		if code != 2 || !strings.Contains(stderr.String(), "built without Kubernetes support (-tags nokube)") {
			t.Errorf("meshdns-agent %s: exit %d, stderr %q; want 2 and the build's limits", strings.Join(args, " "), code, &stderr)
		}
	}
	args := examplesArgs(examplePath("registry"), "")
	agent := startServer(t, serveOptions{bin: bin, args: args})
	full := startServer(t, serveOptions{args: args})
	// Only the times VIPs were allocated differ.
	since := regexp.MustCompile(`"since": "[^"]*"`)
	_, got := agent.get(t, "/debug/table")
	_, want := full.get(t, "/debug/table")
	got, want = since.ReplaceAllString(got, ""), since.ReplaceAllString(want, "")
	if got != want || !strings.Contains(got, "reviews.bookinfo.svc.cluster.local.") {
		t.Errorf("the agent build's /debug/table differs from the full build's:\n%s\nwant:\n%s", got, want)
	}
}
