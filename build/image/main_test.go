package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeELF writes the headers of an ELF executable for machine, with a program interpreter
// (a dynamically linked one) when dynamic is set: enough for the checks, which read no code.
func fakeELF(t *testing.T, machine elf.Machine, dynamic bool) string {
	t.Helper()
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT),
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	prog := elf.Prog64{Type: uint32(elf.PT_LOAD)}
	if dynamic {
		prog.Type = uint32(elf.PT_INTERP)
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, hdr)
	binary.Write(&buf, binary.LittleEndian, prog)
	path := filepath.Join(t.TempDir(), "meshdns")
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBadInput checks that every bad flag or input file is reported in one line that names it,
// and that nothing is left where the image would have been written.
func TestBadInput(t *testing.T) {
	good := fakeELF(t, elf.EM_X86_64, false)
	arm := fakeELF(t, elf.EM_AARCH64, false)
	dynamic := fakeELF(t, elf.EM_X86_64, true)
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "image.tar")
	base := []string{"-o", out, "-version", "v1.0.0"}
	tests := []struct {
		name string
		args []string // each -binary gets an -agent-binary of the same value, unless noAgent
		code int
		want string
		// noAgent: args are used as they are.
		noAgent bool
	}{
		{"no output", []string{"-version", "v1", "-binary", "linux/amd64=" + good}, 2, "-o FILE is required", false},
		{"no version", []string{"-o", out, "-binary", "linux/amd64=" + good}, 2, "-version is required", false},
		{"no binary", base, 2, "-binary os/arch=PATH is required", false},
		{"binary without platform", append(base, "-binary", good), 2, "want os/arch=PATH", false},
		{"unknown architecture", append(base, "-binary", "linux/mips="+good), 2, `platform "linux/mips" is not one of linux/amd64, linux/arm64`, false},
		{"not linux", append(base, "-binary", "windows/amd64="+good), 2, `platform "windows/amd64"`, false},
		{"platform twice", append(base, "-binary", "linux/amd64="+good, "-binary", "linux/amd64="+good), 2, "platform linux/amd64 given twice", false},
		{"unknown format", append(base, "-binary", "linux/amd64="+good, "-format", "zip"), 2, `-format "zip": want oci or docker`, false},
		{"docker of two platforms", append(base, "-binary", "linux/amd64="+good, "-binary", "linux/arm64="+arm, "-format", "docker"), 2, "-format docker holds one platform, got 2", false},
		{"created not a number", append(base, "-binary", "linux/amd64="+good, "-created", "yesterday"), 2, `"yesterday" is not a count of seconds since 1970`, false},
		{"created negative", append(base, "-binary", "linux/amd64="+good, "-created", "-1"), 2, `"-1" is not a count of seconds`, false},
		{"created fractional", append(base, "-binary", "linux/amd64="+good, "-created", "1.5"), 2, `"1.5" is not a count of seconds`, false},
		{"version not a tag", []string{"-o", out, "-version", "v1 beta", "-binary", "linux/amd64=" + good}, 2, `-version "v1 beta" do not make an image tag`, false},
		{"extra argument", append(base, "-binary", "linux/amd64="+good, "extra"), 2, `unexpected argument "extra"`, false},
		{"missing binary", append(base, "-binary", "linux/amd64=/nonexistent/meshdns"), 1, "/nonexistent/meshdns: no such file or directory", false},
		{"not ELF", append(base, "-binary", "linux/amd64="+notELF), 1, notELF + ": not an ELF executable", false},
		{"wrong architecture", append(base, "-binary", "linux/amd64="+arm), 1, arm + ": built for arm64, not amd64", false},
		{"dynamically linked", append(base, "-binary", "linux/amd64="+dynamic), 1, dynamic + ": dynamically linked; build it with CGO_ENABLED=0", false},
		{"no agent binary", append(base, "-binary", "linux/amd64="+good), 2, `-agent-binary for "", want one for each -binary: linux/amd64`, true},
		{"agent binary of another platform", append(base, "-binary", "linux/amd64="+good, "-agent-binary", "linux/arm64="+arm), 2, `-agent-binary for "linux/arm64", want one for each -binary: linux/amd64`, true},
		{"agent platform twice", append(base, "-binary", "linux/amd64="+good, "-agent-binary", "linux/amd64="+good, "-agent-binary", "linux/amd64="+good), 2, "-agent-binary: platform linux/amd64 given twice", true},
		{"agent dynamically linked", append(base, "-binary", "linux/amd64="+good, "-agent-binary", "linux/amd64="+dynamic), 1, dynamic + ": dynamically linked", true},
		{"output directory missing", []string{"-o", "/nonexistent/image.tar", "-version", "v1", "-binary", "linux/amd64=" + good}, 1, "cannot write /nonexistent/image.tar: no such file or directory", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !tc.noAgent {
				args = nil
				for i, a := range tc.args {
					args = append(args, a)
					if i > 0 && tc.args[i-1] == "-binary" {
						args = append(args, "-agent-binary", a)
					}
				}
			}
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "image: ") || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q, want one line starting with image: and containing %q", msg, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if left, _ := os.ReadDir(outDir); len(left) != 0 {
				t.Errorf("%s holds %v after a failed run, want nothing", outDir, left)
			}
		})
	}
}
