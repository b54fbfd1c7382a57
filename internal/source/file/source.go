package file

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/internal/manifest"
	"github.com/meshdns/meshdns/internal/model"
)

// DefaultDebounce is how long filesystem events are collected before one rescan.
const DefaultDebounce = 100 * time.Millisecond

// Options configures a Source.
type Options struct {
	Dir string
	// FollowSymlinks follows links that lead out of Dir (--registry-follow-symlinks); off,
	// they are ignored with a warning. Links that stay inside are always followed.
	FollowSymlinks bool
	Logger         *slog.Logger // nil => discard
	// ParseErrors, when set, counts file parses that failed (once per distinct bad content).
	ParseErrors prometheus.Counter
	// Debounce coalesces filesystem events within this window into one rescan; 0 => DefaultDebounce.
	Debounce time.Duration
}

// Source serves the merged content of a manifest directory and signals its changes.
type Source struct {
	dir            string
	followSymlinks bool
	log            *slog.Logger
	parseErrors    prometheus.Counter
	debounce       time.Duration

	snap    atomic.Pointer[model.Snapshot]
	changed chan struct{}
	started atomic.Bool
	wg      sync.WaitGroup

	// Owned by Start, then by the watch goroutine alone.
	files      map[string]*fileState
	watcher    *fsnotify.Watcher
	watched    map[string]bool
	outside    map[string]bool // links leading out of dir, already warned about
	unreadable map[string]bool // subdirectories that cannot be listed, already warned about
	// parent is the directory holding dir, watched so that dir removed and re-created is seen
	// (its own watch ends with it); "" when dir has none.
	parent string
}

// fileState is what is known about one file.
type fileState struct {
	sum     [sha256.Size]byte // of the content last read, good or bad: unchanged files are not re-parsed
	good    model.Snapshot    // last content that parsed
	hasGood bool
}

// New returns a Source for opts.Dir. It does no I/O.
func New(opts Options) *Source {
	s := &Source{
		dir:            filepath.Clean(opts.Dir),
		followSymlinks: opts.FollowSymlinks,
		log:            opts.Logger,
		parseErrors:    opts.ParseErrors,
		debounce:       opts.Debounce,
		changed:        make(chan struct{}, 1),
		files:          map[string]*fileState{},
		watched:        map[string]bool{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.debounce <= 0 {
		s.debounce = DefaultDebounce
	}
	s.snap.Store(&model.Snapshot{})
	return s
}

// Start scans the directory once, synchronously, then watches it until ctx is cancelled.
// Bad files are logged and counted, never fatal; only an unusable Dir (or a failure to
// set up the watch) is an error.
func (s *Source) Start(ctx context.Context) error {
	if err := CheckDir(s.dir); err != nil {
		return err
	}
	if !s.started.CompareAndSwap(false, true) {
		return fmt.Errorf("registry %s: already started", s.dir)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("registry %s: watch: %w", s.dir, err)
	}
	s.watcher = w
	if parent := filepath.Dir(s.dir); parent != s.dir {
		if err := w.Add(parent); err != nil {
			// Only the re-creation of dir is missed without it; everything else is watched.
			s.log.Warn("registry: cannot watch the parent directory; a re-created registry is not seen", "dir", parent, "err", err)
		} else {
			s.parent = parent
		}
	}
	// rescan adds the watches before reading files, so no change after this point is missed.
	// A registry that cannot be walked at start is an error, not an empty registry.
	if err := s.rescan(); err != nil {
		w.Close()
		return err
	}
	s.wg.Add(1)
	go s.run(ctx)
	return nil
}

// Wait blocks until the watch goroutine has exited; it returns at once if Start never ran it.
func (s *Source) Wait() { s.wg.Wait() }

// Snapshot returns the merged last good content of every file. It is shared: do not mutate it.
func (s *Source) Snapshot() model.Snapshot { return *s.snap.Load() }

// Changed receives a value after every rescan that changed the snapshot.
func (s *Source) Changed() <-chan struct{} { return s.changed }

// run is the watch loop: the first event arms a timer, later events within the window ride
// along, and the timer's expiry rescans the whole tree.
func (s *Source) run(ctx context.Context) {
	defer s.wg.Done()
	defer s.watcher.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-s.watcher.Events:
			if !ok {
				return
			}
			ev.Name = filepath.Clean(ev.Name)
			if !s.concerns(ev) {
				continue
			}
			s.forget(ev)
		case err, ok := <-s.watcher.Errors:
			if !ok {
				return
			}
			// Includes queue overflow: events were lost, so a full rescan is the fix.
			s.log.Warn("registry watch error", "dir", s.dir, "err", err)
		case <-timer.C:
			armed = false
			if err := s.rescan(); err != nil {
				s.log.Warn("registry scan failed, keeping previous content", "dir", s.dir, "err", err)
			}
			continue
		}
		if !armed {
			timer.Reset(s.debounce)
			armed = true
		}
	}
}

