package vip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/meshdns/meshdns/internal/safefile"
)

// StateFile is the name of the state file in --state-dir.
const StateFile = "vips.json"

// MaxStateBytes is the largest state file Load reads; a larger one is set aside as unusable.
// It holds maxStateRecords records of maxRecordBytes each: the state of a full /16 pool and
// as many hosts in a large IPv6 pool, with the longest names, is far smaller. Without a
// bound, a state file that is a symlink to an endless file is read until memory runs out.
const MaxStateBytes = maxStateRecords * maxRecordBytes // 256 MiB

const (
	// maxStateRecords: 65,536 hosts (a /16's worth), each with a lease in both families and
	// as many freed addresses in quarantine.
	maxStateRecords = 4 << 16
	// maxRecordBytes bounds one indented record: a 63-byte namespace, a 253-byte host, an
	// IPv6 address and a time with nanoseconds and zone take about 500 bytes.
	maxRecordBytes = 1 << 10
)

// badSuffixTime is how the clock names a set-aside state file (vips.json.bad-<time>): UTC,
// sortable, and nothing a shell or a file system minds.
const badSuffixTime = "20060102T150405Z"

// FileStoreOptions configure a FileStore.
type FileStoreOptions struct {
	// Now is the clock that names set-aside files and failed saves; nil means time.Now.
	Now     func() time.Time
	Metrics *StoreMetrics // may be nil
}

// FileStore keeps State in dir/vips.json for the manifest-directory mode. Save and Load are
// called by one goroutine; Problems may be called from any.
type FileStore struct {
	path    string
	now     func() time.Time
	metrics *StoreMetrics

	mu       sync.Mutex
	setAside *SetAsideError // what Load set aside, if anything
	saveErr  error          // why the latest Save failed, nil when it succeeded
	failing  time.Time      // since when saves fail
}

// NewFileStore returns a store for dir; it does no I/O.
func NewFileStore(dir string, o FileStoreOptions) *FileStore {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &FileStore{path: filepath.Join(dir, StateFile), now: o.Now, metrics: o.Metrics}
}

// Path is the state file.
func (s *FileStore) Path() string { return s.path }

// SetAsideError is a state file whose content Load could not use (corrupt, of another
// version, too large): it was renamed to Kept, so nothing the caller saves next replaces it.
// Starting from an empty state is then safe for the file; docs/vips.md says what it costs.
type SetAsideError struct {
	Path, Kept string
	Err        error // what is wrong with the content
}

func (e *SetAsideError) Error() string {
	return fmt.Sprintf("VIP state %s: %v; kept as %s", e.Path, e.Err, e.Kept)
}

func (e *SetAsideError) Unwrap() error { return e.Err }

// Load reads the state file. A missing file is an empty State and no error. A file whose
// content cannot be used is set aside (*SetAsideError, with an empty State). Any other error
// (not a regular file, unreadable, or the rename failing) leaves the file where it is: it may
// hold VIPs that a restart must not lose, so the caller must not start over it.
func (s *FileStore) Load() (State, error) {
	b, err := readState(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return State{}, nil
	case errors.Is(err, errTooLarge):
		return State{}, s.putAside(err)
	case err != nil:
		return State{}, err
	}
	st, err := decodeState(b)
	if err != nil {
		return State{}, s.putAside(err)
	}
	return st, nil
}

var errTooLarge = fmt.Errorf("larger than %d bytes, the most a state can take", MaxStateBytes)

// readState reads a regular file of at most MaxStateBytes, without waiting on a FIFO or
// reading a device (safefile).
func readState(path string) ([]byte, error) {
	b, err := safefile.ReadRegular(path, MaxStateBytes)
	switch {
	case errors.Is(err, safefile.ErrTooLarge):
		return nil, errTooLarge
	case errors.Is(err, safefile.ErrNotRegular):
		return nil, fmt.Errorf("VIP state %w: remove it or keep the state elsewhere", err)
	case err != nil:
		return nil, fmt.Errorf("VIP state %s: %w", path, err)
	}
	return b, nil
}

// decodeState parses the state file's content; the error says what is wrong with it.
func decodeState(b []byte) (State, error) {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("corrupt: %w", err)
	}
	switch {
	case st.Version > StateVersion:
		return State{}, fmt.Errorf("version %d, want %d: written by a newer meshdns", st.Version, StateVersion)
	case st.Version != StateVersion:
		return State{}, fmt.Errorf("version %d, want %d", st.Version, StateVersion)
	}
	return st, nil
}

// putAside renames the unusable state file to vips.json.bad-<time>, never over an earlier
// copy, and remembers it for Problems.
func (s *FileStore) putAside(problem error) error {
	base := s.path + ".bad-" + s.now().UTC().Format(badSuffixTime)
	kept := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(kept); err != nil {
			break
		}
		kept = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(s.path, kept); err != nil {
		return fmt.Errorf("VIP state %s: %v, and it cannot be set aside: %w", s.path, problem, err)
	}
	if err := safefile.SyncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("VIP state %s: %v; set aside as %s, but: %w", s.path, problem, kept, err)
	}
	e := &SetAsideError{Path: s.path, Kept: kept, Err: problem}
	s.mu.Lock()
	s.setAside = e
	s.mu.Unlock()
	return e
}

// Save replaces the state file atomically: a crash leaves the old file or the new one,
// never a torn one. The data is synced before the rename and the directory after it, so
// the new name survives a power cut too. The outcome is kept for the metrics and Problems.
func (s *FileStore) Save(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = safefile.WriteAtomic(s.path, append(b, '\n'))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && s.saveErr == nil {
		s.failing = s.now().UTC()
	}
	s.saveErr = err
	s.metrics.saved(err)
	if err != nil {
		return fmt.Errorf("VIP state %s: %w", s.path, err)
	}
	return nil
}

// Problems describes, one line each, what an operator should know about the state file: a
// file set aside at start, and saves failing now. Nothing when all is well.
func (s *FileStore) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if e := s.setAside; e != nil {
		out = append(out, fmt.Sprintf("VIP state %s was unusable at start: %v; kept as %s; "+
			"VIPs started from an empty state", e.Path, e.Err, e.Kept))
	}
	if s.saveErr != nil {
		out = append(out, fmt.Sprintf("VIP state %s not saved since %s: %v; VIPs keep serving, "+
			"a restart may move them", s.path, s.failing.Format(time.RFC3339), s.saveErr))
	}
	return out
}
