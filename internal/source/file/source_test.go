package file

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// changeBound bounds every wait for a rescan; it is a hang guard, not a timing assertion.
const changeBound = 5 * time.Second

func svcYAML(name, ip string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: prod}\nspec: {clusterIP: %s}\n", name, ip)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic writes like editors and kubectl cp do: a hidden temp file renamed into place.
func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// services renders a snapshot's services as "name=ip" in snapshot order.
func services(s model.Snapshot) []string {
	var out []string
	for _, svc := range s.Services {
		ips := make([]string, len(svc.ClusterIPs))
		for i, a := range svc.ClusterIPs {
			ips[i] = a.String()
		}
		out = append(out, svc.Name+"="+strings.Join(ips, ","))
	}
	return out
}

// waitFor waits, via Changed, until the snapshot's services are want.
func waitFor(t *testing.T, s *Source, want ...string) {
	t.Helper()
	deadline := time.After(changeBound)
	for {
		got := services(s.Snapshot())
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-s.Changed():
		case <-deadline:
			t.Fatalf("no change to services %q within %v; have %q", want, changeBound, got)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func startSource(t *testing.T, dir string) (*Source, prometheus.Counter) {
	s, counter, _ := startLogged(t, dir)
	return s, counter
}

func startLogged(t *testing.T, dir string) (*Source, prometheus.Counter, *testutil.SyncBuffer) {
	t.Helper()
	return startWith(t, Options{Dir: dir})
}

// startWith starts a source with o, its parse error counter and a log buffer.
func startWith(t *testing.T, o Options) (*Source, prometheus.Counter, *testutil.SyncBuffer) {
	t.Helper()
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "registry_parse_errors_total"})
	logs := &testutil.SyncBuffer{}
	o.ParseErrors, o.Logger = counter, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		s.Wait()
	})
	return s, counter, logs
}

func TestInitialScan(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.yaml"), svcYAML("b", "10.0.0.2"))
	writeFile(t, filepath.Join(dir, "b", "c.yml"), svcYAML("c", "10.0.0.3"))
	writeFile(t, filepath.Join(dir, "a.JSON"), `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"prod"},"spec":{"clusterIP":"10.0.0.1"}}`)
	writeFile(t, filepath.Join(dir, "bad.yaml"), "kind: [\n")
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), svcYAML("hidden", "10.0.0.9"))
	writeFile(t, filepath.Join(dir, ".git", "x.yaml"), svcYAML("git", "10.0.0.9"))
	writeFile(t, filepath.Join(dir, "notes.txt"), svcYAML("txt", "10.0.0.9"))
	linkTarget := t.TempDir()
	writeFile(t, filepath.Join(linkTarget, "d.yaml"), svcYAML("d", "10.0.0.4"))
	mustSymlink(t, linkTarget, filepath.Join(dir, "linked"))
	mustSymlink(t, dir, filepath.Join(dir, "b", "loop")) // must not hang or duplicate
	mustSymlink(t, filepath.Join(dir, "missing.yaml"), filepath.Join(dir, "dangling.yaml"))

	// linked leads out of dir: followed only when asked (TestSymlinksOutside).
	s, counter, _ := startWith(t, Options{Dir: dir, FollowSymlinks: true})
	// Sorted by path: a.JSON, b.yaml, b/c.yml, bad.yaml, linked/d.yaml.
	if got, want := services(s.Snapshot()), []string{"a=10.0.0.1", "b=10.0.0.2", "c=10.0.0.3", "d=10.0.0.4"}; !slices.Equal(got, want) {
		t.Errorf("services = %q, want %q", got, want)
	}
	if got := counterValue(t, counter); got != 1 {
		t.Errorf("parse errors = %v, want 1", got)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.yaml")
	writeFile(t, file, "")
	for _, tc := range []struct{ name, dir, want string }{
		{name: "missing dir", dir: filepath.Join(dir, "nope"), want: "no such file or directory"},
		{name: "not a directory", dir: file, want: "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Dir: tc.dir})
			err := s.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.dir) {
				t.Errorf("Start = %v, want an error naming %s and %q", err, tc.dir, tc.want)
			}
			s.Wait() // must not block: nothing was started
		})
	}
}

func TestStartTwice(t *testing.T) {
	s, _ := startSource(t, t.TempDir())
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("second Start = %v, want already started", err)
	}
}

