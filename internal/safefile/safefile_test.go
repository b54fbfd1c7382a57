package safefile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readBound guards every read against a hang (a FIFO open waiting for a writer); it is not a
// timing assertion.
const readBound = 5 * time.Second

// readWithin runs ReadRegular and fails the test if it does not return within readBound.
func readWithin(t *testing.T, path string, limit int64) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := ReadRegular(path, limit)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(readBound):
		t.Fatalf("ReadRegular(%s) still blocked after %v", path, readBound)
		return nil, nil
	}
}

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int64{10, 1 << 20} {
		b, err := readWithin(t, path, limit)
		if err != nil || string(b) != "0123456789" {
			t.Errorf("ReadRegular(limit %d) = %q, %v; want the content", limit, b, err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("f", link); err != nil {
		t.Fatal(err)
	}
	if b, err := readWithin(t, link, 10); err != nil || string(b) != "0123456789" {
		t.Errorf("ReadRegular(symlink to a regular file) = %q, %v; want the content", b, err)
	}
}

// TestReadRegularRefusesNonRegular: what is not a regular file after following symlinks is
// refused at once with ErrNotRegular, and the error names the path and what it is.
func TestReadRegularRefusesNonRegular(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		is   string
	}{
		{name: "FIFO", is: "is a FIFO (named pipe), not a regular file", make: func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
			// Should the open wait for a writer after all, this one releases it when the test ends.
			t.Cleanup(func() {
				if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			})
		}},
		{name: "directory", is: "is a directory, not a regular file", make: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "symlink to /dev/zero", is: "(a symlink to /dev/zero) is a character device, not a regular file",
			make: func(t *testing.T, path string) {
				if err := os.Symlink("/dev/zero", path); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "unix socket", is: "is a socket, not a regular file", make: func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			tc.make(t, path)
			b, err := readWithin(t, path, 1<<20)
			if !errors.Is(err, ErrNotRegular) || b != nil {
				t.Fatalf("ReadRegular = %d bytes, %v; want ErrNotRegular", len(b), err)
			}
			if want := path + " " + tc.is; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		})
	}
}

// TestReadRegularRefusesOverLimit: a file longer than the limit is refused with ErrTooLarge,
// whether its size says so (a sparse file of 1 GiB is not read) or it turns out longer while
// read (a /proc file has size 0).
func TestReadRegularRefusesOverLimit(t *testing.T) {
	sparse := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(sparse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, 1<<30); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  string
		limit int64
	}{{sparse, 1 << 20}, {"/proc/self/status", 16}} {
		b, err := readWithin(t, tc.path, tc.limit)
		if !errors.Is(err, ErrTooLarge) || b != nil {
			t.Fatalf("ReadRegular(%s, %d) = %d bytes, %v; want ErrTooLarge", tc.path, tc.limit, len(b), err)
		}
		if want := tc.path + " is larger than "; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if fi, err := os.Stat("/proc/self/status"); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		t.Errorf("/proc/self/status: %v, %v; the test relies on a regular file of size 0", fi, err)
	}
}

// TestReadRegularMissing: other errors are the failing call's, naming the path.
func TestReadRegularMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope")
	_, err := readWithin(t, path, 10)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want fs.ErrNotExist naming %s", err, path)
	}
}
