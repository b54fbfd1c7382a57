//go:build !nokube

package main

import (
	"fmt"
	"log/slog"

	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/nodeagent"
	"github.com/meshdns/meshdns/internal/server"
	"github.com/meshdns/meshdns/internal/source"
	"github.com/meshdns/meshdns/internal/source/kube"
	"github.com/meshdns/meshdns/internal/vip"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"
)

// This file holds what serve does with the API server: the Kubernetes source, the VIP status
// writer and the node agent's watch of its pods. A build with -tags nokube leaves it out
// (kube_none.go).

type (
	kubeConfig = rest.Config
	kubeSource = kube.Source
)

// loadKubeConfig loads --kubeconfig, or the pod's service account without it.
func loadKubeConfig(cfg config.Settings) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	rc.QPS, rc.Burst, rc.UserAgent = float32(cfg.KubeAPIQPS), cfg.KubeAPIBurst, "meshdns"
	// One limiter for every client made from rc: the flags bound the process, not each client.
	rc.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(rc.QPS, rc.Burst)
	return rc, nil
}

// logKubeClient sends client-go's log to log.
func logKubeClient(log *slog.Logger) { klog.SetSlogLogger(log.With("component", "client-go")) }

// detectPod is config.DetectPod.
func detectPod() config.Pod { return config.DetectPod() }

// startKubeSource starts the Kubernetes source.
func (d *daemon) startKubeSource() (source.Source, error) {
	k, err := kube.New(kube.Options{Config: d.kube, Namespaces: d.cfg.Namespaces,
		WatchPods: d.cfg.WatchPods, Logger: d.log})
	if err != nil {
		return nil, err
	}
	k.Start(d.bg)
	d.kubeSrc = k
	return k, nil
}

// startNodeAgent watches the pods of the node and keeps the server's views of them
// (docs/nodeagent.md).
func (d *daemon) startNodeAgent() error {
	d.views = server.NewViews()
	p, err := nodeagent.New(nodeagent.Options{Config: d.kube, Node: d.cfg.NodeName, Zone: d.cfg.ClusterDomain.String(),
		NodeSearch: d.resolv.Search, Publish: d.views.Set, Logger: d.log})
	if err != nil {
		return err
	}
	done, synced := make(chan struct{}), make(chan struct{})
	d.podsSynced = synced
	go func() {
		defer close(done)
		p.Run(d.bg, synced)
	}()
	d.onStop(func() { <-done })
	return nil
}

// startStatusWriter runs the writer of VIPs to ServiceEntry status (while elected, with
// --leader-elect) and returns what the builder hands it.
func (d *daemon) startStatusWriter() func(model.Snapshot, vip.Assignments) {
	w := kube.NewStatusWriter(d.kubeSrc, kube.WriterOptions{LeaderElect: d.cfg.LeaderElect,
		LeaseNamespace: d.cfg.LeaseNamespace, LeaseDuration: d.cfg.LeaseDuration,
		Logger: d.log, Metrics: kube.NewWriterMetrics(d.reg)})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(d.bg); err != nil {
			d.log.Error("VIPs are not written to ServiceEntry status", "err", err)
		}
	}()
	d.onStop(func() { <-done })
	return w.Assigned
}
