package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Runner runs the command name with args, stdin as its standard input, and returns its
// standard output. Errors name the command and carry its standard error. A binary that does
// not exist gives an error that matches exec.ErrNotFound (errors.Is), as ExecRunner's does.
// Tests pass a Runner that prefixes `ip netns exec NAME`.
type Runner func(ctx context.Context, stdin string, name string, args ...string) (stdout string, err error)

// sbinDirs are searched after PATH: the netfilter tools live there and a non-root PATH (of a
// process with CAP_NET_ADMIN, say) often lacks them. A variable so tests can hide binaries.
var sbinDirs = []string{"/usr/sbin", "/sbin"}

// NotFoundError says that a command is not installed and which Debian package provides it.
type NotFoundError struct {
	Name    string
	Package string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s not found: install the Debian package %s", e.Name, e.Package)
}

// Unwrap lets errors.Is(err, exec.ErrNotFound) recognise a missing binary.
func (e *NotFoundError) Unwrap() error { return exec.ErrNotFound }

// notFound returns the NotFoundError for the command name.
func notFound(name string) error {
	pkg := name
	switch {
	case strings.HasPrefix(name, "iptables"), strings.HasPrefix(name, "ip6tables"):
		pkg = "iptables"
	case name == "nft":
		pkg = "nftables"
	case name == "ip":
		pkg = "iproute2"
	}
	return &NotFoundError{Name: name, Package: pkg}
}

// lookPath finds name in PATH or in sbinDirs.
func lookPath(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range sbinDirs {
		if path, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return path, nil
		}
	}
	return "", notFound(name)
}

// ExecRunner is the Runner that runs commands on this host.
func ExecRunner(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	path, err := lookPath(name)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		line := strings.Join(append([]string{name}, args...), " ")
		return stdout.String(), fmt.Errorf("%s: %w: %s", line, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// capNetAdmin is the bit of CAP_NET_ADMIN in the capability sets of /proc/PID/status.
const capNetAdmin = 12

// errPrivileges is what CheckPrivileges returns when changing netfilter rules is not allowed.
var errPrivileges = errors.New("capture needs root or CAP_NET_ADMIN")

// CheckPrivileges reports whether this process may change netfilter rules: it must be root or
// hold CAP_NET_ADMIN in its effective set. Checking first turns a later "Permission denied"
// from deep inside iptables-restore into an error that says what to do.
func CheckPrivileges() error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil && os.Geteuid() != 0 {
		return fmt.Errorf("%w (reading capabilities: %v)", errPrivileges, err)
	}
	return checkPrivileges(os.Geteuid(), string(status))
}

// checkPrivileges decides from the effective uid and the text of /proc/self/status.
func checkPrivileges(euid int, status string) error {
	if euid == 0 {
		return nil
	}
	for _, line := range strings.Split(status, "\n") {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err == nil && caps&(1<<capNetAdmin) != 0 {
			return nil
		}
	}
	return errPrivileges
}
