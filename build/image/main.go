// Command image writes the meshdns container image as a tarball, with no container daemon and
// no registry: an OCI image layout holding an index of one image per platform, or a tarball
// for `docker load` of one platform. Each image is one layer holding the static binaries: the
// full build at /meshdns, run as the entrypoint by user 65532:65532, and the build for agents
// (-tags nokube) at /meshdns-agent, with no shell and nothing else.
//
// The output depends only on the binaries and the flags: every timestamp is -created, and
// platforms, files and tar entries are in a fixed order, so two runs on the same commit give
// the same bytes and the same digests. scripts/image.sh builds the binaries and runs this.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// exitUsage is the exit code for bad flags; a binary that cannot go in the image exits 1.
const exitUsage = 2

// options are the parsed flags.
type options struct {
	binaries []platformBinary // one per platform, sorted by platform
	agents   []platformBinary // the builds for agents, one per platform of binaries
	version  string
	revision string
	source   string
	created  time.Time
	format   string
	name     string
	out      string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "image:", oneLine(err.Error()))
		return exitUsage
	}
	digest, err := write(o)
	if err != nil {
		fmt.Fprintln(stderr, "image:", oneLine(err.Error()))
		return 1
	}
	fmt.Fprintln(stdout, o.out, digest)
	return 0
}

func parseOptions(args []string, stdout io.Writer) (options, error) {
	o := options{created: time.Unix(0, 0).UTC()}
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func("binary", "`os/arch=PATH`: the static meshdns binary for a platform (repeat per platform)", func(s string) error {
		b, err := parseBinary(s)
		if err == nil {
			o.binaries = append(o.binaries, b)
		}
		return err
	})
	fs.Func("agent-binary", "`os/arch=PATH`: the static meshdns built with -tags nokube for a platform, /meshdns-agent (one per -binary)", func(s string) error {
		b, err := parseBinary(s)
		if err == nil {
			o.agents = append(o.agents, b)
		}
		return err
	})
	fs.StringVar(&o.version, "version", "", "the version: the image's tag and its org.opencontainers.image.version label (required)")
	fs.StringVar(&o.revision, "revision", "", "the source commit, for the org.opencontainers.image.revision label")
	fs.StringVar(&o.source, "source", "https://github.com/meshdns/meshdns", "the source repository, for the org.opencontainers.image.source label")
	fs.Func("created", "`seconds` since the Unix epoch: every timestamp in the image (default 0)", func(s string) error {
		t, err := parseEpoch(s)
		o.created = t
		return err
	})
	fs.StringVar(&o.format, "format", "oci", "`oci` (an OCI image layout, every platform) or docker (docker load, one platform)")
	fs.StringVar(&o.name, "name", "meshdns", "the image name the tarball tags")
	fs.StringVar(&o.out, "o", "", "the `file` to write (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch {
	case o.out == "":
		return errors.New("-o FILE is required")
	case o.version == "":
		return errors.New("-version is required")
	case len(o.binaries) == 0:
		return errors.New("-binary os/arch=PATH is required")
	case o.format != "oci" && o.format != "docker":
		return fmt.Errorf("-format %q: want oci or docker", o.format)
	case o.format == "docker" && len(o.binaries) > 1:
		return fmt.Errorf("-format docker holds one platform, got %d", len(o.binaries))
	}
	if _, err := o.tag(); err != nil {
		return fmt.Errorf("-name %q and -version %q do not make an image tag: %w", o.name, o.version, err)
	}
	if err := sortBinaries("-binary", o.binaries); err != nil {
		return err
	}
	if err := sortBinaries("-agent-binary", o.agents); err != nil {
		return err
	}
	return o.pairAgents()
}

// pairAgents gives each binary the agent build of its platform.
func (o *options) pairAgents() error {
	plats := func(bs []platformBinary) string {
		var s []string
		for _, b := range bs {
			s = append(s, b.platform.String())
		}
		return strings.Join(s, ", ")
	}
	if plats(o.agents) != plats(o.binaries) {
		return fmt.Errorf("-agent-binary for %q, want one for each -binary: %s", plats(o.agents), plats(o.binaries))
	}
	for i := range o.binaries {
		o.binaries[i].agent = o.agents[i].path
	}
	return nil
}

// parseEpoch reads SOURCE_DATE_EPOCH's format: whole seconds since 1970, UTC.
func parseEpoch(s string) (time.Time, error) {
	var sec int64
	if _, err := fmt.Sscan(s, &sec); err != nil || sec < 0 || fmt.Sprint(sec) != s {
		return time.Time{}, fmt.Errorf("%q is not a count of seconds since 1970", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// oneLine keeps an error to the one line the command-line contract allows.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