// TestLiveChanges runs one directory through the edits users make; each step waits for the
// snapshot it expects, so the order of steps is the scenario.
func TestLiveChanges(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	writeFile(t, path("a.yaml"), svcYAML("a", "10.0.0.1"))
	s, counter, logs := startLogged(t, dir)
	waitFor(t, s, "a=10.0.0.1")

	steps := []struct {
		name string
		do   func(t *testing.T)
		want []string
	}{
		{"create file", func(t *testing.T) { writeFile(t, path("b.yaml"), svcYAML("b", "10.0.0.2")) },
			[]string{"a=10.0.0.1", "b=10.0.0.2"}},
		{"modify in place", func(t *testing.T) { writeFile(t, path("a.yaml"), svcYAML("a", "10.0.0.11")) },
			[]string{"a=10.0.0.11", "b=10.0.0.2"}},
		{"rename into place", func(t *testing.T) { writeAtomic(t, path("c.yaml"), svcYAML("c", "10.0.0.3")) },
			[]string{"a=10.0.0.11", "b=10.0.0.2", "c=10.0.0.3"}},
		{"new subdirectory", func(t *testing.T) { writeFile(t, path("d/deeper/d.yaml"), svcYAML("d", "10.0.0.4")) },
			[]string{"a=10.0.0.11", "b=10.0.0.2", "c=10.0.0.3", "d=10.0.0.4"}},
		{"delete file", func(t *testing.T) { mustRemove(t, path("b.yaml")) },
			[]string{"a=10.0.0.11", "c=10.0.0.3", "d=10.0.0.4"}},
		// Breaking a file sends no change, so a second file is written after it: once that one
		// shows, the rescan has read the broken file too.
		{"break file keeps its last good content", func(t *testing.T) {
			writeAtomic(t, path("a.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: a\n")
			writeFile(t, path("e.yaml"), svcYAML("e", "10.0.0.5"))
		}, []string{"a=10.0.0.11", "c=10.0.0.3", "d=10.0.0.4", "e=10.0.0.5"}},
		{"fix file", func(t *testing.T) { writeFile(t, path("a.yaml"), svcYAML("a", "10.0.0.12")) },
			[]string{"a=10.0.0.12", "c=10.0.0.3", "d=10.0.0.4", "e=10.0.0.5"}},
		{"delete subdirectory", func(t *testing.T) {
			if err := os.RemoveAll(path("d")); err != nil {
				t.Fatal(err)
			}
		}, []string{"a=10.0.0.12", "c=10.0.0.3", "e=10.0.0.5"}},
		{"re-create subdirectory", func(t *testing.T) { writeFile(t, path("d/deeper/d.yaml"), svcYAML("d", "10.0.0.44")) },
			[]string{"a=10.0.0.12", "c=10.0.0.3", "d=10.0.0.44", "e=10.0.0.5"}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.do(t)
			waitFor(t, s, step.want...)
		})
	}
	if got := counterValue(t, counter); got < 1 {
		t.Errorf("parse errors = %v, want at least 1", got)
	}
	want := fmt.Sprintf("level=WARN msg=\"registry file rejected, keeping last good content\" err=\"%s: document 1: line 3:", path("a.yaml"))
	if !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %s\n%s", want, logs)
	}
}

func mustRemove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

// TestConfigMapSwap mimics the kubelet's atomic ConfigMap update: visible names are symlinks
// into ..data, itself a symlink to a timestamped directory that is swapped by rename.
func TestConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "..2024_01_01_00_00_00.1", "svc.yaml"), svcYAML("a", "10.0.0.1"))
	mustSymlink(t, "..2024_01_01_00_00_00.1", filepath.Join(dir, "..data"))
	mustSymlink(t, "..data/svc.yaml", filepath.Join(dir, "svc.yaml"))
	s, _ := startSource(t, dir)
	waitFor(t, s, "a=10.0.0.1")

	t.Run("swap ..data", func(t *testing.T) {
		next := "..2024_01_01_00_01_00.2"
		writeFile(t, filepath.Join(dir, next, "svc.yaml"), svcYAML("a", "10.0.0.2"))
		writeFile(t, filepath.Join(dir, next, "more.yaml"), svcYAML("b", "10.0.0.3"))
		mustSymlink(t, next, filepath.Join(dir, "..data_tmp"))
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		mustSymlink(t, "..data/more.yaml", filepath.Join(dir, "more.yaml"))
		if err := os.RemoveAll(filepath.Join(dir, "..2024_01_01_00_00_00.1")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, s, "b=10.0.0.3", "a=10.0.0.2")
	})
}

// TestSnapshotClipped checks that a reader appending to the shared snapshot gets its own array.
func TestSnapshotClipped(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), svcYAML("a", "10.0.0.1")+"---\n"+svcYAML("b", "10.0.0.2"))
	writeFile(t, filepath.Join(dir, "b.yaml"), svcYAML("c", "10.0.0.3"))
	s, _ := startSource(t, dir)
	snap := s.Snapshot()
	if len(snap.Services) != 3 || cap(snap.Services) != len(snap.Services) {
		t.Errorf("services len %d cap %d, want 3 and 3", len(snap.Services), cap(snap.Services))
	}
}

