package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/retry"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/vip"
)

// LeaseName is the Lease that elects the one replica writing VIPs to ServiceEntry status.
const LeaseName = "meshdns-vip-writer"

// retryFailed is how soon a failed status write is tried again.
const retryFailed = 5 * time.Second

// WriterOptions configure a StatusWriter.
type WriterOptions struct {
	// LeaderElect elects one writer among the replicas with a Lease in LeaseNamespace; without
	// it this process always writes.
	LeaderElect    bool
	LeaseNamespace string
	LeaseDuration  time.Duration
	Logger         *slog.Logger
	Metrics        *WriterMetrics
}

// StatusWriter keeps ServiceEntry status.addresses equal to the VIPs allocated to their hosts,
// in the form Istio's allocator writes ({value, host}), so that VIPs survive restarts and every
// replica (and Istio) sees the same ones. Addresses already in status are adopted by the
// allocator and so never rewritten; only one elected replica writes.
type StatusWriter struct {
	src  *Source
	opts WriterOptions
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	pending map[seRef][]model.HostAddress // status.addresses to write, by object
}

type seRef struct{ namespace, name string }

// NewStatusWriter returns a writer for the ServiceEntries of src.
func NewStatusWriter(src *Source, o WriterOptions) *StatusWriter {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	return &StatusWriter{src: src, opts: o, log: log, wake: make(chan struct{}, 1),
		pending: map[seRef][]model.HostAddress{}}
}

// Assigned is given every snapshot the table is built from, with the VIP assignments of its
// hosts; it notes the ServiceEntries of the API server whose status differs.
func (w *StatusWriter) Assigned(snap model.Snapshot, a vip.Assignments) {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.pending)
	for i := range snap.ServiceEntries {
		se := &snap.ServiceEntries[i]
		want := wantedStatus(se, a)
		if len(want) == 0 || sameAddresses(want, se.StatusAddresses) || !w.src.hasServiceEntry(se.Namespace, se.Name) {
			continue
		}
		w.pending[seRef{se.Namespace, se.Name}] = want
	}
	if len(w.pending) > 0 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// wantedStatus is se's status.addresses with the VIPs of the hosts it has none for added. The
// entries already there stay as they are, whoever wrote them: a host Istio gave only an IPv4
// address keeps only that, so that two writers never undo each other's work.
func wantedStatus(se *model.ServiceEntry, a vip.Assignments) []model.HostAddress {
	out := slices.Clone(se.StatusAddresses)
	for _, h := range se.Hosts {
		if slices.ContainsFunc(se.StatusAddresses, func(s model.HostAddress) bool { return s.Host == h }) {
			continue
		}
		for _, l := range a[vip.Key{Namespace: se.Namespace, Host: h}] {
			out = append(out, model.HostAddress{Host: h, Address: l.Addr})
		}
	}
	return out
}

func sameAddresses(a, b []model.HostAddress) bool {
	key := func(h model.HostAddress) string { return h.Host + " " + h.Address.String() }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i] = key(a[i])
	}
	for i := range b {
		kb[i] = key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// Run writes pending statuses until ctx ends: at once without leader election, else while
// this process holds the Lease.
func (w *StatusWriter) Run(ctx context.Context) error {
	if !w.opts.LeaderElect {
		w.opts.Metrics.leading(true)
		w.write(ctx)
		return nil
	}
	id, err := identity()
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: w.opts.LeaseNamespace, Name: LeaseName},
		Client:     coordinationv1client.NewForConfigOrDie(w.src.opts.Config),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	d := w.opts.LeaseDuration
	cfg := leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: d, RenewDeadline: d * 2 / 3, RetryPeriod: max(d/5, 100*time.Millisecond),
		ReleaseOnCancel: true, Name: LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				w.log.Info("writing VIPs to ServiceEntry status (elected)", "identity", id)
				w.opts.Metrics.leading(true)
				w.write(ctx)
			},
			OnStoppedLeading: func() {
				w.opts.Metrics.leading(false)
			},
			OnNewLeader: func(holder string) {
				if holder != id {
					w.log.Info("VIP status writer elected elsewhere", "holder", holder)
				}
			},
		},
	}
	el, err := leaderelection.NewLeaderElector(cfg)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	for ctx.Err() == nil { // Run returns when the lease is lost: stand again
		el.Run(ctx)
	}
	return nil
}

// identity names this process in the Lease: host name and a random suffix, since two
// processes on one host must differ.
func identity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", err
	}
	b := make([]byte, 4)
	rand.Read(b)
	return host + "_" + hex.EncodeToString(b), nil
}

// write writes pending statuses until ctx ends, retrying failures after a while.
func (w *StatusWriter) write(ctx context.Context) {
	retryTimer := time.NewTimer(0)
	defer retryTimer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-retryTimer.C:
		}
		w.mu.Lock()
		todo := make(map[seRef][]model.HostAddress, len(w.pending))
		for k, v := range w.pending {
			todo[k] = v
		}
		w.mu.Unlock()
		failed := false
		for ref, want := range todo {
			if err := w.update(ctx, ref, want); err != nil {
				failed = true
				w.opts.Metrics.wrote("error")
				w.log.Warn("writing ServiceEntry status failed; retrying", "namespace", ref.namespace, "name", ref.name, "err", err)
				continue
			}
			w.mu.Lock()
			if sameAddresses(w.pending[ref], want) {
				delete(w.pending, ref)
			}
			w.mu.Unlock()
		}
		if failed {
			retryTimer.Reset(retryFailed)
		}
	}
}

// update sets status.addresses of one ServiceEntry, keeping the rest of its status, with the
// object's resourceVersion: a concurrent change makes it read and try again.
func (w *StatusWriter) update(ctx context.Context, ref seRef, want []model.HostAddress) error {
	client := w.src.dyn.Resource(serviceEntries).Namespace(ref.namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := client.Get(ctx, ref.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile: nothing to keep
		}
		if err != nil {
			return err
		}
		addrs := make([]any, len(want))
		for i, h := range want {
			addrs[i] = map[string]any{"value": h.Address.String(), "host": h.Host}
		}
		if err := unstructured.SetNestedSlice(u.Object, addrs, "status", "addresses"); err != nil {
			return err
		}
		if _, err := client.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: "meshdns"}); err != nil {
			return err
		}
		w.opts.Metrics.wrote("ok")
		w.log.Info("wrote VIPs to ServiceEntry status", "namespace", ref.namespace, "name", ref.name,
			"addresses", strings.Trim(fmt.Sprint(want), "[]"))
		return nil
	})
}

// hasServiceEntry reports whether the API server has the ServiceEntry (a manifest directory's
// ServiceEntries are in the snapshot too, but have no status to write).
func (s *Source) hasServiceEntry(namespace, name string) bool {
	s.mu.Lock()
	w := s.istio[serviceEntries]
	s.mu.Unlock()
	if w == nil {
		return false
	}
	for _, st := range w.stores {
		if _, ok, _ := st.GetByKey(namespace + "/" + name); ok {
			return true
		}
	}
	return false
}
