package resolvconf

import (
	"context"
	"log/slog"
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
}

// Watch starts watching path; onChange is called from the watcher's goroutine with every
// content that parses and differs from the last one (last is what the caller already uses).
// The directory is watched, not the file, so replacements by rename are seen. Stop with ctx;
// Wait returns when the goroutine has ended.
func Watch(ctx context.Context, path string, last Config, onChange func(Config), log *slog.Logger) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := fw.Add(filepath.Dir(path)); err != nil {
		fw.Close()
		return nil, err
	}
	w := &Watcher{path: path, onChange: onChange, log: log, w: fw, done: make(chan struct{})}
	go w.run(ctx, last)
	return w, nil
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
			if filepath.Base(ev.Name) == filepath.Base(w.path) || filepath.Base(ev.Name) == "..data" {
				settle = time.After(watchDebounce)
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching resolv.conf", "path", w.path, "err", err)
		case <-settle:
			settle = nil
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
