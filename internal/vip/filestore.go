package vip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// StateFile is the name of the state file in --state-dir.
const StateFile = "vips.json"

// FileStore keeps State in dir/vips.json for the manifest-directory mode.
type FileStore struct {
	path string
}

// NewFileStore returns a store for dir; it does no I/O.
func NewFileStore(dir string) *FileStore {
	return &FileStore{path: filepath.Join(dir, StateFile)}
}

// Path is the state file.
func (s *FileStore) Path() string { return s.path }

// Load reads the state file. A missing file is an empty State; an unreadable or corrupt one
// is an error naming the file, with an empty State, so the caller can report it and go on.
func (s *FileStore) Load() (State, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("VIP state %s: %w", s.path, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("VIP state %s: corrupt: %w", s.path, err)
	}
	if st.Version != StateVersion {
		return State{}, fmt.Errorf("VIP state %s: version %d, want %d", s.path, st.Version, StateVersion)
	}
	return st, nil
}

// Save replaces the state file atomically: a crash leaves the old file or the new one,
// never a torn one. The data is synced before the rename and the directory after it, so
// the new name survives a power cut too.
func (s *FileStore) Save(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("VIP state %s: %w", s.path, err)
	}
	if err := writeAtomic(s.path, append(b, '\n')); err != nil {
		return fmt.Errorf("VIP state %s: %w", s.path, err)
	}
	return nil
}

func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	// Readable by operators and tools; it holds nothing secret.
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
