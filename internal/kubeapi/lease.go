package kubeapi

import (
	"context"
	"math/rand/v2"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// Elector holds a coordination.k8s.io/v1 Lease while it can, so that one process of several
// does a job: Kubernetes's leader election, as client-go's leaderelection package does it.
//
// A Lease held by another process is taken only once it has not changed for its duration,
// timed on this process's clock from when this process saw it change: the holder's renewTime
// is another machine's clock. The holder renews it every RetryPeriod; if it cannot renew
// within RenewDeadline (shorter than the duration), it stops leading before anyone else may
// start. Every write carries the resourceVersion read, so two processes never both win.
type Elector struct {
	Client    rest.Interface // coordination.k8s.io/v1 (NewClient(cfg, Coordination))
	Namespace string
	Name      string
	// Identity names this process in the Lease; it must differ between processes.
	Identity string
	// LeaseDuration is how long a Lease not renewed keeps others out; RenewDeadline how long
	// the holder tries to renew before it stops leading; RetryPeriod how often it tries.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnNewLeader is told the holder whenever it changes, this process included (optional).
	OnNewLeader func(holder string)

	now        func() time.Time
	observedRV string    // resourceVersion of the Lease as last read or written
	observedAt time.Time // when this process saw observedRV first
	holder     string    // the holder last reported to OnNewLeader
}

// Run waits to hold the Lease, runs lead while it holds it, and returns once lead has
// returned: when ctx ends (the Lease is then released, so that another process takes it at
// once), or when the Lease could not be renewed in time (lead's context ends first).
func (e *Elector) Run(ctx context.Context, lead func(context.Context)) {
	if e.now == nil {
		e.now = time.Now
	}
	for !e.try(ctx) {
		if !e.sleep(ctx) {
			return
		}
	}
	leadCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(leadCtx)
	}()
	defer func() {
		stop()
		<-done
	}()
	for {
		select {
		case <-ctx.Done():
		case <-done:
		case <-time.After(e.RetryPeriod):
			if e.renew(ctx) {
				continue
			}
			if ctx.Err() == nil {
				return // lost: lead stops (deferred) before another may take the Lease
			}
		}
		stop()
		<-done
		e.release()
		return
	}
}

// renew tries to renew the Lease every RetryPeriod until RenewDeadline has passed.
func (e *Elector) renew(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, e.RenewDeadline)
	defer cancel()
	for !e.try(ctx) {
		if !e.sleep(ctx) {
			return false
		}
	}
	return true
}

// sleep waits RetryPeriod with jitter (processes that start together do not ask together);
// false when ctx ends first.
func (e *Elector) sleep(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(e.RetryPeriod + rand.N(e.RetryPeriod/5+1)):
		return true
	}
}

// try takes or renews the Lease; it reports whether this process holds it now.
func (e *Elector) try(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, e.RenewDeadline)
	defer cancel()
	var lease coordinationv1.Lease
	err := e.Client.Get().Namespace(e.Namespace).Resource("leases").Name(e.Name).Do(ctx).Into(&lease)
	// Read after the answer: a change seen is timed from when it was seen, never earlier (the
	// holder may have renewed while the request was on its way).
	now := e.now()
	switch {
	case apierrors.IsNotFound(err):
		lease = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name}}
		e.hold(&lease, now)
		var created coordinationv1.Lease
		if err := e.Client.Post().Namespace(e.Namespace).Resource("leases").Body(&lease).Do(ctx).Into(&created); err != nil {
			return false
		}
		e.observe(&created, e.now())
		return true
	case err != nil:
		return false
	}
	e.observe(&lease, now)
	holder := deref(lease.Spec.HolderIdentity)
	duration := e.LeaseDuration
	if s := deref(lease.Spec.LeaseDurationSeconds); s > 0 {
		duration = time.Duration(s) * time.Second
	}
	if holder != "" && holder != e.Identity && now.Before(e.observedAt.Add(duration)) {
		return false // another's, not expired
	}
	e.hold(&lease, now)
	var updated coordinationv1.Lease
	if err := e.Client.Put().Namespace(e.Namespace).Resource("leases").Name(e.Name).Body(&lease).Do(ctx).Into(&updated); err != nil {
		return false // a conflict: another process wrote it since
	}
	e.observe(&updated, e.now())
	return true
}

// hold makes lease this process's, renewed at now.
func (e *Elector) hold(lease *coordinationv1.Lease, now time.Time) {
	t := metav1.NewMicroTime(now)
	if deref(lease.Spec.HolderIdentity) != e.Identity {
		lease.Spec.AcquireTime = &t
		if lease.Spec.HolderIdentity != nil { // taken over, not created
			lease.Spec.LeaseTransitions = ptr(deref(lease.Spec.LeaseTransitions) + 1)
		}
	}
	lease.Spec.HolderIdentity = ptr(e.Identity)
	// Whole seconds, rounded up: others must wait at least as long as this process may lead.
	lease.Spec.LeaseDurationSeconds = ptr(int32((e.LeaseDuration + time.Second - 1) / time.Second))
	lease.Spec.RenewTime = &t
}

// observe records the Lease as read or written at now, and reports a new holder.
func (e *Elector) observe(lease *coordinationv1.Lease, now time.Time) {
	if lease.ResourceVersion != e.observedRV {
		e.observedRV, e.observedAt = lease.ResourceVersion, now
	}
	if h := deref(lease.Spec.HolderIdentity); h != e.holder {
		e.holder = h
		if h != "" && e.OnNewLeader != nil {
			e.OnNewLeader(h)
		}
	}
}

// release gives the Lease up if this process still holds it, so that another takes it at
// once rather than after its duration.
func (e *Elector) release() {
	ctx, cancel := context.WithTimeout(context.Background(), e.RenewDeadline)
	defer cancel()
	var lease coordinationv1.Lease
	if err := e.Client.Get().Namespace(e.Namespace).Resource("leases").Name(e.Name).Do(ctx).Into(&lease); err != nil ||
		deref(lease.Spec.HolderIdentity) != e.Identity {
		return
	}
	lease.Spec.HolderIdentity = nil
	lease.Spec.LeaseDurationSeconds = ptr(int32(1))
	_ = e.Client.Put().Namespace(e.Namespace).Resource("leases").Name(e.Name).Body(&lease).Do(ctx).Error()
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