// concerns reports whether ev is about the registry: the parent's watch reports on its
// other entries too.
func (s *Source) concerns(ev fsnotify.Event) bool {
	return s.parent == "" || ev.Name == s.dir || filepath.Dir(ev.Name) != s.parent
}

// forget drops a watched directory that was removed or renamed: the kernel has dropped its
// watch, and a directory re-created under the same name must be watched again by the rescan.
func (s *Source) forget(ev fsnotify.Event) {
	if (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) && s.watched[ev.Name] {
		_ = s.watcher.Remove(ev.Name) // usually already gone
		delete(s.watched, ev.Name)
	}
}

// rescan re-reads the tree: good parses replace a file's content, bad ones keep the last good
// content, vanished files are dropped. A failed walk keeps everything as it was.
func (s *Source) rescan() error {
	paths, err := s.walkAndWatch()
	if err != nil {
		return err
	}
	files := make(map[string]*fileState, len(paths))
	for _, p := range paths {
		if st := s.load(p); st != nil {
			files[p] = st
		}
	}
	s.files = files
	s.publish(paths)
	return nil
}

// walkAndWatch lists the manifest files and watches every directory. When it finds new
// directories it walks again, since files created there before the watch began sent no event.
func (s *Source) walkAndWatch() ([]string, error) {
	const maxWalks = 4
	var found tree
	for range maxWalks {
		var err error
		if found, err = walkTree(s.dir, s.followSymlinks); err != nil {
			return nil, err
		}
		if !s.watchDirs(found.dirs) {
			break
		}
	}
	s.outside = s.warnOnce(s.outside, found.outside,
		"registry: ignoring a symbolic link that leads out of the registry directory (see --registry-follow-symlinks)")
	s.unreadable = s.warnOnce(s.unreadable, found.unreadable,
		"registry: skipping a directory that cannot be read; its manifests add no names")
	return found.files, nil
}

// warnOnce logs msg once for each of items not in warned, and returns the items as the new
// warned set: a problem is reported once for as long as it lasts, and again if it returns.
func (s *Source) warnOnce(warned map[string]bool, items []string, msg string) map[string]bool {
	now := make(map[string]bool, len(items))
	for _, it := range items {
		now[it] = true
		if !warned[it] {
			s.log.Warn(msg, "path", it)
		}
	}
	return now
}

// watchDirs makes the watched set equal to dirs and reports whether it added any.
func (s *Source) watchDirs(dirs []string) (added bool) {
	want := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		want[d] = true
		if s.watched[d] {
			continue
		}
		if err := s.watcher.Add(d); err != nil {
			s.log.Warn("registry: cannot watch directory", "dir", d, "err", err)
			continue
		}
		s.watched[d] = true
		added = true
	}
	for d := range s.watched {
		if !want[d] {
			if d != s.parent { // also reached by a link: keep the watch that sees dir re-created
				_ = s.watcher.Remove(d)
			}
			delete(s.watched, d)
		}
	}
	return added
}

// load returns the new state of file p, or nil when it is gone.
func (s *Source) load(p string) *fileState {
	prev := s.files[p]
	data, err := readManifest(p)
	if errors.Is(err, errGone) {
		return nil
	}
	if err != nil {
		s.log.Warn("registry file unreadable, "+kept(prev), "file", p, "err", err)
		return prev
	}
	sum := sha256.Sum256(data)
	if prev != nil && prev.sum == sum {
		return prev
	}
	snap, err := manifest.ParseFile(p, data, s.log)
	if err != nil {
		s.log.Warn("registry file rejected, "+kept(prev), "err", err)
		if s.parseErrors != nil {
			s.parseErrors.Inc()
		}
		st := &fileState{sum: sum}
		if prev != nil {
			st.good, st.hasGood = prev.good, prev.hasGood
		}
		return st
	}
	return &fileState{sum: sum, good: snap, hasGood: true}
}

// kept says what stays in effect of a file that failed to load: its last good content, if
// it ever had one since start.
func kept(prev *fileState) string {
	if prev != nil && prev.hasGood {
		return "keeping last good content"
	}
	return "no good content to keep: it adds no names"
}

// publish merges the files in path order and signals when the result differs.
func (s *Source) publish(paths []string) {
	var merged model.Snapshot
	for _, p := range paths {
		if st := s.files[p]; st != nil && st.hasGood {
			merged.Append(st.good)
		}
	}
	clip(&merged)
	if snapshotsEqual(s.snap.Load(), &merged) {
		return
	}
	s.snap.Store(&merged)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}
