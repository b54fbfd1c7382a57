package builder

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/table"
	meshtest "github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeSource struct {
	mu   sync.Mutex
	snap model.Snapshot
	ch   chan struct{}
}

func (f *fakeSource) Snapshot() model.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeSource) set(ip string) {
	f.mu.Lock()
	f.snap = model.Snapshot{Services: []model.Service{{Meta: model.Meta{Namespace: "ns", Name: "svc"},
		ClusterIPs: []netip.Addr{netip.MustParseAddr(ip)}}}}
	f.mu.Unlock()
	f.ch <- struct{}{}
}

func run(t *testing.T, o Options) (published chan *table.Table, stop func()) {
	published = make(chan *table.Table, 100)
	o.Publish = func(t *table.Table) { published <- t }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); New(o).Run(ctx) }()
	return published, func() { cancel(); <-done }
}

func recv(t *testing.T, ch chan *table.Table) *table.Table {
	t.Helper()
	select {
	case tb := <-ch:
		return tb
	case <-time.After(5 * time.Second):
		t.Fatal("no table published")
		return nil
	}
}

// TestBurstIsOneBuild: changes arriving together produce one table with the last content.
func TestBurstIsOneBuild(t *testing.T) {
	src := &fakeSource{ch: make(chan struct{}, 10)}
	src.set("10.0.0.1")
	<-src.ch
	var builds atomic.Int32
	published, stop := run(t, Options{
		Table:    table.Options{Zone: "cluster.local", TTL: time.Second},
		Snapshot: func() model.Snapshot { builds.Add(1); return src.Snapshot() },
		Changed:  src.ch, Debounce: 200 * time.Millisecond,
	})
	defer stop()
	first := recv(t, published)
	for _, ip := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"} {
		src.set(ip)
	}
	second := recv(t, published)
	if first.Generation() != 1 || second.Generation() != 2 {
		t.Errorf("generations %d, %d; want 1, 2", first.Generation(), second.Generation())
	}
	m, _ := second.Lookup("svc.ns.svc.cluster.local.", "")
	if got := m.Node.Records(dns.TypeA)[0].String(); got != "svc.ns.svc.cluster.local.\t1\tIN\tA\t10.0.0.4" {
		t.Errorf("second table has %q, want the last change", got)
	}
	if n := builds.Load(); n != 2 {
		t.Errorf("%d builds for one burst, want 2 (initial + burst)", n)
	}
}

// TestFailedBuildPublishesNothing: an invalid build keeps whatever is published.
func TestFailedBuildPublishesNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	src := &fakeSource{ch: make(chan struct{}, 1)}
	published, stop := run(t, Options{
		Table:    table.Options{Zone: "bad..zone", TTL: time.Second},
		Snapshot: src.Snapshot, Changed: src.ch, Metrics: m,
	})
	waitFailures := func(n float64) {
		deadline := time.Now().Add(5 * time.Second)
		for testutil.ToFloat64(m.failures) < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFailures(1)
	src.ch <- struct{}{}
	waitFailures(2)
	stop()
	if got := testutil.ToFloat64(m.failures); got != 2 {
		t.Errorf("failures = %v, want 2", got)
	}
	if len(published) != 0 {
		t.Errorf("a failed build published a table")
	}
}