// TestRegistryDirRecreated: the registry directory itself removed and made again, in place
// or by renaming another directory onto its name, is watched and read again.
func TestRegistryDirRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "registry")
	writeFile(t, filepath.Join(dir, "a.yaml"), svcYAML("a", "10.0.0.1"))
	s, _, logs := startLogged(t, dir)
	waitFor(t, s, "a=10.0.0.1")
	// removeDir waits until the source has seen the directory gone (and kept its content), so
	// that its re-creation is a separate change.
	removeDir := func(t *testing.T) {
		t.Helper()
		failed := strings.Count(logs.String(), "registry scan failed")
		last := services(s.Snapshot())
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(changeBound); strings.Count(logs.String(), "registry scan failed") == failed; {
			if time.Now().After(deadline) {
				t.Fatalf("removing the registry directory was not noticed\n%s", logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := services(s.Snapshot()); !slices.Equal(got, last) {
			t.Errorf("while the directory is gone: services %q, want the last content %q", got, last)
		}
	}
	t.Run("removed and made again", func(t *testing.T) {
		removeDir(t)
		writeFile(t, filepath.Join(dir, "sub", "b.yaml"), svcYAML("b", "10.0.0.2"))
		waitFor(t, s, "b=10.0.0.2")
	})
	t.Run("replaced by rename", func(t *testing.T) {
		next := dir + ".next"
		writeFile(t, filepath.Join(next, "c.yaml"), svcYAML("c", "10.0.0.3"))
		removeDir(t)
		if err := os.Rename(next, dir); err != nil {
			t.Fatal(err)
		}
		waitFor(t, s, "c=10.0.0.3")
	})
	t.Run("edited after", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "c.yaml"), svcYAML("c", "10.0.0.33"))
		waitFor(t, s, "c=10.0.0.33")
	})
}

// TestUnreadableFileKeepsLastGoodContent: a file grown past the size limit and a file turned into a symlink
// loop keep their last good content, and say so in the log.
func TestUnreadableFileKeepsLastGoodContent(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	writeFile(t, path("big.yaml"), svcYAML("big", "10.0.0.1"))
	writeFile(t, path("loop.yaml"), svcYAML("loop", "10.0.0.2"))
	s, _, logs := startLogged(t, dir)
	waitFor(t, s, "big=10.0.0.1", "loop=10.0.0.2")
	// settled waits until a marker file's content shows, so the rescan has read the others.
	marker := 0
	settled := func(t *testing.T, want ...string) {
		t.Helper()
		marker++
		writeFile(t, path("zz.yaml"), svcYAML("zz", fmt.Sprintf("10.0.1.%d", marker)))
		waitFor(t, s, append(want, fmt.Sprintf("zz=10.0.1.%d", marker))...)
	}
	t.Run("grown past the size limit", func(t *testing.T) {
		if err := os.Truncate(path("big.yaml"), maxFileSize+1); err != nil { // sparse
			t.Fatal(err)
		}
		settled(t, "big=10.0.0.1", "loop=10.0.0.2")
		if want := "larger than 33554432 bytes"; !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q\n%s", want, logs)
		}
	})
	t.Run("turned into a symlink loop", func(t *testing.T) {
		mustRemove(t, path("loop.yaml"))
		mustSymlink(t, "loop.yaml", path("loop.yaml"))
		settled(t, "big=10.0.0.1", "loop=10.0.0.2")
		if want := "loop.yaml: too many levels of symbolic links"; !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q\n%s", want, logs)
		}
	})
}

// TestOversizedFileNeverGood: a file too large from the start has no content to keep, and the
// log says so rather than claiming to keep something.
func TestOversizedFileNeverGood(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), svcYAML("a", "10.0.0.1"))
	writeFile(t, filepath.Join(dir, "big.yaml"), svcYAML("big", "10.0.0.2"))
	if err := os.Truncate(filepath.Join(dir, "big.yaml"), maxFileSize+1); err != nil { // sparse
		t.Fatal(err)
	}
	s, _, logs := startLogged(t, dir)
	waitFor(t, s, "a=10.0.0.1")
	want := fmt.Sprintf(`level=WARN msg="registry file unreadable, no good content to keep: it adds no names" file=%s err="larger than 33554432 bytes"`,
		filepath.Join(dir, "big.yaml"))
	if !strings.Contains(logs.String(), want) || strings.Contains(logs.String(), "keeping last good content") {
		t.Errorf("logs lack %s, or claim to keep content\n%s", want, logs)
	}
}

