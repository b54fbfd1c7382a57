package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// refNameAnnotation names an entry of an OCI layout's index.json; `skopeo copy
// oci-archive:FILE:NAME` picks the entry by it.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// write writes the tarball under a temporary name and renames it into place, so that a failed
// run never leaves part of an image under the name asked for. It returns the digest to know
// the image by: the index's (oci), which a registry keeps when the index is copied as it is,
// or the image ID (docker), which `docker load` and `docker images` show.
func write(o options) (v1.Hash, error) {
	f, err := os.CreateTemp(filepath.Dir(o.out), "."+filepath.Base(o.out)+".tmp*")
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return v1.Hash{}, fmt.Errorf("cannot write %s: %w", o.out, pe.Err)
	}
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.Remove(f.Name())
	var digest v1.Hash
	if o.format == "docker" {
		digest, err = writeDocker(o, f)
	} else {
		digest, err = writeOCI(o, f)
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), o.out)
	}
	return digest, err
}

// writeDocker writes the image of the one binary in the format of `docker save`.
func writeDocker(o options, w io.Writer) (v1.Hash, error) {
	img, err := o.image(o.binaries[0])
	if err != nil {
		return v1.Hash{}, err
	}
	tag, err := o.tag()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := tarball.Write(tag, img, w); err != nil {
		return v1.Hash{}, fmt.Errorf("writing %s: %w", o.out, err)
	}
	return img.ConfigName()
}

// writeOCI writes an OCI image layout whose index.json names the multi-platform index by the
// version, as a tar.
func writeOCI(o options, w io.Writer) (v1.Hash, error) {
	idx, err := o.index()
	if err != nil {
		return v1.Hash{}, err
	}
	dir, err := os.MkdirTemp("", "meshdns-image-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: o.version})); err != nil {
		return v1.Hash{}, err
	}
	if err := tarDir(dir, o.created, w); err != nil {
		return v1.Hash{}, fmt.Errorf("writing %s: %w", o.out, err)
	}
	return idx.Digest()
}

// tarDir writes the files below dir as a tar in lexical order, with the same owner, modes and
// time for each, so that the tar depends on the files' contents and names alone.
func tarDir(dir string, mtime time.Time, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatUSTAR}
		if d.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		}
		return tarFile(tw, hdr, path)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func tarFile(tw *tar.Writer, hdr *tar.Header, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
