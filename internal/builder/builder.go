package builder

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultDebounce is how long the builder waits after a change for more changes to arrive.
const DefaultDebounce = 50 * time.Millisecond

// DefaultReleaseAfter is how long after the last build the builder returns the memory freed
// by the tables it replaced (see Builder.Run).
const DefaultReleaseAfter = time.Second

// releaseEvery is the least time between two such returns: where builds come every second or
// two (endpoints churning in a large cluster), a collection of the whole heap each time would
// cost more than the memory is worth.
const releaseEvery = 10 * time.Second

// DefaultVIPSaveRetry is how soon a failed save of the VIP state is tried again when nothing
// else changes: a full disk or a remounted volume may recover without anyone touching meshdns.
const DefaultVIPSaveRetry = 30 * time.Second

// Options configure a Builder.
type Options struct {
	Table    table.Options
	Snapshot func() model.Snapshot
	// Changed signals that a source has new content.
	Changed <-chan struct{}
	// Ready reports whether every source has its first complete content (source.Ready);
	// until then tables are built from the ready sources and marked partial. nil: always.
	Ready    func() bool
	Publish  func(*table.Table)
	Debounce time.Duration
	Logger   *slog.Logger
	Metrics  *Metrics
	// VIPs allocates addresses to eligible ServiceEntry hosts before each build; nil: none.
	VIPs *vip.Allocator
	// VIPStore persists the allocator's state whenever it changes; nil: kept in memory only.
	VIPStore vip.Store
	// VIPSaveRetry is how soon a failed save is retried; 0 means DefaultVIPSaveRetry.
	VIPSaveRetry time.Duration
	// Assigned, when set, is given each snapshot and its VIP assignments before the table
	// built from them is published (the Kubernetes status writer); it must not block.
	Assigned func(model.Snapshot, vip.Assignments)
	// ReleaseAfter is how long after the last build the memory freed is returned to the
	// system; 0 means DefaultReleaseAfter.
	ReleaseAfter time.Duration
	// release returns freed memory to the system: debug.FreeOSMemory, or a test's count;
	// releaseEvery is the least time between two (0: the package's).
	release      func()
	releaseEvery time.Duration
}

// Builder rebuilds and publishes tables.
type Builder struct {
	o          Options
	log        *slog.Logger
	generation uint64
	wake       <-chan time.Time // when a VIP quarantine ends or a failed save is retried; nil: never
	release    *time.Timer      // returns the memory the last builds freed; nil: nothing to return
	released   time.Time        // when memory was last returned
	saveErr    error            // of the latest save of the VIP state; nil when it succeeded
}

// New returns a Builder; Run starts it.
func New(o Options) *Builder {
	if o.Debounce == 0 {
		o.Debounce = DefaultDebounce
	}
	if o.VIPSaveRetry <= 0 {
		o.VIPSaveRetry = DefaultVIPSaveRetry
	}
	if o.ReleaseAfter <= 0 {
		o.ReleaseAfter = DefaultReleaseAfter
	}
	if o.release == nil {
		o.release = debug.FreeOSMemory
	}
	if o.releaseEvery <= 0 {
		o.releaseEvery = releaseEvery
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Builder{o: o, log: log}
}

// Run builds the first table at once, then one per burst of changes, until ctx ends.
//
// A build allocates a whole table (and a snapshot, and for the first one whatever the sources
// decoded to fill their stores), and the table it replaces becomes garbage. The runtime would
// keep that memory, up to twice the live heap, for the next builds; a sidecar would stay at
// that size between changes. Once no build has come for ReleaseAfter, the builder collects the
// garbage and returns it to the system: one garbage collection per quiet period, not per build,
// and at most one per releaseEvery.
func (b *Builder) Run(ctx context.Context) {
	defer func() {
		if b.release != nil {
			b.release.Stop()
		}
	}()
	// The first build sees everything signalled so far.
	select {
	case <-b.o.Changed:
	default:
	}
	b.rebuild()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.o.Changed:
			if !b.settle(ctx) {
				return
			}
		case <-b.wake:
		case <-b.releaseC():
			b.release, b.released = nil, time.Now()
			b.o.release()
			continue
		}
		b.rebuild()
	}
}

// releaseC fires when the memory of the last builds is to be returned; nil: never.
func (b *Builder) releaseC() <-chan time.Time {
	if b.release == nil {
		return nil
	}
	return b.release.C
}

// settle waits until no change has arrived for the debounce interval.
func (b *Builder) settle(ctx context.Context) bool {
	t := time.NewTimer(b.o.Debounce)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-b.o.Changed:
			t.Reset(b.o.Debounce)
		case <-t.C:
			return true
		}
	}
}

