package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// binaryPath is where the image holds meshdns; deploy/meshdns.yaml runs it from there.
	binaryPath = "/meshdns"
	// agentPath holds meshdns built for agents (-tags nokube), which agent sidecars run
	// (internal/inject.AgentBinary, deploy/agent-example.yaml).
	agentPath = "/meshdns-agent"
	// user is distroless's nonroot, which deploy/meshdns.yaml's runAsUser names as well.
	user = "65532:65532"
)

// tag is the image's name and version as a reference, e.g. meshdns:v1.2.0.
func (o options) tag() (name.Tag, error) {
	return name.NewTag(o.name + ":" + o.version)
}

// annotations are the OCI labels of every image, and the annotations of the index.
func (o options) annotations() map[string]string {
	a := map[string]string{
		"org.opencontainers.image.created": o.created.Format("2006-01-02T15:04:05Z"),
		"org.opencontainers.image.source":  o.source,
		"org.opencontainers.image.title":   "meshdns",
		"org.opencontainers.image.version": o.version,
	}
	if o.revision != "" {
		a["org.opencontainers.image.revision"] = o.revision
	}
	return a
}

// index builds the multi-platform index of one image per binary.
func (o options) index() (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range o.binaries {
		img, err := o.image(b)
		if err != nil {
			return nil, err
		}
		plat := b.platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	return mutate.Annotations(idx, o.annotations()).(v1.ImageIndex), nil
}

// image builds the image of one binary: a single layer on an empty base.
func (o options) image(b platformBinary) (v1.Image, error) {
	layer, err := o.layer(b)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: o.created},
			CreatedBy: fmt.Sprintf("meshdns %s at %s and %s", o.version, binaryPath, agentPath),
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: o.created}
	cf.OS, cf.Architecture = b.platform.OS, b.platform.Architecture
	cf.Config = v1.Config{
		Entrypoint: []string{binaryPath},
		User:       user,
		WorkingDir: "/",
		Labels:     o.annotations(),
	}
	return mutate.ConfigFile(img, cf)
}

// layer is a tar of the two files, owned by root and not writable by the user that runs them.
func (o options) layer(b platformBinary) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, path string }{{binaryPath, b.path}, {agentPath, b.agent}} {
		data, err := b.read(f.path)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.name[1:],
			Mode:     0o755,
			Size:     int64(len(data)),
			ModTime:  o.created,
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	tarData := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression), tarball.WithCompressedCaching)
}
