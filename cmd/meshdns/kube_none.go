//go:build nokube

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/source"
	"github.com/meshdns/meshdns/internal/vip"
)

// A build with -tags nokube is an agent's: it serves a manifest directory and what a
// controller streams (serve --registry, --controller), installs capture, and has no
// Kubernetes client. Without client-go and the API types the binary is a third smaller, and
// each agent maps fewer of its pages.

var errNoKube = errors.New("this meshdns is built without Kubernetes support (-tags nokube): " +
	"it serves --registry and --controller; --kubeconfig, a pod's service account, --node-agent, " +
	"the controller and the injector need the full build")

type (
	kubeConfig struct{}
	kubeSource struct{}
)

func loadKubeConfig(config.Settings) (*kubeConfig, error) { return nil, errNoKube }

func logKubeClient(*slog.Logger) {}

// detectPod is config.DetectPod, but for the service account, which this build cannot use:
// in a pod, --registry or --controller is still needed.
func detectPod() config.Pod {
	p := config.DetectPod()
	p.InCluster = false
	return p
}

func (d *daemon) startKubeSource() (source.Source, error) { return nil, errNoKube }

func (d *daemon) startNodeAgent() error { return errNoKube }

func (d *daemon) startStatusWriter() func(model.Snapshot, vip.Assignments) { return nil }

func controllerCmd(_ []string, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "meshdns controller: %s\n", errNoKube)
	return exitUsage
}

func injectorCmd(_ []string, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "meshdns injector: %s\n", errNoKube)
	return exitUsage
}
