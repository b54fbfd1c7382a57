package file

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/meshdns/meshdns/internal/model"
)

// maxFileSize bounds what one manifest may make us hold in memory.
const maxFileSize = 32 << 20

// errGone means a file disappeared between the walk and the read.
var errGone = errors.New("file gone")

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("registry %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("registry %s: not a directory", dir)
	}
	return nil
}

func isManifest(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// walker collects manifest files and the directories to watch.
type walker struct {
	files []string
	dirs  []string
	seen  map[string]bool // real paths of visited directories, against symlink loops
}

// walkTree lists manifest files below root, sorted by path, and every directory visited.
// Hidden names are skipped (editor swap files, ConfigMap ..data internals); symlinks with
// visible names are followed, which is how ConfigMap mounts expose their files.
func walkTree(root string) (files, dirs []string, err error) {
	w := walker{seen: map[string]bool{}}
	if err := w.dir(root, true); err != nil {
		return nil, nil, err
	}
	slices.Sort(w.files)
	return w.files, w.dirs, nil
}

func (w *walker) dir(dir string, isRoot bool) error {
	real, err := filepath.EvalSymlinks(dir)
	if err == nil && w.seen[real] {
		return nil
	}
	var entries []os.DirEntry
	if err == nil {
		entries, err = os.ReadDir(dir)
	}
	if err != nil {
		if !isRoot && errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we walked; its removal event brings another rescan
		}
		return fmt.Errorf("registry %s: %w", dir, err)
	}
	w.seen[real] = true
	w.dirs = append(w.dirs, dir)
	for _, e := range entries {
		if err := w.entry(dir, e); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) entry(dir string, e os.DirEntry) error {
	name := e.Name()
	if strings.HasPrefix(name, ".") {
		return nil
	}
	p := filepath.Join(dir, name)
	mode := e.Type()
	if mode&fs.ModeSymlink != 0 {
		fi, err := os.Stat(p)
		if err != nil {
			return nil // dangling: a ConfigMap swap in progress, or a broken link
		}
		mode = fi.Mode().Type()
	}
	switch {
	case mode.IsDir():
		return w.dir(p, false)
	case mode.IsRegular() && isManifest(name):
		w.files = append(w.files, p)
	}
	return nil
}

// readManifest reads a file, refusing ones too large to be a manifest.
func readManifest(p string) ([]byte, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errGone
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return data, nil
}

// clip caps every slice so that a reader appending to the shared snapshot reallocates
// instead of writing into memory another reader sees.
func clip(s *model.Snapshot) {
	s.Services = slices.Clip(s.Services)
	s.EndpointSlices = slices.Clip(s.EndpointSlices)
	s.Pods = slices.Clip(s.Pods)
	s.Namespaces = slices.Clip(s.Namespaces)
	s.ServiceEntries = slices.Clip(s.ServiceEntries)
	s.WorkloadEntries = slices.Clip(s.WorkloadEntries)
}

// snapshotsEqual compares content; a rescan that only touched comments or unrelated files
// must not make the builder rebuild.
func snapshotsEqual(a, b *model.Snapshot) bool { return reflect.DeepEqual(a, b) }
