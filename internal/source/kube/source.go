package kube

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/meshdns/meshdns/internal/kubeapi"
	"github.com/meshdns/meshdns/internal/model"
)

var (
	serviceEntries  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	workloadEntries = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}
	crds            = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// Options configure a Source.
type Options struct {
	Config *rest.Config
	// Namespaces limits every watch to these namespaces; empty watches all of them (and then
	// Namespace objects too, which pod records need).
	Namespaces []string
	// WatchPods watches pods, for StatefulSet names taken from pods and for ServiceEntries
	// selecting pods (the table's pod names are turned off separately).
	WatchPods bool
	Logger    *slog.Logger
}

// Source keeps, through informers, the model records of the API server's objects and signals
// their changes. Informers keep the last state while the API server is away and re-list when it
// comes back, so the snapshot never empties because the API server does.
type Source struct {
	opts    Options
	log     *slog.Logger
	core    rest.Interface // core/v1
	disc    rest.Interface // discovery.k8s.io/v1
	dyn     dynamic.Interface
	changed chan struct{}

	ctx    context.Context // Start's
	stores []cache.Store   // the core kinds'; fixed once Start returns
	synced []cache.InformerSynced

	mu    sync.Mutex
	istio map[schema.GroupVersionResource]*istioWatch // Istio kinds whose CRD is established
}

// istioWatch is the informers of one Istio kind, one per watched namespace.
type istioWatch struct {
	stores []cache.Store
	synced []cache.InformerSynced
	stop   context.CancelFunc
}

// New returns a Source using o.Config; it does not contact the API server. The clients are
// those of the two API groups it reads (see kubeapi).
func New(o Options) (*Source, error) {
	core, err := kubeapi.NewClient(o.Config, kubeapi.Core)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	disc, err := kubeapi.NewClient(o.Config, kubeapi.Discovery)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(o.Config)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{opts: o, log: log, core: core, disc: disc, dyn: dyn, changed: make(chan struct{}, 1),
		istio: map[schema.GroupVersionResource]*istioWatch{}}, nil
}

// Changed receives a value after the snapshot has changed.
func (s *Source) Changed() <-chan struct{} { return s.changed }

func (s *Source) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// namespaces lists what each informer watches: the given namespaces, or all ("").
func (s *Source) namespaces() []string {
	if len(s.opts.Namespaces) == 0 {
		return []string{metav1.NamespaceAll}
	}
	return s.opts.Namespaces
}

// Start starts the informers, which run until ctx ends. It does not wait for them: see
// WaitSynced. The Istio kinds are watched while their CRDs exist, so CRDs installed later are
// picked up.
func (s *Source) Start(ctx context.Context) {
	s.ctx = ctx
	for _, ns := range s.namespaces() {
		s.watchCore(ctx, s.core, "services", ns, &corev1.Service{})
		s.watchCore(ctx, s.disc, "endpointslices", ns, &discoveryv1.EndpointSlice{})
		if s.opts.WatchPods {
			s.watchCore(ctx, s.core, "pods", ns, &corev1.Pod{})
		}
		if ns == metav1.NamespaceAll {
			s.watchCore(ctx, s.core, "namespaces", ns, &corev1.Namespace{})
		}
	}
	for _, gvr := range []schema.GroupVersionResource{serviceEntries, workloadEntries} {
		_, synced := s.watchDynamic(ctx, crds, "", "metadata.name="+gvr.Resource+"."+gvr.Group, crdTransform,
			cache.ResourceEventHandlerFuncs{
				AddFunc:    func(obj any) { s.crdChanged(gvr, obj) },
				UpdateFunc: func(_, obj any) { s.crdChanged(gvr, obj) },
				DeleteFunc: func(any) { s.stopIstio(gvr) },
			})
		s.synced = append(s.synced, synced)
	}
}

// watchCore runs an informer of resource in namespace ns until ctx ends, keeping its store.
func (s *Source) watchCore(ctx context.Context, c rest.Interface, resource, ns string, obj runtime.Object) {
	lw := cache.NewListWatchFromClient(c, resource, ns, fields.Everything())
	store, synced := run(ctx, lw, obj, s.transform, s.handler())
	s.stores = append(s.stores, store)
	s.synced = append(s.synced, synced)
}

// watchDynamic runs an informer of the objects of gvr in namespace ns ("" for all, or for a
// cluster-scoped resource) that fieldSelector selects ("" for all), until ctx ends.
func (s *Source) watchDynamic(ctx context.Context, gvr schema.GroupVersionResource, ns, fieldSelector string,
	transform cache.TransformFunc, h cache.ResourceEventHandler) (cache.Store, cache.InformerSynced) {
	r := s.dyn.Resource(gvr).Namespace(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fieldSelector
			return r.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fieldSelector
			return r.Watch(ctx, o)
		},
	}
	return run(ctx, lw, &unstructured.Unstructured{}, transform, h)
}