// TestVIPRecoveryAfterQuarantine: with a full pool, a host waiting for a VIP gets the one a
// deleted host freed as soon as its quarantine ends, with no further change from the sources.
func TestVIPRecoveryAfterQuarantine(t *testing.T) {
	entry := func(host string) model.ServiceEntry {
		return model.ServiceEntry{Meta: model.Meta{Namespace: "ns", Name: host, Created: time.Unix(int64(len(host)), 0)},
			Hosts: []string{host}, Resolution: model.ResolutionDNS}
	}
	src := &fakeSource{ch: make(chan struct{}, 10)}
	src.snap = model.Snapshot{ServiceEntries: []model.ServiceEntry{entry("a.example"), entry("bb.example"), entry("ccc.example")}}
	alloc, err := vip.New(vip.Options{V4: netip.MustParsePrefix("240.240.0.0/30"), Quarantine: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	published, stop := run(t, Options{Table: table.Options{Zone: "cluster.local", TTL: time.Second},
		Snapshot: src.Snapshot, Changed: src.ch, VIPs: alloc, Debounce: 10 * time.Millisecond})
	defer stop()
	has := func(tb *table.Table, host string) bool { _, ok := tb.Lookup(host+".", ""); return ok }
	first := recv(t, published)
	if !has(first, "a.example") || !has(first, "bb.example") || has(first, "ccc.example") {
		t.Fatalf("a /30 has two addresses: the two oldest hosts get them, the third none")
	}
	src.mu.Lock()
	src.snap = model.Snapshot{ServiceEntries: []model.ServiceEntry{entry("bb.example"), entry("ccc.example")}}
	src.mu.Unlock()
	src.ch <- struct{}{}
	if tb := recv(t, published); has(tb, "ccc.example") {
		t.Fatalf("the freed address went to another host before its quarantine ended")
	}
	if tb := recv(t, published); !has(tb, "ccc.example") || !has(tb, "bb.example") {
		t.Errorf("after the quarantine, without any change: ccc.example still without a VIP")
	}
}

// TestPanicFailsOneBuild: a build that panics publishes nothing and is counted; the process
// lives on and the next change builds normally.
func TestPanicFailsOneBuild(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	src := &fakeSource{ch: make(chan struct{}, 10)}
	var calls atomic.Int32
	published, stop := run(t, Options{
		Table: table.Options{Zone: "cluster.local", TTL: time.Second},
		Snapshot: func() model.Snapshot {
			if calls.Add(1) == 1 {
				panic("a bug met by an unusual object")
			}
			return src.Snapshot()
		},
		Changed: src.ch, Metrics: m, Debounce: 10 * time.Millisecond,
	})
	defer stop()
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(m.failures) < 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	src.set("10.0.0.9")
	tb := recv(t, published)
	if got := testutil.ToFloat64(m.failures); got != 1 || tb.Generation() != 1 {
		t.Errorf("failures %v, generation %d; want 1 failure, then generation 1", got, tb.Generation())
	}
}

// TestPartialTableUntilReady: while a source is not ready, the builder publishes a table of
// what the ready ones have, marked partial, and keeps the VIPs leased to hosts it cannot see
// (they belong to the source still syncing); the status writer waits for a complete table.
func TestPartialTableUntilReady(t *testing.T) {
	entry := func(host string) model.ServiceEntry {
		return model.ServiceEntry{Meta: model.Meta{Namespace: "ns", Name: host}, Hosts: []string{host}, Resolution: model.ResolutionDNS}
	}
	// A quarantine shorter than the API server's absence: a released VIP would be lost.
	alloc, err := vip.New(vip.Options{V4: netip.MustParsePrefix("240.240.0.0/16"), Quarantine: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	held := netip.MustParseAddr("240.240.7.7")
	alloc.Restore(vip.State{Version: vip.StateVersion, Leases: []vip.LeaseRecord{
		{Namespace: "ns", Host: "api.example", Family: vip.IPv4, Address: held, Since: time.Unix(1, 0).UTC()}}})
	src := &fakeSource{ch: make(chan struct{}, 10)}
	src.snap = model.Snapshot{ServiceEntries: []model.ServiceEntry{entry("registry.example")}}
	var ready atomic.Bool
	var assigned atomic.Int32
	published, stop := run(t, Options{Table: table.Options{Zone: "cluster.local", TTL: time.Second},
		Snapshot: src.Snapshot, Changed: src.ch, Ready: ready.Load, VIPs: alloc, Debounce: 10 * time.Millisecond,
		Assigned: func(model.Snapshot, vip.Assignments) { assigned.Add(1) }})
	defer stop()
	first := recv(t, published)
	if _, ok := first.Lookup("registry.example.", ""); !ok || !first.Partial() {
		t.Fatalf("before every source is ready: want a partial table answering the ready source's host")
	}
	if assigned.Load() != 0 {
		t.Error("the status writer was given a partial snapshot")
	}
	src.mu.Lock()
	src.snap.ServiceEntries = append(src.snap.ServiceEntries, entry("api.example"))
	src.mu.Unlock()
	ready.Store(true)
	src.ch <- struct{}{}
	second := recv(t, published)
	m, ok := second.Lookup("api.example.", "")
	if !ok || second.Partial() || rrIP(m.Node) != held {
		t.Errorf("once ready: want a complete table where api.example kept its VIP %s", held)
	}
	if assigned.Load() != 1 {
		t.Errorf("status writer called %d times, want once, for the complete table", assigned.Load())
	}
}

// flakyStore fails its first saves, then keeps what it is given.
type flakyStore struct {
	mu       sync.Mutex
	failures int // saves left to fail
	saves    int
	saved    []vip.State
}

func (s *flakyStore) Load() (vip.State, error) { return vip.State{}, nil }

func (s *flakyStore) Save(st vip.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if s.failures > 0 {
		s.failures--
		return errors.New("no space left on device")
	}
	s.saved = append(s.saved, st)
	return nil
}

func (s *flakyStore) savedStates() []vip.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.saved)
}

// TestVIPSaveRetriedUntilItSucceeds: a failed save of the VIP state is tried again without
// any change from the sources, until it succeeds, and logged once when it starts failing and
// once when it works again.
func TestVIPSaveRetriedUntilItSucceeds(t *testing.T) {
	src := &fakeSource{ch: make(chan struct{}, 10)}
	src.snap = model.Snapshot{ServiceEntries: []model.ServiceEntry{{Meta: model.Meta{Namespace: "ns", Name: "db"},
		Hosts: []string{"db.example"}, Resolution: model.ResolutionDNS}}}
	alloc, err := vip.New(vip.Options{V4: netip.MustParsePrefix("240.240.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	store := &flakyStore{failures: 2}
	var logs meshtest.SyncBuffer
	_, stop := run(t, Options{Table: table.Options{Zone: "cluster.local", TTL: time.Second},
		Snapshot: src.Snapshot, Changed: src.ch, VIPs: alloc, VIPStore: store, VIPSaveRetry: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer stop()
	for deadline := time.Now().Add(5 * time.Second); len(store.savedStates()) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	saved := store.savedStates()
	if len(saved) == 0 || len(saved[0].Leases) != 1 || saved[0].Leases[0].Host != "db.example" {
		t.Fatalf("saved %+v after two failed saves, want the lease of db.example saved by a retry", saved)
	}
	stop()
	if n := strings.Count(logs.String(), "saving VIP state failed"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, &logs)
	}
	if !strings.Contains(logs.String(), "VIP state saved again") {
		t.Errorf("the recovery was not logged:\n%s", &logs)
	}
}

// releasing runs a builder of src whose memory returns are counted; wait waits until there
// have been n of them and fails if there are not exactly n.
func releasing(t *testing.T, src *fakeSource, after, every time.Duration) (published chan *table.Table,
	releases *atomic.Int32, wait func(n int32), stop func()) {
	releases = new(atomic.Int32)
	published, stop = run(t, Options{
		Table:    table.Options{Zone: "cluster.local", TTL: time.Second},
		Snapshot: src.Snapshot, Changed: src.ch, Debounce: time.Millisecond,
		ReleaseAfter: after, release: func() { releases.Add(1) }, releaseEvery: every,
	})
	wait = func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); releases.Load() < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if got := releases.Load(); got != n {
			t.Fatalf("memory returned %d times, want %d", got, n)
		}
	}
	return published, releases, wait, stop
}

// TestMemoryReturnedOncePerQuietPeriod: the memory freed by replaced tables is returned once
// builds have stopped for ReleaseAfter, once for a burst of builds, and again after the next.
func TestMemoryReturnedOncePerQuietPeriod(t *testing.T) {
	src := &fakeSource{ch: make(chan struct{}, 10)}
	src.set("10.0.0.1")
	<-src.ch
	published, releases, wait, stop := releasing(t, src, 2*time.Second, time.Millisecond)
	defer stop()
	recv(t, published)
	for _, ip := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"} {
		src.set(ip)
		recv(t, published)
	}
	if got := releases.Load(); got != 0 {
		t.Errorf("memory returned %d times while builds went on, want 0", got)
	}
	wait(1)
	src.set("10.0.0.5")
	recv(t, published)
	wait(2)
}

// TestMemoryReturnedAtMostOncePerInterval: builds coming just after memory was returned wait
// for the interval before it is returned again.
func TestMemoryReturnedAtMostOncePerInterval(t *testing.T) {
	src := &fakeSource{ch: make(chan struct{}, 10)}
	src.set("10.0.0.1")
	<-src.ch
	published, releases, wait, stop := releasing(t, src, time.Millisecond, 3*time.Second)
	defer stop()
	recv(t, published)
	wait(1)
	start := time.Now()
	src.set("10.0.0.2")
	recv(t, published)
	time.Sleep(time.Second)
	if got, elapsed := releases.Load(), time.Since(start); got != 1 && elapsed < 3*time.Second {
		t.Errorf("memory returned %d times within %v, want once: the interval is 3s", got, elapsed)
	}
	wait(2)
}
