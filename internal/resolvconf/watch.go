package resolvconf

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce lets a burst of writes (an editor, a DHCP client) settle before re-reading.
const watchDebounce = 100 * time.Millisecond

// Watcher re-reads a resolv.conf when it changes and reports the new content.
type Watcher struct {
	path     string
	onChange func(Config)
	log      *slog.Logger
	w        *fsnotify.Watcher
	done     chan struct{}
	// names are the base names whose events matter: the path's, its link target's and those
	// of the directories holding them (seen from their parents, when they are re-created).
	names map[string]bool
	dirs  map[string]bool // directories to keep watched: the path's and its link target's
}

// Watch starts watching path; onChange is called from the watcher's goroutine with every
// content that parses and differs from the last one (last is what the caller already uses).
// Directories are watched, not the file, so replacements by rename are seen; when path is a
// symbolic link (systemd-resolved, NetworkManager), its target's directory is watched too.
// Stop with ctx; Wait returns when the goroutine has ended.
func Watch(ctx context.Context, path string, last Config, onChange func(Config), log *slog.Logger) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &Watcher{path: path, onChange: onChange, log: log, w: fw, done: make(chan struct{}),
		names: map[string]bool{filepath.Base(path): true, "..data": true}, dirs: map[string]bool{}}
	if err := fw.Add(filepath.Dir(path)); err != nil {
		fw.Close()
		return nil, err
	}
	w.watchDir(filepath.Dir(path))
	w.followLink()
	go w.run(ctx, last)
	return w, nil
}

// followLink watches the directory of the file path currently resolves to.
func (w *Watcher) followLink() {
	target, err := filepath.EvalSymlinks(w.path)
	if err != nil || target == w.path {
		return
	}
	w.names[filepath.Base(target)] = true
	w.watchDir(filepath.Dir(target))
}

// watchDir watches dir and its parent: a directory removed loses its watch, and its parent
// sees it made again (systemd-resolved re-creates /run/systemd/resolve when it restarts).
func (w *Watcher) watchDir(dir string) {
	if !w.dirs[dir] {
		w.dirs[dir] = true
		w.names[filepath.Base(dir)] = true
		if parent := filepath.Dir(dir); parent != dir {
			if err := w.w.Add(parent); err != nil {
				w.log.Warn("not watching the parent of resolv.conf's directory; a re-created one is not seen", "dir", parent, "err", err)
			}
		}
	}
	if err := w.w.Add(dir); err != nil {
		w.log.Warn("not watching a directory of resolv.conf", "dir", dir, "err", err)
	}
}

// rewatch watches again the directories that were removed and made again; adding a watch
// that exists changes nothing.
func (w *Watcher) rewatch() {
	for dir := range w.dirs {
		if _, err := os.Stat(dir); err == nil {
			w.watchDir(dir)
		}
	}
}

// Wait blocks until the watcher has stopped.
func (w *Watcher) Wait() { <-w.done }

func (w *Watcher) run(ctx context.Context, last Config) {
	defer close(w.done)
	defer w.w.Close()
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if w.names[filepath.Base(ev.Name)] {
				settle = time.After(watchDebounce)
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching resolv.conf", "path", w.path, "err", err)
		case <-settle:
			settle = nil
			w.rewatch()
			w.followLink() // the link may point elsewhere now
			last = w.reload(last)
		}
	}
}

func (w *Watcher) reload(last Config) Config {
	c, err := ParseFile(w.path)
	if err != nil {
		w.log.Warn("re-reading resolv.conf failed; keeping the previous settings", "err", err)
		return last
	}
	if reflect.DeepEqual(c, last) {
		return last
	}
	w.onChange(c)
	return c
}
