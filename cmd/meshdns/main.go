// Command meshdns is a DNS proxy for Kubernetes and service meshes. See README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitUsage is the exit code for bad flags or configuration.
const exitUsage = 2

const usage = `meshdns: a DNS proxy for Kubernetes and service meshes

Usage:
  meshdns serve --registry DIR | --kubeconfig FILE | --controller HOST:PORT [flags]
                                         answer mesh names, forward the rest
  meshdns controller --kubeconfig FILE --tls-cert FILE --tls-key FILE [flags]
                                         watch the API server once, stream names to agents
  meshdns capture print|install|uninstall|verify [flags]
                                         send the host's DNS traffic to meshdns
  meshdns explain NAME [--type A] [--namespace NS] [--admin ADDR] [-o json]
                                         why a running meshdns answers NAME as it does
  meshdns table [--admin ADDR] [--all] [-o json]
                                         the live name table of a running meshdns
  meshdns injector --tls-cert FILE --tls-key FILE --image IMAGE [flags]
                                         the sidecar injection webhook
  meshdns version                        print the version

Run "meshdns COMMAND -h" (capture: "meshdns capture print -h") for the flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serveCmd(args[1:], stdout, stderr)
	case "capture":
		return captureCmd(args[1:], stdout, stderr)
	case "controller":
		return controllerCmd(args[1:], stdout, stderr)
	case "explain":
		return explainCmd(args[1:], stdout, stderr)
	case "table":
		return tableCmd(args[1:], stdout, stderr)
	case "injector":
		return injectorCmd(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "meshdns", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "meshdns: unknown command %q (want serve, controller, capture, explain, table, injector or version)\n", args[0])
	return exitUsage
}

// parseFlags parses args into fs and reports a bad flag in one line, as the command-line
// contract requires. It returns the exit code to use, or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshdns %s: %s\n", fs.Name(), oneLine(err.Error()))
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshdns %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage
	}
	return -1
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

// listFlag is a repeatable string flag.
// listFlag collects a repeatable flag; a value may also hold several, comma-separated.
type listFlag struct{ values *[]string }

func (l listFlag) String() string {
	if l.values == nil {
		return ""
	}
	return strings.Join(*l.values, ",")
}

func (l listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.values = append(*l.values, v)
		}
	}
	return nil
}
