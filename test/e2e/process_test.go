package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

const (
	// readyTimeout bounds how long a started meshdns may take to answer /readyz with 200.
	readyTimeout = 10 * time.Second
	// exitTimeout bounds how long meshdns may take to exit after SIGTERM.
	exitTimeout = 10 * time.Second
	// startAttempts is how often a start is retried when another process took a port.
	startAttempts = 3
)

// server is a running `meshdns serve`.
type server struct {
	dnsPort   string // DNS port on 127.0.0.1, UDP and TCP
	adminURL  string // http://127.0.0.1:port
	cmd       *exec.Cmd
	stderr    *testutil.SyncBuffer
	exited    chan struct{}
	exitCode  int
	stopOnce  sync.Once
	stopCode  int
	stopError error
}

// serveOptions say how to run `meshdns serve`. --listen and --admin are added by startServer.
type serveOptions struct {
	bin  string   // the meshdns binary; meshdnsBin when empty
	args []string // flags after "serve"
	dir  string   // working directory; the repository root when empty
	// unready: start returns once /readyz answers 503 (a source that never syncs), not 200.
	unready bool
	// nofile, "SOFT:HARD", starts meshdns with that RLIMIT_NOFILE (through prlimit).
	nofile string
	// listen and admin, when set, are the addresses to serve on instead of free ports; a
	// start on them is not retried.
	listen, admin string
	// reusePort keeps --reuse-port on (meshdns's default). Off, the harness turns it off, so
	// that a free port another test's meshdns took meanwhile fails the start, which is then
	// retried, instead of being shared with it.
	reusePort bool
	// logLine, when set, ends the start once meshdns logs it, rather than when /readyz
	// answers (which, on an admin address shared with another meshdns, either may answer).
	logLine string
}

// closedUpstream is a loopback port where nothing listens: a test server that must not
// forward gets it as upstream, so no test traffic can leave the machine (examples/resolv.conf
// names a cluster address).
const closedUpstream = "127.0.0.2:53"

// examplesArgs are the flags that serve examples/registry to a client whose resolv.conf is
// examples/resolv.conf (namespace bookinfo), forwarding to upstream, or to closedUpstream
// when it is empty.
func examplesArgs(registry, upstream string) []string {
	if upstream == "" {
		upstream = closedUpstream
	}
	return []string{"--registry", registry, "--resolv-conf", examplePath("resolv.conf"), "--upstream", upstream}
}

// startServer runs meshdns with free loopback ports, waits until /readyz answers 200 and
// stops it with SIGTERM in cleanup, failing the test unless it exits 0 within exitTimeout.
func startServer(t *testing.T, o serveOptions) *server {
	t.Helper()
	var lastErr error
	for range startAttempts {
		s, err := tryStart(o)
		if err == nil {
			t.Cleanup(func() { s.cleanup(t) })
			return s
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") || o.listen != "" || o.admin != "" {
			break
		}
	}
	t.Fatalf("starting meshdns: %v", lastErr)
	return nil
}

func tryStart(o serveOptions) (*server, error) {
	dnsAddr, adminAddr := o.listen, o.admin
	var err error
	if dnsAddr == "" {
		if dnsAddr, err = freePort(); err != nil {
			return nil, err
		}
	}
	if adminAddr == "" {
		if adminAddr, err = freePort(); err != nil {
			return nil, err
		}
	}
	args := append([]string{"serve"}, o.args...)
	args = append(args, "--listen", dnsAddr, "--admin", adminAddr)
	if !o.reusePort {
		args = append(args, "--reuse-port=false")
	}
	s := &server{adminURL: "http://" + adminAddr, stderr: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	_, s.dnsPort, _ = net.SplitHostPort(dnsAddr)
	bin := o.bin
	if bin == "" {
		bin = meshdnsBin
	}
	s.cmd = exec.Command(bin, args...)
	if o.nofile != "" {
		s.cmd = exec.Command("prlimit", append([]string{"--nofile=" + o.nofile, bin}, args...)...)
	}
	s.cmd.Dir = o.dir
	if s.cmd.Dir == "" {
		s.cmd.Dir = repoRoot
	}
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		err := s.cmd.Wait()
		s.exitCode = exitCode(err)
		close(s.exited)
	}()
	want := http.StatusOK
	if o.unready {
		want = http.StatusServiceUnavailable
	}
	wait := func() error { return s.waitReady(want) }
	if o.logLine != "" {
		wait = func() error { return s.waitLog(o.logLine) }
	}
	if err := wait(); err != nil {
		s.cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("meshdns %s: %w\n--- meshdns output ---\n%s", strings.Join(args, " "), err, s.stderr)
	}
	return s, nil
}

func (s *server) waitReady(want int) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("exited with status %d before it was ready", s.exitCode)
		default:
		}
		if resp, err := c.Get(s.adminURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("/readyz not %d within %s", want, readyTimeout)
}

// waitLog waits until meshdns logs line.
func (s *server) waitLog(line string) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("exited with status %d before logging %q", s.exitCode, line)
		default:
		}
		if strings.Contains(s.stderr.String(), line) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no %q logged within %s", line, readyTimeout)
}

// stop sends sig and waits for the exit code; it kills the process after exitTimeout.
// Only the first call signals; later calls return the same result.
func (s *server) stop(sig syscall.Signal) (int, error) {
	s.stopOnce.Do(func() {
		s.cmd.Process.Signal(sig)
		select {
		case <-s.exited:
			s.stopCode = s.exitCode
		case <-time.After(exitTimeout):
			s.cmd.Process.Kill()
			<-s.exited
			s.stopCode, s.stopError = s.exitCode, fmt.Errorf("no exit within %s of %v; killed", exitTimeout, sig)
		}
	})
	return s.stopCode, s.stopError
}

func (s *server) cleanup(t *testing.T) {
	code, err := s.stop(syscall.SIGTERM)
	switch {
	case err != nil:
		t.Errorf("meshdns: %v", err)
	case code != 0:
		t.Errorf("meshdns exited with status %d after SIGTERM, want 0", code)
	}
	if t.Failed() {
		t.Logf("--- meshdns output ---\n%s", s.stderr)
	}
}

// get fetches path from the admin endpoint and returns the status code and body.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(s.adminURL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode() // -1 when killed by a signal
	default:
		return -1
	}
}

// freePort returns a 127.0.0.1 address whose port is free for both UDP and TCP right now.
// Someone may take it before meshdns binds it; startServer retries then.
func freePort() (string, error) {
	ap, err := testutil.FreePort()
	return ap.String(), err
}

// eventually polls check every 50ms until it returns "" or bound passes, then fails the test
// with the last complaint. The bound is a limit, not a timing assertion.
func eventually(t *testing.T, bound time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		complaint := check()
		if complaint == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, bound, complaint)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
