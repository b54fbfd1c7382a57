package vip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

func sampleState(t *testing.T) State {
	t.Helper()
	clk := testutil.NewClock()
	a := newTest(t, "240.240.0.0/16", "2001:2::/48", clk)
	a.Allocate(claims("shop/db.example.com", "shop/cache.example.com", "dev/db.example.com"))
	clk.Advance(time.Minute)
	a.Allocate(claims("shop/db.example.com", "dev/db.example.com"))
	return a.State()
}

func TestFileStore(t *testing.T) {
	tests := []struct {
		name    string
		file    string // content written before Load; "-" for no file
		want    State
		wantErr string
	}{
		{name: "missing file is an empty state", file: "-"},
		{name: "empty file is corrupt", file: "", wantErr: "corrupt"},
		{name: "truncated JSON is corrupt", file: `{"version": 1, "leases": [`, wantErr: "corrupt"},
		{name: "wrong types are corrupt", file: `{"version": 1, "leases": [{"address": "not-an-ip"}]}`,
			wantErr: "corrupt"},
		{name: "unknown family is corrupt", file: `{"version": 1, "leases": [{"family": "ipx"}]}`,
			wantErr: "corrupt"},
		{name: "unknown version", file: `{"version": 7}`, wantErr: "version 7, want 1"},
		{name: "no version", file: `{"leases": []}`, wantErr: "version 0, want 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := NewFileStore(dir, FileStoreOptions{})
			if tc.file != "-" {
				if err := os.WriteFile(s.Path(), []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Load()
			if tc.wantErr == "" {
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Load = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), s.Path()) {
				t.Fatalf("Load error = %v, want one naming %s and saying %q", err, s.Path(), tc.wantErr)
			}
			if !reflect.DeepEqual(got, State{}) {
				t.Errorf("Load returned %+v with its error, want an empty State", got)
			}
		})
	}
}

func TestFileStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := NewFileStore(dir, FileStoreOptions{})
	want := sampleState(t)
	if len(want.Leases) != 4 || len(want.Released) != 2 {
		t.Fatalf("setup: %+v", want)
	}
	for range 2 { // the second Save replaces the first
		if err := s.Save(want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != StateFile {
		t.Errorf("directory holds %v, want only %s (no temp file left)", entries, StateFile)
	}
	if fi, _ := os.Stat(s.Path()); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}

func TestFileStoreIsHumanReadable(t *testing.T) {
	dir := t.TempDir()
	s := NewFileStore(dir, FileStoreOptions{})
	if err := s.Save(sampleState(t)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(s.Path())
	want := `{
  "version": 1,
  "leases": [
    {
      "namespace": "dev",
      "host": "db.example.com",
      "family": "ipv4",
      "address": "240.240.40.169",
      "since": "2026-01-02T03:04:05Z"
    },
`
	if !strings.HasPrefix(string(b), want) {
		t.Errorf("state file starts\n%s\nwant\n%s", b[:min(len(b), 400)], want)
	}
	for _, field := range []string{`"released": [`, `"releasedAt": "2026-01-02T03:05:05Z"`, `"family": "ipv6"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("state file lacks %s", field)
		}
	}
}

func TestFileStoreSaveFailsCleanly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	err := NewFileStore(dir, FileStoreOptions{}).Save(State{Version: StateVersion})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, StateFile)) {
		t.Fatalf("Save into a missing directory: %v, want an error naming the file", err)
	}
}

// newStore returns a store in a fresh directory on clk, with metrics in reg.
func newStore(t *testing.T, clk *testutil.Clock, reg *prometheus.Registry) *FileStore {
	t.Helper()
	var m *StoreMetrics
	if reg != nil {
		m = NewStoreMetrics(reg)
	}
	return NewFileStore(t.TempDir(), FileStoreOptions{Now: clk.Now, Metrics: m})
}

// loadWithin runs Load, failing the test if it has not returned after a bounded wait (a state
// file that blocks must not block the start).
func loadWithin(t *testing.T, s *FileStore) (State, error) {
	t.Helper()
	type result struct {
		st  State
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := s.Load()
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		return r.st, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("Load of %s still blocked after 5s", s.Path())
		return State{}, nil
	}
}

// TestLoadSetsAsideUnusableState: a state file whose content cannot be used is renamed to
// vips.json.bad-<UTC time of the clock> before anything replaces it, and the error names the
// file, what is wrong with it and where it went.
func TestLoadSetsAsideUnusableState(t *testing.T) {
	tests := []struct {
		name    string
		content string
		size    int64 // > 0: a sparse file of this size instead of content
		problem string
	}{
		{name: "corrupt JSON", content: `{"version": 1, "leases": [`, problem: "corrupt"},
		{name: "empty file", content: "", problem: "corrupt"},
		{name: "newer version", content: `{"version": 2, "leases": [], "future": true}`,
			problem: "version 2, want 1: written by a newer meshdns"},
		{name: "no version", content: `{"leases": []}`, problem: "version 0, want 1"},
		{name: "oversize sparse file", size: MaxStateBytes + 1,
			problem: fmt.Sprintf("larger than %d bytes", MaxStateBytes)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, testutil.NewClock(), nil)
			writeStateFile(t, s.Path(), tc.content, tc.size)
			st, err := loadWithin(t, s)
			kept := s.Path() + ".bad-20260102T030405Z"
			var aside *SetAsideError
			if !errors.As(err, &aside) || aside.Kept != kept {
				t.Fatalf("Load error = %v, want a SetAsideError keeping the file as %s", err, kept)
			}
			for _, want := range []string{s.Path(), tc.problem, kept} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load error %q does not say %q", err, want)
				}
			}
			if !reflect.DeepEqual(st, State{}) {
				t.Errorf("Load returned %+v with its error, want an empty State", st)
			}
			if _, err := os.Lstat(s.Path()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s is still there after it was set aside (%v)", s.Path(), err)
			}
			checkStateFile(t, kept, tc.content, tc.size)
			if err := s.Save(State{Version: StateVersion}); err != nil {
				t.Fatal(err)
			}
			checkStateFile(t, kept, tc.content, tc.size) // a new state leaves the copy alone
		})
	}
}

func writeStateFile(t *testing.T, path, content string, size int64) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if size > 0 {
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

func checkStateFile(t *testing.T, path, content string, size int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the copy: %v", err)
	}
	if size > 0 {
		if fi.Size() != size {
			t.Errorf("the copy %s has %d bytes, want %d", path, fi.Size(), size)
		}
		return
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("the copy %s holds %q, want %q", path, b, content)
	}
}

// TestLoadSetAsideKeepsEarlierCopies: a second bad file set aside within the same second gets
// a name of its own; no copy is ever overwritten.
func TestLoadSetAsideKeepsEarlierCopies(t *testing.T) {
	s := newStore(t, testutil.NewClock(), nil)
	var kept []string
	for i := range 3 {
		writeStateFile(t, s.Path(), fmt.Sprintf("garbage %d", i), 0)
		_, err := s.Load()
		var aside *SetAsideError
		if !errors.As(err, &aside) {
			t.Fatalf("Load %d: %v, want a SetAsideError", i, err)
		}
		kept = append(kept, aside.Kept)
	}
	base := s.Path() + ".bad-20260102T030405Z"
	if want := []string{base, base + "-2", base + "-3"}; !reflect.DeepEqual(kept, want) {
		t.Errorf("copies %v, want %v", kept, want)
	}
	for i, p := range kept {
		checkStateFile(t, p, fmt.Sprintf("garbage %d", i), 0)
	}
}

// TestLoadRefusesNonRegularFile: what is not a regular file (after following a symlink) is
// refused at once, named with what it is, and left where it is: opening a FIFO must not wait
// for a writer, and a device must not be read without end.
func TestLoadRefusesNonRegularFile(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		is   string
	}{
		{name: "FIFO", is: "is a FIFO (named pipe)", make: func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
			// Should Load wait for a writer after all, this writer releases it when the test ends.
			t.Cleanup(func() {
				if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			})
		}},
		{name: "symlink to /dev/zero", is: "(a symlink to /dev/zero) is a character device",
			make: func(t *testing.T, path string) {
				if err := os.Symlink("/dev/zero", path); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "directory", is: "is a directory", make: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "unix socket", is: "is a socket", make: func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			ln.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { ln.Close() })
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, testutil.NewClock(), nil)
			tc.make(t, s.Path())
			before, _ := os.Lstat(s.Path())
			_, err := loadWithin(t, s)
			var aside *SetAsideError
			if err == nil || errors.As(err, &aside) {
				t.Fatalf("Load = %v, want an error refusing the file", err)
			}
			if want := s.Path() + " " + tc.is + ", not a regular file"; !strings.Contains(err.Error(), want) {
				t.Errorf("Load error %q does not say %q", err, want)
			}
			after, _ := os.Lstat(s.Path())
			if after == nil || after.Mode() != before.Mode() {
				t.Errorf("the refused file was moved or changed: %v -> %v", before, after)
			}
		})
	}
}

// TestMaxStateBytesHoldsLargestPools: MaxStateBytes holds the state of the largest pools
// meshdns is built for (maxStateRecords records), each record as long as names allow.
func TestMaxStateBytesHoldsLargestPools(t *testing.T) {
	ns := strings.Repeat("n", 63)
	host := strings.Repeat(strings.Repeat("h", 63)+".", 3) + strings.Repeat("h", 61) // 253 bytes
	since := time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -12*3600))
	v6 := addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")
	const n = 100
	st := State{Version: StateVersion}
	for range n {
		st.Leases = append(st.Leases, LeaseRecord{Namespace: ns, Host: host, Family: IPv6, Address: v6, Since: since})
		st.Released = append(st.Released, ReleaseRecord{Namespace: ns, Host: host, Address: v6, ReleasedAt: since})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if per := len(b) / (2 * n); per > maxRecordBytes {
		t.Errorf("a record takes up to %d bytes, more than maxRecordBytes %d", per, maxRecordBytes)
	}
	if maxStateRecords < 4*65536 {
		t.Errorf("maxStateRecords %d does not hold a /16 of hosts with a lease and a quarantine in both families",
			maxStateRecords)
	}
}

// TestSaveFailureIsReported: a failing save is counted, flagged in a gauge and described by
// Problems (naming the file and the error) until a save succeeds again. The save is made to
// fail by a directory in place of the state file, which stops root as well as anyone.
func TestSaveFailureIsReported(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newStore(t, testutil.NewClock(), reg)
	if err := os.MkdirAll(filepath.Join(s.Path(), "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Save(State{Version: StateVersion}); err == nil {
			t.Fatal("Save over a directory succeeded")
		}
	}
	wantMetrics := func(failures, failing string) {
		t.Helper()
		want := "# HELP meshdns_vip_state_save_failing 1 while the latest save of the VIP state file failed.\n" +
			"# TYPE meshdns_vip_state_save_failing gauge\nmeshdns_vip_state_save_failing " + failing + "\n" +
			"# HELP meshdns_vip_state_save_failures_total Saves of the VIP state file that failed.\n" +
			"# TYPE meshdns_vip_state_save_failures_total counter\nmeshdns_vip_state_save_failures_total " + failures + "\n"
		if err := promtest.GatherAndCompare(reg, strings.NewReader(want),
			"meshdns_vip_state_save_failing", "meshdns_vip_state_save_failures_total"); err != nil {
			t.Error(err)
		}
	}
	wantMetrics("2", "1")
	p := s.Problems()
	if len(p) != 1 || !strings.Contains(p[0], s.Path()+" not saved since 2026-01-02T03:04:05Z: rename ") {
		t.Errorf("Problems = %q, want one naming %s, since when it is not saved and the error", p, s.Path())
	}
	if err := os.RemoveAll(s.Path()); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(State{Version: StateVersion}); err != nil {
		t.Fatal(err)
	}
	wantMetrics("2", "0")
	if p := s.Problems(); len(p) != 0 {
		t.Errorf("Problems after a good save = %q, want none", p)
	}
}

// TestProblemsTellASetAsideState: a state file set aside at start stays visible (readiness
// detail) for as long as the process runs, naming both files.
func TestProblemsTellASetAsideState(t *testing.T) {
	s := newStore(t, testutil.NewClock(), nil)
	writeStateFile(t, s.Path(), "{", 0)
	s.Load()
	if err := s.Save(State{Version: StateVersion}); err != nil {
		t.Fatal(err)
	}
	p := s.Problems()
	if len(p) != 1 || !strings.Contains(p[0], s.Path()+".bad-20260102T030405Z") || !strings.Contains(p[0], "corrupt") {
		t.Errorf("Problems = %q, want the set-aside file and why", p)
	}
}
