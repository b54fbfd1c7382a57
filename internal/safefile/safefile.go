package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

var (
	// ErrNotRegular is wrapped by the error for a path that is not a regular file after
	// following symlinks: a directory, a FIFO, a socket, a device.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is wrapped by the error for a file longer than the limit.
	ErrTooLarge = errors.New("larger than the limit")
)

// refusal is a file ReadRegular refused: its text names the path, Unwrap gives the kind.
type refusal struct {
	msg  string
	kind error
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

// ReadRegular returns the content of the regular file at path, of at most limit bytes. A path
// that is not a regular file is refused at once (ErrNotRegular) and a longer file is refused
// (ErrTooLarge) without reading more than limit+1 bytes of it. Other errors are the
// *fs.PathError of the failing call, so errors.Is(err, fs.ErrNotExist) works.
func ReadRegular(path string, limit int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer. It has no effect on the reads of
	// a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ENXIO) { // a socket, or a device without a driver
		return nil, describe(path, err)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat() // of what was opened: the name may have been swapped since
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	if fi.Size() > limit {
		return nil, tooLarge(path, limit) // without reading it
	}
	// The file may grow while it is read: never take more than the limit.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(path, limit)
	}
	return b, nil
}

// describe names what path is when opening it failed with openErr.
func describe(path string, openErr error) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().IsRegular() {
		return openErr
	}
	return notRegular(path, fi.Mode())
}

func notRegular(path string, m fs.FileMode) error {
	name := path
	if target, err := filepath.EvalSymlinks(path); err == nil && target != path {
		name = fmt.Sprintf("%s (a symlink to %s)", path, target)
	}
	return &refusal{msg: fmt.Sprintf("%s is %s, %v", name, kind(m), ErrNotRegular), kind: ErrNotRegular}
}

func tooLarge(path string, limit int64) error {
	return &refusal{msg: fmt.Sprintf("%s is larger than %d bytes", path, limit), kind: ErrTooLarge}
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "of type " + m.Type().String()
}
