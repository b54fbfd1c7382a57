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
	"github.com/meshdns/meshdns/internal/safefile"
)

// maxFileSize bounds what one manifest may make us hold in memory.
const maxFileSize = 32 << 20

// errGone means a file disappeared between the walk and the read.
var errGone = errors.New("file gone")

var errTooLarge = fmt.Errorf("larger than %d bytes", maxFileSize)

// CheckDir reports whether dir is a directory this process can list, as the registry must be.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("registry %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("registry %s: not a directory", dir)
	}
	f, err := os.Open(dir)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("registry %s: %w", dir, err)
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
	// real is the real path of the root; links resolving outside it are not followed,
	// unless followOutside, and are listed in outside instead.
	real          string
	followOutside bool
	outside       []string
	unreadable    []string // directories below the root that cannot be listed, with why
	readDir       func(string) ([]os.DirEntry, error)
}

// tree is what one walk found.
type tree struct {
	files   []string // manifest files, sorted by path
	dirs    []string // every directory visited
	outside []string // links leading out of the root, not followed
	// unreadable are the directories below the root that could not be listed, each with the
	// reason: skipped, so that one of them (a volume's lost+found) does not hide the rest.
	unreadable []string
}

// walkTree lists manifest files below root and every directory visited. Hidden names are
// skipped (editor swap files, ConfigMap ..data internals); symlinks with visible names are
// followed, which is how ConfigMap mounts expose their files, as long as they stay inside
// root (or followOutside is set).
func walkTree(root string, followOutside bool) (tree, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return tree{}, fmt.Errorf("registry %s: %w", root, err)
	}
	w := walker{seen: map[string]bool{}, real: real, followOutside: followOutside, readDir: os.ReadDir}
	if err := w.dir(root, true); err != nil {
		return tree{}, err
	}
	slices.Sort(w.files)
	return tree{files: w.files, dirs: w.dirs, outside: w.outside, unreadable: w.unreadable}, nil
}

func (w *walker) dir(dir string, isRoot bool) error {
	real, err := filepath.EvalSymlinks(dir)
	if err == nil && w.seen[real] {
		return nil
	}
	var entries []os.DirEntry
	if err == nil {
		entries, err = w.readDir(dir)
	}
	switch {
	case err == nil:
	case isRoot:
		return fmt.Errorf("registry %s: %w", dir, err)
	case errors.Is(err, fs.ErrNotExist):
		return nil // removed while we walked; its removal event brings another rescan
	default:
		w.unreadable = append(w.unreadable, err.Error())
		return nil
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
		if errors.Is(err, fs.ErrNotExist) {
			return nil // dangling: a ConfigMap swap in progress, or a broken link
		}
		if err != nil {
			// A loop or no permission: listed, so that reading it fails, says why and keeps
			// the file's last good content.
			if isManifest(name) {
				w.files = append(w.files, p)
			}
			return nil
		}
		if !w.followOutside && !w.inside(p) {
			w.outside = append(w.outside, p)
			return nil
		}
		mode = fi.Mode().Type()
	}
	switch {
	case mode.IsDir():
		return w.dir(p, false)
	case isManifest(name):
		// Not only regular files: a manifest turned into a FIFO or a device is listed, so that
		// reading it refuses it, says why and keeps its last good content.
		w.files = append(w.files, p)
	}
	return nil
}

// inside reports whether link p resolves to a path below the root.
func (w *walker) inside(p string) bool {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(w.real, real)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// readManifest reads a file, refusing what is not a regular file (it may have been swapped
// for a FIFO since the walk) and what is too large to be a manifest.
func readManifest(p string) ([]byte, error) {
	data, err := safefile.ReadRegular(p, maxFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errGone
	case errors.Is(err, safefile.ErrTooLarge):
		return nil, errTooLarge // the log line names the file
	}
	return data, err
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
