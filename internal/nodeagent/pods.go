package nodeagent

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/meshdns/meshdns/internal/kubeapi"
	"github.com/meshdns/meshdns/internal/resolver"
)

// Options configure a Pods watch.
type Options struct {
	Config *rest.Config
	// Node is the node whose pods are watched (spec.nodeName): the kubelet of a node serves
	// only its own pods, and so does a node agent.
	Node string
	// Zone is the cluster domain; NodeSearch the node's own search list.
	Zone       string
	NodeSearch []string
	// Publish receives the context of every pod address after each change; it must not block.
	Publish func(map[netip.Addr]resolver.Client)
	Logger  *slog.Logger
}

// Pods watches the pods of one node and publishes their contexts by address.
type Pods struct {
	o     Options
	log   *slog.Logger
	core  rest.Interface
	store cache.Store
}

// New returns a Pods watch; Run starts it.
func New(o Options) (*Pods, error) {
	if o.Node == "" {
		return nil, fmt.Errorf("no node name")
	}
	c, err := kubeapi.NewClient(o.Config, kubeapi.Core)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pods{o: o, log: log, core: c}, nil
}

// Run watches until ctx ends; synced is closed once the first list is published.
func (p *Pods) Run(ctx context.Context, synced chan<- struct{}) {
	lw := cache.NewListWatchFromClient(p.core, "pods", metav1.NamespaceAll, fields.OneTermEqualSelector("spec.nodeName", p.o.Node))
	publish := func(any) { p.publish() }
	store, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw, ObjectType: &corev1.Pod{}, Transform: reduce,
		Handler: cache.ResourceEventHandlerFuncs{AddFunc: publish, UpdateFunc: func(_, o any) { publish(o) }, DeleteFunc: publish},
	})
	p.store = store
	go informer.Run(ctx.Done())
	if cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		p.publish()
		p.log.Info("node agent: watching the pods of this node", "node", p.o.Node, "pods", len(store.List()))
		close(synced)
	}
	<-ctx.Done()
}

// publish hands on the context of every address of the node's pods. An address two pods
// claim (one ending, its successor starting) is the running one's, else the newest's.
func (p *Pods) publish() {
	if p.store == nil {
		return
	}
	owner := map[netip.Addr]*corev1.Pod{}
	for _, obj := range p.store.List() {
		pod := obj.(*corev1.Pod)
		if pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, ip := range pod.Status.PodIPs {
			a, err := netip.ParseAddr(ip.IP)
			if err != nil {
				continue
			}
			a = a.Unmap()
			if cur := owner[a]; cur == nil || newer(pod, cur) {
				owner[a] = pod
			}
		}
	}
	out := make(map[netip.Addr]resolver.Client, len(owner))
	for a, pod := range owner {
		if c, ok := ClientOf(pod, p.o.Zone, p.o.NodeSearch); ok {
			out[a] = c
		}
	}
	p.o.Publish(out)
}

// newer reports whether pod a should own an address pod b claims too: one not being deleted
// wins, then the one created last.
func newer(a, b *corev1.Pod) bool {
	if (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) {
		return a.DeletionTimestamp == nil
	}
	return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name)) > 0
}

// reduce keeps of a pod what its context needs: a node has up to a few hundred pods, and
// their specs (containers, volumes) are most of an object's size.
func reduce(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a deletion marker
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, CreationTimestamp: pod.CreationTimestamp,
			DeletionTimestamp: pod.DeletionTimestamp},
		Spec: corev1.PodSpec{HostNetwork: pod.Spec.HostNetwork, DNSPolicy: pod.Spec.DNSPolicy,
			DNSConfig: pod.Spec.DNSConfig, NodeName: pod.Spec.NodeName},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIPs: pod.Status.PodIPs},
	}, nil
}
