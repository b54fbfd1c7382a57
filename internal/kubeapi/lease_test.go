package kubeapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// leaseServer serves one Lease as the API server does: get, create, and update only with
// the resourceVersion last written (409 Conflict otherwise). While down, it answers 503.
type leaseServer struct {
	mu     sync.Mutex
	lease  *coordinationv1.Lease
	rv     int
	down   atomic.Bool
	writes atomic.Int32
	// delay is how long each request takes: a stop then mostly comes during a renewal.
	delay time.Duration
}

func (s *leaseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status := func(code int, reason metav1.StatusReason) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Code: int32(code), Reason: reason})
	}
	time.Sleep(s.delay)
	if s.down.Load() {
		status(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		if s.lease == nil {
			status(http.StatusNotFound, metav1.StatusReasonNotFound)
			return
		}
	case http.MethodPost, http.MethodPut:
		var l coordinationv1.Lease
		if err := json.NewDecoder(r.Body).Decode(&l); err != nil {
			status(http.StatusBadRequest, metav1.StatusReasonBadRequest)
			return
		}
		switch {
		case r.Method == http.MethodPost && s.lease != nil:
			status(http.StatusConflict, metav1.StatusReasonAlreadyExists)
			return
		case r.Method == http.MethodPut && (s.lease == nil || l.ResourceVersion != s.lease.ResourceVersion):
			status(http.StatusConflict, metav1.StatusReasonConflict)
			return
		}
		s.rv++
		l.ResourceVersion = strconv.Itoa(s.rv)
		s.lease = &l
		s.writes.Add(1)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.lease)
}

func (s *leaseServer) holder() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease == nil {
		return ""
	}
	return deref(s.lease.Spec.HolderIdentity)
}

// elector is an Elector of the Lease srv serves, with a one-minute duration: a process that
// stopped without releasing it would keep others out for the whole test.
func elector(t *testing.T, srv *httptest.Server, id string) *Elector {
	t.Helper()
	c, err := NewClient(&rest.Config{Host: srv.URL, QPS: 1000, Burst: 1000}, Coordination)
	if err != nil {
		t.Fatal(err)
	}
	return &Elector{Client: c, Namespace: "ns", Name: "lease", Identity: id,
		LeaseDuration: time.Minute, RenewDeadline: 300 * time.Millisecond, RetryPeriod: 20 * time.Millisecond}
}

// leading runs e in the background and reports, through the returned channel, each time it
// starts leading; stop cancels it and waits for Run to return.
func leading(e *Elector) (started chan string, stopped chan struct{}, stop func()) {
	started, stopped = make(chan string, 10), make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			e.Run(ctx, func(lctx context.Context) {
				started <- e.Identity
				<-lctx.Done()
				stopped <- struct{}{}
			})
		}
	}()
	return started, stopped, func() { cancel(); <-done }
}

func waitFor[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		var zero T
		return zero
	}
}

// TestOneLeaderAndAHandoverOnStop: of two electors one leads and the other waits while the
// leader renews; a leader that stops releases the Lease (also when it stops while renewing),
// and the other leads at once rather than after the Lease's minute.
func TestOneLeaderAndAHandoverOnStop(t *testing.T) {
	ls := &leaseServer{delay: 30 * time.Millisecond}
	srv := httptest.NewServer(ls)
	defer srv.Close()
	startedA, _, stopA := leading(elector(t, srv, "a"))
	first := waitFor(t, startedA, "leader")
	startedB, _, stopB := leading(elector(t, srv, "b"))
	defer stopB()
	for deadline := time.Now().Add(10 * time.Second); ls.writes.Load() < 5 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case id := <-startedB:
		t.Fatalf("%s leads while %s holds the Lease", id, first)
	default:
	}
	if h, n := ls.holder(), ls.writes.Load(); h != "a" || n < 5 {
		t.Errorf("holder %q after %d writes; want a, renewing", h, n)
	}
	stopA()
	if id := waitFor(t, startedB, "new leader after the leader stopped"); id != "b" {
		t.Errorf("new leader %s", id)
	}
	if h := ls.holder(); h != "b" {
		t.Errorf("holder %q, want b", h)
	}
}

// TestLeaderStopsWhenItCannotRenew: a leader that cannot reach the API server stops leading
// once its renew deadline has passed, and leads again once it can renew.
func TestLeaderStopsWhenItCannotRenew(t *testing.T) {
	ls := &leaseServer{}
	srv := httptest.NewServer(ls)
	defer srv.Close()
	started, stopped, stop := leading(elector(t, srv, "a"))
	defer stop()
	waitFor(t, started, "leader")
	ls.down.Store(true)
	waitFor(t, stopped, "stop after the API server went away")
	ls.down.Store(false)
	waitFor(t, started, "leader again")
}