// run runs an informer of lw, whose objects are like obj, until ctx ends; it returns its store
// and whether it has synced.
func run(ctx context.Context, lw cache.ListerWatcher, obj runtime.Object, transform cache.TransformFunc,
	h cache.ResourceEventHandler) (cache.Store, cache.InformerSynced) {
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	if err := inf.SetTransform(transform); err != nil {
		panic(err) // only fails on a started informer
	}
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		panic(err) // only fails on a stopped informer
	}
	go inf.RunWithContext(ctx)
	return inf.GetStore(), reg.HasSynced
}

func (s *Source) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.signal() },
		UpdateFunc: func(old, cur any) {
			// Status updates of pods and slices are frequent and mostly change nothing DNS uses.
			o, ok1 := old.(*record)
			c, ok2 := cur.(*record)
			if !ok1 || !ok2 || !reflect.DeepEqual(o.value, c.value) {
				s.signal()
			}
		},
		DeleteFunc: func(any) { s.signal() },
	}
}

// WaitSynced waits until every informer has delivered its first list, Istio kinds whose CRD
// exists included. It returns false when ctx ends first.
func (s *Source) WaitSynced(ctx context.Context) bool {
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return false
	}
	// The CRD handlers have run for the CRDs that exist: their informers are in s.istio. The
	// set is read anew each time, since a CRD removed meanwhile takes its informers along.
	return cache.WaitForCacheSync(ctx.Done(), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, w := range s.istio {
			for _, synced := range w.synced {
				if !synced() {
					return false
				}
			}
		}
		return true
	})
}

func (s *Source) crdChanged(gvr schema.GroupVersionResource, obj any) {
	if r, ok := obj.(*record); ok && r.value == true {
		s.startIstio(gvr)
	} else {
		s.stopIstio(gvr)
	}
}

func (s *Source) startIstio(gvr schema.GroupVersionResource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.istio[gvr] != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	w := &istioWatch{stop: cancel}
	for _, ns := range s.namespaces() {
		store, synced := s.watchDynamic(ctx, gvr, ns, "", s.transform, s.handler())
		w.stores = append(w.stores, store)
		w.synced = append(w.synced, synced)
	}
	s.istio[gvr] = w
	s.log.Info("kubernetes: watching " + gvr.Resource + "." + gvr.Group)
}

func (s *Source) stopIstio(gvr schema.GroupVersionResource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.istio[gvr]; w != nil {
		w.stop()
		delete(s.istio, gvr)
		s.log.Info("kubernetes: CRD gone, no longer watching " + gvr.Resource + "." + gvr.Group)
		s.signal()
	}
}

// Snapshot returns the records of every object the informers hold, sorted by namespace and
// name within each kind, so that equal content gives an equal snapshot.
func (s *Source) Snapshot() model.Snapshot {
	stores := slices.Clone(s.stores)
	s.mu.Lock()
	for _, w := range s.istio {
		stores = append(stores, w.stores...)
	}
	s.mu.Unlock()
	var recs []*record
	for _, st := range stores {
		for _, obj := range st.List() {
			if r, ok := obj.(*record); ok && r.value != nil {
				recs = append(recs, r)
			}
		}
	}
	slices.SortFunc(recs, func(a, b *record) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	var snap model.Snapshot
	for _, r := range recs {
		snap.Add(r.value)
	}
	for _, ns := range s.opts.Namespaces {
		snap.Namespaces = append(snap.Namespaces, model.Namespace{Name: ns})
	}
	return snap
}

// record is what an informer keeps of an API object: its key and its model record, never the
// object itself. value is nil for an object that could not be converted (it adds no names).
type record struct {
	metav1.ObjectMeta // Namespace, Name and ResourceVersion only
	value             any
}

// transform turns an API object into its record as the informer receives it. It must accept
// its own output (client-go may pass a record again).
func (s *Source) transform(obj any) (any, error) {
	if r, ok := obj.(*record); ok {
		return r, nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	r := &record{ObjectMeta: metav1.ObjectMeta{Namespace: m.GetNamespace(), Name: m.GetName(),
		ResourceVersion: m.GetResourceVersion()}}
	switch o := obj.(type) {
	case *corev1.Service:
		r.value = serviceRecord(o)
	case *discoveryv1.EndpointSlice:
		r.value, err = endpointSliceRecord(o)
	case *corev1.Pod:
		r.value = podRecord(o)
	case *corev1.Namespace:
		r.value = model.Namespace{Name: o.Name}
	case *unstructured.Unstructured:
		r.value, err = istioRecord(o)
	default:
		err = fmt.Errorf("unexpected %T", obj)
	}
	if err != nil {
		r.value = nil
		if err != errFQDNSlice {
			s.log.Warn("kubernetes: ignoring object", "namespace", r.Namespace, "name", r.Name, "err", err)
		}
	}
	return r, nil
}

// crdTransform keeps of a CustomResourceDefinition whether it serves v1 and is established.
func crdTransform(obj any) (any, error) {
	if r, ok := obj.(*record); ok {
		return r, nil
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("unexpected %T", obj)
	}
	return &record{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), ResourceVersion: u.GetResourceVersion()},
		value: servesV1(u) && established(u)}, nil
}

func servesV1(u *unstructured.Unstructured) bool {
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	for _, v := range versions {
		if m, ok := v.(map[string]any); ok && m["name"] == "v1" && m["served"] == true {
			return true
		}
	}
	return false
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
