package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// elfMachine is the ELF machine of each architecture the image can be built for.
var elfMachine = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"ppc64le": elf.EM_PPC64,
	"riscv64": elf.EM_RISCV,
	"s390x":   elf.EM_S390,
}

// archOf names the architecture of an ELF machine.
func archOf(m elf.Machine) string {
	for arch, em := range elfMachine {
		if em == m {
			return arch
		}
	}
	return m.String()
}

// platformBinary is a meshdns binary and the platform it runs on.
type platformBinary struct {
	platform v1.Platform
	path     string
	agent    string // the build for agents (-tags nokube) of the platform
}

// parseBinary reads a -binary flag, linux/ARCH=PATH.
func parseBinary(s string) (platformBinary, error) {
	plat, path, ok := strings.Cut(s, "=")
	if !ok || path == "" {
		return platformBinary{}, fmt.Errorf("%q: want os/arch=PATH", s)
	}
	osName, arch, ok := strings.Cut(plat, "/")
	if !ok || osName != "linux" || elfMachine[arch] == 0 {
		return platformBinary{}, fmt.Errorf("%q: platform %q is not one of linux/%s", s, plat, strings.Join(archs(), ", linux/"))
	}
	return platformBinary{platform: v1.Platform{OS: osName, Architecture: arch}, path: path}, nil
}

func archs() []string {
	var a []string
	for arch := range elfMachine {
		a = append(a, arch)
	}
	slices.Sort(a)
	return a
}

// sortBinaries puts the binaries in platform order, so the index does not depend on the order
// of the flags, and rejects a platform given twice.
func sortBinaries(flag string, bs []platformBinary) error {
	slices.SortFunc(bs, func(a, b platformBinary) int { return strings.Compare(a.platform.String(), b.platform.String()) })
	for i := 1; i < len(bs); i++ {
		if bs[i].platform.String() == bs[i-1].platform.String() {
			return fmt.Errorf("%s: platform %s given twice", flag, bs[i].platform.String())
		}
	}
	return nil
}

// read returns the bytes of the binary at path (b's or its agent build) after checking that it is a static executable for its
// platform: an image without a libc cannot run anything else, and a binary of the wrong
// architecture fails only on the node that pulls it.
func (b platformBinary) read(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s: not an executable but %s", path, f.Type)
	}
	if f.Machine != elfMachine[b.platform.Architecture] {
		return nil, fmt.Errorf("%s: built for %s, not %s", path, archOf(f.Machine), b.platform.Architecture)
	}
	// A program interpreter is the dynamic loader, which the image does not have.
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s: dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return data, nil
}