// TestSymlinksOutside: links that lead out of the registry directory are ignored with a
// warning, and followed with FollowSymlinks; links that stay inside are always followed.
func TestSymlinksOutside(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.yaml"), svcYAML("outside", "10.0.0.9"))
	writeFile(t, filepath.Join(outside, "dir", "x.yaml"), svcYAML("outside-dir", "10.0.0.8"))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".data", "in.yaml"), svcYAML("inside", "10.0.0.1"))
	mustSymlink(t, ".data/in.yaml", filepath.Join(dir, "in.yaml"))
	mustSymlink(t, filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "out.yaml"))
	mustSymlink(t, filepath.Join(outside, "dir"), filepath.Join(dir, "outdir"))
	for _, tc := range []struct {
		name   string
		follow bool
		want   []string
	}{
		{name: "ignored by default", want: []string{"inside=10.0.0.1"}},
		{name: "followed when asked", follow: true, want: []string{"inside=10.0.0.1", "outside=10.0.0.9", "outside-dir=10.0.0.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, logs := startWith(t, Options{Dir: dir, FollowSymlinks: tc.follow})
			waitFor(t, s, tc.want...)
			warned := strings.Count(logs.String(), "ignoring a symbolic link that leads out of the registry directory")
			if want := map[bool]int{false: 2, true: 0}[tc.follow]; warned != want {
				t.Errorf("%d warnings about links leading out, want %d\n%s", warned, want, logs)
			}
		})
	}
}

// TestUnreadableSubdirectorySkipped: a directory below the registry that cannot be listed (a
// volume's lost+found, owned by root, when meshdns runs as another user) is skipped and
// reported; the manifests beside it still count. The root itself must be readable.
func TestUnreadableSubdirectorySkipped(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"apps", "lost+found"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "apps", "a.yaml"), "kind: Namespace\n")
	writeFile(t, filepath.Join(dir, "lost+found", "b.yaml"), "kind: Namespace\n")
	// Root reads every directory; the test makes one unreadable as for any other user.
	denied := func(d string) ([]os.DirEntry, error) {
		if filepath.Base(d) == "lost+found" {
			return nil, &fs.PathError{Op: "open", Path: d, Err: fs.ErrPermission}
		}
		return os.ReadDir(d)
	}
	w := walker{seen: map[string]bool{}, real: dir, readDir: denied}
	if err := w.dir(dir, true); err != nil {
		t.Fatalf("walk failed for one unreadable subdirectory: %v", err)
	}
	if want := []string{filepath.Join(dir, "apps", "a.yaml")}; !slices.Equal(w.files, want) {
		t.Errorf("files %v, want %v", w.files, want)
	}
	if len(w.unreadable) != 1 || !strings.Contains(w.unreadable[0], "lost+found") {
		t.Errorf("unreadable %v, want lost+found reported", w.unreadable)
	}
	root := walker{seen: map[string]bool{}, real: dir, readDir: func(string) ([]os.DirEntry, error) {
		return nil, fs.ErrPermission
	}}
	if err := root.dir(dir, true); err == nil {
		t.Error("an unreadable registry root was not an error")
	}
}

// releaseFIFO opens a writer on the FIFO at path when the test ends, which frees a reader that
// waits for one, so that a failing test does not leave it blocked.
func releaseFIFO(t *testing.T, path string) {
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}

// TestReadManifestRefusesFIFO: a manifest swapped for a FIFO between the walk and the read is
// refused at once: opening it must not wait for a writer, which would stop the watch loop.
func TestReadManifestRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.yaml")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	releaseFIFO(t, path)
	done := make(chan error, 1)
	go func() {
		_, err := readManifest(path)
		done <- err
	}()
	select {
	case err := <-done:
		if want := path + " is a FIFO (named pipe), not a regular file"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("readManifest = %v, want an error saying %q", err, want)
		}
	case <-time.After(changeBound):
		t.Fatalf("readManifest(FIFO) still blocked after %v", changeBound)
	}
}

// TestFileReplacedByFIFO: a manifest replaced by a FIFO is reported, its last good content
// stays in effect, and the source still shuts down.
func TestFileReplacedByFIFO(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	writeFile(t, path, svcYAML("a", "10.0.0.1"))
	logs := &testutil.SyncBuffer{}
	s := New(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "a=10.0.0.1")
	mustRemove(t, path)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	releaseFIFO(t, path)
	writeFile(t, filepath.Join(dir, "zz.yaml"), svcYAML("zz", "10.0.1.1")) // shows the rescan ran
	waitFor(t, s, "a=10.0.0.1", "zz=10.0.1.1")
	want := fmt.Sprintf(`msg="registry file unreadable, keeping last good content" file=%s err="%s is a FIFO (named pipe), not a regular file"`, path, path)
	if !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %s\n%s", want, logs)
	}
	cancel()
	stopped := make(chan struct{})
	go func() { s.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(changeBound):
		t.Fatalf("the source did not stop within %v of its context's end", changeBound)
	}
}
