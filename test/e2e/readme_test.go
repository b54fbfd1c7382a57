package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	// readmePort is the DNS port the README's commands use; the test substitutes its own.
	readmePort = "15053"
	// digPrefix starts every command of the walk-through's console blocks.
	digPrefix = "dig @127.0.0.1 -p " + readmePort + " "
	// serveCommand starts the walk-through's server; its flags are the test's.
	serveCommand = "go run ./cmd/meshdns serve"
	// minWalkthroughCommands guards against a walk-through that lost its examples.
	minWalkthroughCommands = 10
)

// walkCommand is a "$ dig ..." line of the README and the output lines under it.
type walkCommand struct {
	line int // 1-based line number in README.md
	cmd  string
	want []string
}

// parseWalkthrough reads the "## Walk-through" section of the README: the flags of its
// `go run ./cmd/meshdns serve` command and the commands of its ```console blocks.
func parseWalkthrough(readme string) (serveArgs []string, cmds []walkCommand, err error) {
	lines := strings.Split(readme, "\n")
	start := slices.Index(lines, "## Walk-through")
	if start < 0 {
		return nil, nil, fmt.Errorf(`no "## Walk-through" section`)
	}
	fence := "" // language of the open fenced block; "" outside blocks
	for i := start + 1; i < len(lines) && !strings.HasPrefix(lines[i], "## "); i++ {
		line := strings.TrimRight(lines[i], " \t")
		switch {
		case strings.HasPrefix(line, "```") && fence == "":
			fence = strings.TrimPrefix(line, "```")
			if fence == "" {
				fence = "text"
			}
		case strings.HasPrefix(line, "```"):
			fence = ""
		case fence == "":
		case strings.HasPrefix(strings.TrimPrefix(line, "$ "), serveCommand) && serveArgs == nil:
			serveArgs = strings.Fields(strings.TrimPrefix(strings.TrimPrefix(line, "$ "), serveCommand))
		case fence != "console":
		case strings.HasPrefix(line, "$ "):
			cmd := strings.TrimPrefix(line, "$ ")
			if !strings.HasPrefix(cmd, digPrefix) {
				return nil, nil, fmt.Errorf("README.md:%d: console command does not start with %q: %s", i+1, digPrefix, cmd)
			}
			cmds = append(cmds, walkCommand{line: i + 1, cmd: cmd})
		case len(cmds) == 0:
			return nil, nil, fmt.Errorf("README.md:%d: output before any command: %s", i+1, line)
		case strings.TrimSpace(line) != "":
			cmds[len(cmds)-1].want = append(cmds[len(cmds)-1].want, line)
		}
	}
	if serveArgs == nil {
		return nil, nil, fmt.Errorf("the walk-through has no %q command", serveCommand)
	}
	if len(cmds) < minWalkthroughCommands {
		return nil, nil, fmt.Errorf("the walk-through has %d dig commands, want at least %d", len(cmds), minWalkthroughCommands)
	}
	return serveArgs, cmds, nil
}

// withoutAddressFlags drops --listen and --admin (the test picks free ports).
func withoutAddressFlags(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(args[i], "=")
		if name == "--listen" || name == "-listen" || name == "--admin" || name == "-admin" {
			if !hasValue {
				i++
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// normalizeOutput turns output lines into a sorted list of whitespace-normalised lines, SOA
// serials masked: answers of headless services are shuffled, and serials move per build.
func normalizeOutput(lines []string) []string {
	out := []string{}
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			out = append(out, normalizeRR(l))
		}
	}
	slices.Sort(out)
	return out
}

// TestReadmeWalkthrough starts meshdns as the README's walk-through does (on free ports),
// runs every "$ dig" command of its console blocks and compares the output with the lines
// the README shows under it.
func TestReadmeWalkthrough(t *testing.T) {
	need(t, "dig")
	sh := need(t, "sh")
	data, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	serveArgs, cmds, err := parseWalkthrough(string(data))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	// A closed loopback port as upstream: the walk-through must be answered from the table,
	// and no test traffic may leave the machine.
	args := append(withoutAddressFlags(serveArgs), "--upstream", closedUpstream)
	srv := startServer(t, serveOptions{args: args})
	for _, wc := range cmds {
		t.Run(strings.TrimPrefix(wc.cmd, digPrefix), func(t *testing.T) {
			cmd := strings.Replace(wc.cmd, "-p "+readmePort, "-p "+srv.dnsPort, 1)
			ctx, cancel := context.WithTimeout(context.Background(), digTimeout)
			defer cancel()
			var stdout, stderr bytes.Buffer
			run := exec.CommandContext(ctx, sh, "-c", cmd)
			run.Dir = repoRoot
			run.Stdout, run.Stderr = &stdout, &stderr
			if err := run.Run(); err != nil {
				t.Fatalf("README.md:%d: %s: %v\n%s%s", wc.line, cmd, err, &stdout, &stderr)
			}
			got, want := normalizeOutput(strings.Split(stdout.String(), "\n")), normalizeOutput(wc.want)
			if !slices.Equal(got, want) {
				t.Errorf("README.md:%d: %s\n got %q\nwant %q", wc.line, cmd, got, want)
			}
		})
	}
}

// TestReadmeCaptureRules: the rules the README shows are exactly what `meshdns capture print`
// renders (the golden files of the capture package's tests), for a workload and for a node.
func TestReadmeCaptureRules(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v4_nftables.golden", "node4_nftables.golden"} {
		golden, err := os.ReadFile(filepath.Join(repoRoot, "internal", "capture", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "```text\n"+string(golden)+"```") {
			t.Errorf("README's capture print example differs from internal/capture/testdata/%s", name)
		}
	}
}
