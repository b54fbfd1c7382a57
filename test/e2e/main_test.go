package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Set by TestMain.
var (
	// repoRoot is the directory holding the module's go.mod.
	repoRoot string
	// meshdnsBin is the binary built from ./cmd/meshdns for this run.
	meshdnsBin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "meshdns-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	repoRoot, meshdnsBin = root, filepath.Join(dir, "meshdns")
	build := exec.Command("go", "build", "-o", meshdnsBin, "./cmd/meshdns")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/meshdns: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// findRepoRoot walks up from the test's directory to the meshdns module's go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/meshdns/meshdns\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/meshdns/meshdns above the test directory")
		}
		dir = parent
	}
}

// debianPackage names the package that provides each tool the tests run.
var debianPackage = map[string]string{
	"dig":     "dnsutils",
	"kdig":    "knot-dnsutils",
	"dnsmasq": "dnsmasq-base",
	"sh":      "dash",
	"ip":      "iproute2",
	"getent":  "libc-bin",
	"setpriv": "util-linux",
	"prlimit": "util-linux",
}

// need returns the path of tool. When it is missing the test fails under CI=true (the suite
// must not silently test less there) and is skipped elsewhere, with the reason.
func need(t testing.TB, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s is needed and not in PATH (%v): install the Debian package %s, or run ./scripts/test.sh",
		tool, err, debianPackage[tool])
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// examplePath returns a path below the repository's examples directory.
func examplePath(elem ...string) string {
	return filepath.Join(append([]string{repoRoot, "examples"}, elem...)...)
}
