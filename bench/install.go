package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// corednsModule is the pinned CoreDNS release the harness compares against.
const (
	corednsModule  = "github.com/coredns/coredns"
	corednsVersion = "v1.12.4"
)

// debianTools are the programs the harness runs, with the Debian package of each.
var debianTools = []struct{ bin, pkg string }{
	{"dnsperf", "dnsperf"},
	{"dnsmasq", "dnsmasq-base"},
	{"taskset", "util-linux"},
	{"getconf", "libc-bin"},
}

// lookPath finds bin in PATH or the sbin directories (dnsmasq lives in /usr/sbin, which a
// non-root PATH may lack).
func lookPath(bin string) (string, error) {
	if path, err := exec.LookPath(bin); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if path, err := exec.LookPath(filepath.Join(dir, bin)); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin", bin)
}

// ensureDebianTools installs the packages of missing tools with apt-get (through sudo when
// not root), as scripts/test.sh does for the tests' tools.
func ensureDebianTools(ctx context.Context) error {
	var missing []string
	for _, t := range debianTools {
		if _, err := lookPath(t.bin); err != nil {
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("installing Debian packages: %s", strings.Join(missing, " "))
	var sudo []string
	if os.Geteuid() != 0 {
		sudo = []string{"sudo"}
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if _, err := runTool(ctx, "", env, append(sudo, "apt-get", "update", "-qq")...); err != nil {
		return fmt.Errorf("installing %s: %w", strings.Join(missing, " "), err)
	}
	install := append(sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends")
	if _, err := runTool(ctx, "", env, append(install, missing...)...); err != nil {
		return fmt.Errorf("installing %s: %w", strings.Join(missing, " "), err)
	}
	return nil
}

// ensureCoreDNS returns cacheDir/bin/coredns, installing the pinned release with go install
// when it is missing or another version.
func ensureCoreDNS(ctx context.Context, cacheDir string) (string, error) {
	binDir := filepath.Join(cacheDir, "bin")
	bin := filepath.Join(binDir, "coredns")
	if out, err := runTool(ctx, "", nil, bin, "-version"); err == nil &&
		strings.Contains(out, "CoreDNS-"+strings.TrimPrefix(corednsVersion, "v")) {
		return bin, nil
	}
	logf("installing CoreDNS %s into %s (go install; several minutes the first time)", corednsVersion, binDir)
	pkg := corednsModule + "@" + corednsVersion
	if _, err := runTool(ctx, "", []string{"GOBIN=" + binDir}, "go", "install", pkg); err != nil {
		return "", fmt.Errorf("installing CoreDNS: %w", err)
	}
	return bin, nil
}

// buildMeshdns builds ./cmd/meshdns of the module at root into dir.
func buildMeshdns(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "meshdns")
	if _, err := runTool(ctx, root, nil, "go", "build", "-o", bin, "./cmd/meshdns"); err != nil {
		return "", fmt.Errorf("building meshdns: %w", err)
	}
	return bin, nil
}

// moduleRoot is the directory of the go.mod that `go run ./bench` runs in.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := runTool(ctx, "", nil, "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(out)
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module: run `go run ./bench` from the meshdns repository")
	}
	return filepath.Dir(gomod), nil
}

// defaultCacheDir is $MESHDNS_BENCH_CACHE, else meshdns-bench in the user's cache directory.
func defaultCacheDir() string {
	if dir := os.Getenv("MESHDNS_BENCH_CACHE"); dir != "" {
		return dir
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "meshdns-bench")
	}
	return filepath.Join(os.TempDir(), "meshdns-bench")
}