func (b *Builder) rebuild() {
	start := time.Now()
	t, err := b.build()
	if err != nil {
		b.log.Error("table build failed; the previous table keeps serving", "err", err)
		b.o.Metrics.failed()
		return
	}
	b.generation++
	if t.Partial() && b.generation == 1 {
		b.log.Info("a source is not ready yet: answering the names of the ready ones, the rest of the zone is not ready")
	}
	b.o.Publish(t)
	due := max(b.o.ReleaseAfter, time.Until(b.released.Add(b.o.releaseEvery)))
	if b.release == nil {
		b.release = time.NewTimer(due)
	} else {
		b.release.Reset(due)
	}
	b.o.Metrics.built(t, time.Since(start))
	b.log.Debug("table published", "generation", b.generation, "names", t.Len(), "took", time.Since(start))
}

// build makes the next table. A panic (a bug met by some unusual object) fails this build
// only: the previous table keeps serving and the next change is tried afresh.
func (b *Builder) build() (t *table.Table, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	// Readiness is read before the snapshot: a source that becomes ready in between makes
	// this table partial though complete, and its signal brings the next build; read after,
	// a table could be called complete without that source's content.
	partial := b.o.Ready != nil && !b.o.Ready()
	snap := b.o.Snapshot()
	opts := b.o.Table
	opts.Generation = b.generation + 1
	opts.Partial = partial
	opts.VIPs = b.allocate(snap, partial)
	return table.Build(snap, opts)
}

// allocate leases VIPs to the snapshot's eligible hosts and persists the allocator's state
// when it changed (or the last save failed), before the table that answers with the new VIPs
// is published: a restart then never forgets an address clients may have seen. A partial
// snapshot lacks the hosts of the sources not ready yet: the keys already leased stay
// claimed, so none is released, and the status writer, which needs every source, waits for a
// complete one.
func (b *Builder) allocate(snap model.Snapshot, partial bool) vip.Assignments {
	a := b.o.VIPs
	if a == nil {
		return nil
	}
	claims := vip.Claims(snap)
	allocate := a.Allocate
	if partial {
		// Addresses the missing sources record for their hosts are not known yet: new
		// placements are provisional and yield to those records once every source is read.
		claims, allocate = holdLeased(claims, a.State()), a.AllocateProvisional
	}
	assignments, changed := allocate(claims)
	if (changed || b.saveErr != nil) && b.o.VIPStore != nil {
		b.save(a.State())
	}
	b.wake = b.nextWake(a)
	if b.o.Assigned != nil && !partial {
		b.o.Assigned(snap, assignments)
	}
	return assignments
}

// holdLeased adds to claims a claim for every key of st that leases an address and is not
// claimed, so that Allocate keeps its lease.
func holdLeased(claims []vip.Claim, st vip.State) []vip.Claim {
	claimed := make(map[vip.Key]bool, len(claims))
	for _, c := range claims {
		claimed[c.Key] = true
	}
	for _, l := range st.Leases {
		k := vip.Key{Namespace: l.Namespace, Host: l.Host}
		if !claimed[k] {
			claimed[k] = true
			claims = append(claims, vip.Claim{Key: k, Created: l.Since, Existing: []netip.Addr{l.Address}})
		}
	}
	return claims
}

// save persists st, logging when saves start failing and when they work again; the store
// counts each failure.
func (b *Builder) save(st vip.State) {
	err := b.o.VIPStore.Save(st)
	switch {
	case err != nil && b.saveErr == nil:
		b.log.Error("saving VIP state failed; the VIPs keep serving but may move at restart",
			"err", err, "retry", b.o.VIPSaveRetry)
	case err == nil && b.saveErr != nil:
		b.log.Info("VIP state saved again")
	}
	b.saveErr = err
}

// nextWake returns when to allocate again without a change: when the next quarantine ends,
// or sooner to retry a failed save.
func (b *Builder) nextWake(a *vip.Allocator) <-chan time.Time {
	next, ok := a.NextRelease()
	d := time.Until(next) + time.Millisecond
	if b.saveErr != nil && (!ok || b.o.VIPSaveRetry < d) {
		d, ok = b.o.VIPSaveRetry, true
	}
	if !ok {
		return nil
	}
	return time.After(d)
}

// Metrics describe the published table.
type Metrics struct {
	entries    prometheus.Gauge
	generation prometheus.Gauge
	duration   prometheus.Histogram
	failures   prometheus.Counter
}

// NewMetrics registers the builder's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshdns_table_entries", Help: "Names in the published table."}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshdns_table_generation", Help: "Generation of the published table."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshdns_table_build_duration_seconds", Help: "Time to build a table.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshdns_table_build_failures_total", Help: "Table builds that failed."}),
	}
	reg.MustRegister(m.entries, m.generation, m.duration, m.failures)
	return m
}

func (m *Metrics) built(t *table.Table, d time.Duration) {
	if m == nil {
		return
	}
	m.entries.Set(float64(t.Len()))
	m.generation.Set(float64(t.Generation()))
	m.duration.Observe(d.Seconds())
}

func (m *Metrics) failed() {
	if m != nil {
		m.failures.Inc()
	}
}
