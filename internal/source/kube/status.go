package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/kubeapi"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/ratelog"
	"github.com/meshdns/meshdns/internal/vip"
)

// LeaseName is the Lease that elects the one replica writing VIPs to ServiceEntry status.
const LeaseName = "meshdns-vip-writer"

const (
	// retryFailed is how soon a failed status write is tried again.
	retryFailed = 5 * time.Second
	// failureLogInterval spaces the log lines of writes that keep failing (a missing RBAC
	// rule fails every retry).
	failureLogInterval = time.Minute
)

// WriterOptions configure a StatusWriter.
type WriterOptions struct {
	// LeaderElect elects one writer among the replicas with a Lease in LeaseNamespace; without
	// it this process always writes.
	LeaderElect    bool
	LeaseNamespace string
	// LeaseDuration is required with LeaderElect; its default is config's, the one place it
	// is defined.
	LeaseDuration time.Duration
	Logger        *slog.Logger
	Metrics       *WriterMetrics
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

	fails *ratelog.Limiter // failed writes are logged at most every failureLogInterval

	mu      sync.Mutex
	pending map[seRef]map[string][]netip.Addr // by object: VIPs of hosts its status lacked
}

type seRef struct{ namespace, name string }

// NewStatusWriter returns a writer for the ServiceEntries of src.
func NewStatusWriter(src *Source, o WriterOptions) *StatusWriter {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StatusWriter{src: src, opts: o, log: log, wake: make(chan struct{}, 1),
		fails:   ratelog.New(log, failureLogInterval, nil),
		pending: map[seRef]map[string][]netip.Addr{}}
}

// Assigned is given every snapshot the table is built from, with the VIP assignments of its
// hosts; it notes the ServiceEntries of the API server whose status differs.
func (w *StatusWriter) Assigned(snap model.Snapshot, a vip.Assignments) {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.pending)
	for i := range snap.ServiceEntries {
		se := &snap.ServiceEntries[i]
		missing := missingStatus(se, a)
		if len(missing) == 0 || !w.src.hasServiceEntry(se.Namespace, se.Name) {
			continue
		}
		w.pending[seRef{se.Namespace, se.Name}] = missing
	}
	if len(w.pending) > 0 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// missingStatus returns, by host, the VIPs of se's hosts that have no entry in its
// status.addresses. Entries already there stay as they are, whoever wrote them: a host Istio
// gave only an IPv4 address keeps only that, so that two writers never undo each other's work.
func missingStatus(se *model.ServiceEntry, a vip.Assignments) map[string][]netip.Addr {
	var out map[string][]netip.Addr
	for _, h := range se.Hosts {
		if slices.ContainsFunc(se.StatusAddresses, func(s model.HostAddress) bool { return s.Host == h }) {
			continue
		}
		for _, l := range a[vip.Key{Namespace: se.Namespace, Host: h}] {
			if out == nil {
				out = map[string][]netip.Addr{}
			}
			out[h] = append(out[h], l.Addr)
		}
	}
	return out
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
	client, err := kubeapi.NewClient(w.src.opts.Config, kubeapi.Coordination)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	d := w.opts.LeaseDuration
	el := &kubeapi.Elector{Client: client, Namespace: w.opts.LeaseNamespace, Name: LeaseName, Identity: id,
		LeaseDuration: d, RenewDeadline: d * 2 / 3, RetryPeriod: max(d/5, 100*time.Millisecond),
		OnNewLeader: func(holder string) {
			if holder != id {
				w.log.Info("VIP status writer elected elsewhere", "holder", holder)
			}
		}}
	lead := func(ctx context.Context) {
		w.log.Info("writing VIPs to ServiceEntry status (elected)", "identity", id)
		w.opts.Metrics.leading(true)
		defer w.opts.Metrics.leading(false)
		w.write(ctx)
	}
	for ctx.Err() == nil { // Run returns when the lease is lost: stand again
		el.Run(ctx, lead)
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
		todo := maps.Clone(w.pending)
		w.mu.Unlock()
		failed := false
		for ref, missing := range todo {
			if err := w.update(ctx, ref, missing); err != nil {
				failed = true
				w.opts.Metrics.wrote("error")
				w.fails.Warn("writing ServiceEntry status failed; retrying", "namespace", ref.namespace, "name", ref.name, "err", err)
				continue
			}
			w.mu.Lock()
			if reflect.DeepEqual(w.pending[ref], missing) {
				delete(w.pending, ref)
			}
			w.mu.Unlock()
		}
		if failed {
			retryTimer.Reset(retryFailed)
		}
	}
}

// update adds the VIPs of missing to one ServiceEntry's status.addresses, for the hosts that
// its spec still names and its status (as read now, not as the snapshot had it) still lacks;
// every entry already there is kept as it is. The write carries the object's resourceVersion:
// a concurrent change makes it read and decide again.
func (w *StatusWriter) update(ctx context.Context, ref seRef, missing map[string][]netip.Addr) error {
	client := w.src.dyn.Resource(serviceEntries).Namespace(ref.namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := client.Get(ctx, ref.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile: nothing to keep
		}
		if err != nil {
			return err
		}
		entries, _, _ := unstructured.NestedSlice(u.Object, "status", "addresses")
		has := map[string]bool{}
		for _, e := range entries {
			if m, ok := e.(map[string]any); ok {
				if h, ok := m["host"].(string); ok {
					has[dnsname.Host(h)] = true
				}
			}
		}
		hosts, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "hosts")
		var added []string
		for _, h := range hosts {
			h = dnsname.Host(h)
			if has[h] {
				continue
			}
			for _, ip := range missing[h] {
				entries = append(entries, map[string]any{"value": ip.String(), "host": h})
				added = append(added, h+"="+ip.String())
			}
		}
		if len(added) == 0 {
			return nil
		}
		if err := unstructured.SetNestedSlice(u.Object, entries, "status", "addresses"); err != nil {
			return err
		}
		if _, err := client.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: "meshdns"}); err != nil {
			return err
		}
		w.opts.Metrics.wrote("ok")
		w.log.Info("wrote VIPs to ServiceEntry status", "namespace", ref.namespace, "name", ref.name,
			"added", strings.Join(added, " "))
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
