package vip

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "run TestAllocatorProperties with this seed only")
	stepsFlag = flag.Int("steps", 10000, "steps per seed of TestAllocatorProperties")
)

// Small pools, so that reuse, quarantine and exhaustion all happen within a few hundred steps.
var (
	propV4 = netip.MustParsePrefix("10.1.0.0/26")  // 62 usable
	propV6 = netip.MustParsePrefix("fd00:1::/123") // 30 usable: the families run out apart
	// The first and last addresses of the pools, never handed out.
	propEdges = []netip.Addr{propV4.Addr(), offsetAddr(propV4, 63), propV6.Addr(), offsetAddr(propV6, 31)}
)

const propQuarantine = time.Hour

type opKind uint8

const (
	opAdd opKind = iota
	opRemove
	opRename
	opAdvance
	opRestart
)

// op is one step of a sequence. Steps that do not apply (adding a live key, removing an
// absent one) do nothing, so any subsequence of a sequence is a sequence: shrinking needs that.
type op struct {
	kind     opKind
	key, to  Key
	existing netip.Addr // add: an address recorded for the key (status.addresses)
	d        time.Duration
}

func (o op) String() string {
	switch o.kind {
	case opAdd:
		if o.existing.IsValid() {
			return fmt.Sprintf("add %v (recorded %v)", o.key, o.existing)
		}
		return fmt.Sprintf("add %v", o.key)
	case opRemove:
		return fmt.Sprintf("remove %v", o.key)
	case opRename:
		return fmt.Sprintf("rename %v -> %v", o.key, o.to)
	case opAdvance:
		return fmt.Sprintf("advance %v", o.d)
	}
	return "restart (State -> JSON -> new Allocator -> Restore)"
}

func TestAllocatorProperties(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if *seedFlag != 0 {
		seeds = []uint64{*seedFlag}
	}
	steps := *stepsFlag
	if testing.Short() {
		steps = min(steps, 2000)
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			ops := genOps(seed, steps)
			h := newHarness()
			at, err := h.run(ops)
			if err != nil {
				t.Fatal(failureReport(seed, ops, at, err))
			}
			if steps >= 5000 {
				h.stats.requireCoverage(t)
			}
			t.Logf("%+v", h.stats)
		})
	}
}

// failureReport shrinks the failing sequence and prints it so that it reads as a test case.
func failureReport(seed uint64, ops []op, at int, err error) string {
	fails := func(ops []op) bool { _, err := newHarness().run(ops); return err != nil }
	minimal := shrink(ops[:at+1], fails, 2*time.Minute)
	_, minErr := newHarness().run(minimal)
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: step %d (%v): %v\n", seed, at+1, ops[at], err)
	fmt.Fprintf(&b, "minimal failing sequence, %d steps, from an empty allocator at %v "+
		"(pools %v and %v, quarantine %v):\n", len(minimal), t0.Format(time.RFC3339), propV4, propV6, propQuarantine)
	for i, o := range minimal {
		fmt.Fprintf(&b, "  %3d. %v\n", i+1, o)
	}
	fmt.Fprintf(&b, "which fails with: %v\n", minErr)
	fmt.Fprintf(&b, "rerun: go test ./internal/vip/ -run 'TestAllocatorProperties' -seed=%d", seed)
	return b.String()
}

// genOps returns a random sequence. The mix of adds and removes shifts every few hundred
// steps, so the pools alternate between filling past exhaustion and draining.
func genOps(seed uint64, n int) []op {
	g := &generator{rng: rand.New(rand.NewPCG(seed, 0x76_69_70)), live: map[Key]bool{}}
	for ns := range 2 {
		for h := range 60 {
			g.universe = append(g.universe, Key{Namespace: fmt.Sprintf("ns%d", ns), Host: fmt.Sprintf("h%02d.example", h)})
		}
	}
	ops := make([]op, 0, n)
	addW := 30
	for len(ops) < n {
		if len(ops)%400 == 0 {
			addW = []int{20, 30, 45}[g.rng.IntN(3)]
		}
		var o op
		ok := true
		switch r := g.rng.IntN(100); {
		case r < addW:
			o, ok = g.add()
		case r < 58:
			o, ok = g.remove()
		case r < 68:
			o, ok = g.rename()
		case r < 95:
			o = op{kind: opAdvance, d: time.Duration(1+g.rng.IntN(20)) * time.Minute}
			if g.rng.IntN(7) == 0 {
				o.d = time.Duration(30+g.rng.IntN(120)) * time.Minute // sometimes past the quarantine
			}
		default:
			o = op{kind: opRestart}
		}
		if ok {
			ops = append(ops, o)
		}
	}
	return ops
}

// generator tracks which keys its sequence made live, to pick meaningful steps.
type generator struct {
	rng      *rand.Rand
	universe []Key
	live     map[Key]bool
	recent   []Key // removed lately: re-adding them exercises the quarantine
}

func (g *generator) pick(live bool) (Key, bool) {
	for range 20 {
		if k := g.universe[g.rng.IntN(len(g.universe))]; g.live[k] == live {
			return k, true
		}
	}
	return Key{}, false
}

func (g *generator) add() (op, bool) {
	k, ok := g.pick(false)
	if len(g.recent) > 0 && g.rng.IntN(3) == 0 {
		k = g.recent[g.rng.IntN(len(g.recent))]
		ok = !g.live[k]
	}
	if !ok {
		return op{}, false
	}
	g.live[k] = true
	return op{kind: opAdd, key: k, existing: randomExisting(g.rng)}, true
}

func (g *generator) remove() (op, bool) {
	k, ok := g.pick(true)
	if !ok {
		return op{}, false
	}
	g.gone(k)
	return op{kind: opRemove, key: k}, true
}

func (g *generator) rename() (op, bool) {
	from, ok1 := g.pick(true)
	to, ok2 := g.pick(false)
	if !ok1 || !ok2 {
		return op{}, false
	}
	g.gone(from)
	g.live[to] = true
	return op{kind: opRename, key: from, to: to}, true
}

func (g *generator) gone(k Key) {
	delete(g.live, k)
	g.recent = append(g.recent[max(0, len(g.recent)-20):], k)
}

// randomExisting returns, now and then, an address recorded for a new key: anywhere in the
// pools (network and last addresses included), so adoption meets held, quarantined and
// unusable addresses.
func randomExisting(rng *rand.Rand) netip.Addr {
	switch rng.IntN(8) {
	case 0:
		return offsetAddr(propV4, rng.IntN(64))
	case 1:
		return offsetAddr(propV6, rng.IntN(32))
	}
	return netip.Addr{}
}

func offsetAddr(p netip.Prefix, off int) netip.Addr {
	a := p.Addr()
	for range off {
		a = a.Next()
	}
	return a
}

// harness runs a sequence against an allocator, a twin fed the same claims in another
// order, and a model of what the allocator must guarantee.
type harness struct {
	clk        *testutil.Clock
	a, twin    *Allocator
	metrics    *Metrics
	live       map[Key]Claim
	prev       Assignments
	prevState  State
	released   map[netip.Addr]freed // the model's quarantine
	lastHolder map[netip.Addr]Key
	shuffle    *rand.Rand
	stats      propStats
	quarantine time.Duration // of the allocators; only a sabotage changes it
}

type propStats struct {
	Steps, Restarts, ExhaustedV4, ExhaustedV6, Reused, Reclaimed, Adopted int
}

func (s propStats) requireCoverage(t *testing.T) {
	t.Helper()
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		if v.Field(i).Int() == 0 {
			t.Errorf("the sequence never exercised %s: %+v", v.Type().Field(i).Name, s)
		}
	}
}

func newHarness() *harness { return newHarnessQ(propQuarantine) }

func newHarnessQ(quarantine time.Duration) *harness {
	h := &harness{clk: testutil.NewClock(), quarantine: quarantine, live: map[Key]Claim{}, released: map[netip.Addr]freed{},
		lastHolder: map[netip.Addr]Key{}, shuffle: rand.New(rand.NewPCG(1, 2)),
		metrics: NewMetrics(prometheus.NewRegistry())}
	h.a = h.newAllocator(h.metrics)
	h.twin = h.newAllocator(nil)
	h.prev, _ = h.a.Allocate(nil)
	h.twin.Allocate(nil)
	h.prevState = h.a.State()
	return h
}

func (h *harness) newAllocator(m *Metrics) *Allocator {
	a, err := New(Options{V4: propV4, V6: propV6, Quarantine: h.quarantine, Now: h.clk.Now, Metrics: m})
	if err != nil {
		panic(err)
	}
	return a
}

// run returns the index of the first failing step and its error.
func (h *harness) run(ops []op) (int, error) {
	for i, o := range ops {
		if err := h.step(o); err != nil {
			return i, err
		}
	}
	return -1, nil
}

func (h *harness) step(o op) error {
	h.stats.Steps++
	added := map[Key]bool{}
	add := func(k Key, existing netip.Addr) {
		if _, ok := h.live[k]; !ok {
			c := Claim{Key: k, Created: h.clk.Now()}
			if existing.IsValid() {
				c.Existing = []netip.Addr{existing}
			}
			h.live[k], added[k] = c, true
		}
	}
	switch o.kind {
	case opAdd:
		add(o.key, o.existing)
	case opRemove:
		delete(h.live, o.key)
	case opRename:
		if _, ok := h.live[o.key]; ok {
			if _, taken := h.live[o.to]; !taken {
				delete(h.live, o.key)
				add(o.to, netip.Addr{})
			}
		}
	case opAdvance:
		h.clk.Advance(o.d)
	case opRestart:
		if err := h.restart(); err != nil {
			return err
		}
	}
	sorted, shuffled := h.claims()
	as, changed := h.a.Allocate(sorted)
	twin, twinChanged := h.twin.Allocate(shuffled)
	if !assignmentsEqual(as, twin) || changed != twinChanged {
		return fmt.Errorf("the twin allocator disagrees:\n  got  %v %v\n  twin %v %v", as, changed, twin, twinChanged)
	}
	if err := h.check(as, changed, added); err != nil {
		return err
	}
	h.prev = as
	return nil
}

// claims lists the live claims sorted by key, and shuffled for the twin: the allocator must
// not depend on the order.
func (h *harness) claims() (sorted, shuffled []Claim) {
	sorted = make([]Claim, 0, len(h.live))
	for _, c := range h.live {
		sorted = append(sorted, c)
	}
	slices.SortFunc(sorted, func(x, y Claim) int { return compareKeys(x.Key, y.Key) })
	shuffled = slices.Clone(sorted)
	h.shuffle.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	return sorted, shuffled
}

// restart persists the state through JSON into a new allocator, which must then answer
// exactly as the old one did and report no change.
func (h *harness) restart() error {
	h.stats.Restarts++
	saved := h.a.State()
	b, err := json.Marshal(saved)
	if err != nil {
		return fmt.Errorf("restart: marshal: %v", err)
	}
	var loaded State
	if err := json.Unmarshal(b, &loaded); err != nil {
		return fmt.Errorf("restart: unmarshal: %v", err)
	}
	a := h.newAllocator(h.metrics)
	a.Restore(loaded)
	sorted, _ := h.claims()
	as, changed := a.Allocate(sorted)
	switch {
	case changed:
		return fmt.Errorf("restart: the first Allocate reports a change:\n  saved    %+v\n  restored %+v", saved, a.State())
	case !assignmentsEqual(as, h.prev):
		return fmt.Errorf("restart: assignments differ:\n  before %v\n  after  %v", h.prev, as)
	case !statesEqual(a.State(), saved):
		return fmt.Errorf("restart: state differs:\n  before %+v\n  after  %+v", saved, a.State())
	}
	h.a = a
	return nil
}

// check compares one Allocate with the model.
func (h *harness) check(as Assignments, changed bool, added map[Key]bool) error {
	now := h.clk.Now()
	st := h.a.State()
	if !statesEqual(st, h.twin.State()) {
		return fmt.Errorf("the twin's state differs:\n  got  %+v\n  twin %+v", st, h.twin.State())
	}
	if same := statesEqual(st, h.prevState); changed == same {
		return fmt.Errorf("Allocate reported changed=%v but the state changed: %v", changed, !same)
	}
	h.prevState = st
	h.modelRelease(now)
	owed := h.owed(added)
	held := map[netip.Addr]Key{}
	for k, ls := range as {
		if err := h.checkLeases(k, ls, held, added[k], now); err != nil {
			return err
		}
	}
	for k, fams := range owed {
		for f, want := range fams {
			if got := familyAddr(as, k.String(), f); got != want {
				return fmt.Errorf("%v came back within the quarantine and got %v, want its old %v", k, got, want)
			}
		}
	}
	if err := h.checkLost(as); err != nil {
		return err
	}
	if err := h.checkExhaustion(as, held); err != nil {
		return err
	}
	return h.checkState(st, as)
}

// modelRelease expires the model's quarantine at now, then quarantines the addresses of the
// keys that went away.
func (h *harness) modelRelease(now time.Time) {
	for a, r := range h.released {
		if !now.Before(r.at.Add(propQuarantine)) {
			delete(h.released, a)
		}
	}
	for k, ls := range h.prev {
		if _, ok := h.live[k]; !ok {
			for _, l := range ls {
				h.released[l.Addr] = freed{key: k, at: now}
			}
		}
	}
}

// owed lists the addresses that keys added in this step must get back.
func (h *harness) owed(added map[Key]bool) map[Key]map[Family]netip.Addr {
	out := map[Key]map[Family]netip.Addr{}
	for a, r := range h.released {
		if added[r.key] {
			if out[r.key] == nil {
				out[r.key] = map[Family]netip.Addr{}
			}
			out[r.key][familyOf(a)] = a
		}
	}
	return out
}

func (h *harness) checkLeases(k Key, ls []Lease, held map[netip.Addr]Key, added bool, now time.Time) error {
	c, ok := h.live[k]
	if !ok {
		return fmt.Errorf("%v holds %v but is not claimed", k, ls)
	}
	if len(ls) == 0 || len(ls) > 2 || (len(ls) == 2 && (!ls[0].Addr.Is4() || !ls[1].Addr.Is6())) {
		return fmt.Errorf("%v: leases %v, want at most one per family, IPv4 first", k, ls)
	}
	for _, l := range ls {
		if !propUsable(l.Addr) {
			return fmt.Errorf("%v holds %v: not a usable address of the pools", k, l.Addr)
		}
		if other, dup := held[l.Addr]; dup {
			return fmt.Errorf("%v and %v share %v", k, other, l.Addr)
		}
		held[l.Addr] = k
		if r, ok := h.released[l.Addr]; ok {
			if r.key != k {
				return fmt.Errorf("%v got %v, quarantined for %v since %v", k, l.Addr, r.key, r.at)
			}
			delete(h.released, l.Addr)
			h.stats.Reclaimed++
		}
		if prev, ok := leaseIn(h.prev[k], familyOf(l.Addr)); ok && !added {
			if prev != l {
				return fmt.Errorf("%v moved from %v to %v", k, prev, l)
			}
			continue
		}
		if !l.Since.Equal(now) {
			return fmt.Errorf("%v: new lease %v, want since %v", k, l, now)
		}
		if last, ok := h.lastHolder[l.Addr]; ok && last != k {
			h.stats.Reused++
		}
		if slices.Contains(c.Existing, l.Addr) {
			h.stats.Adopted++
		}
		h.lastHolder[l.Addr] = k
	}
	return nil
}

func leaseIn(ls []Lease, f Family) (Lease, bool) {
	for _, l := range ls {
		if familyOf(l.Addr) == f {
			return l, true
		}
	}
	return Lease{}, false
}

// checkLost fails when a key that stayed claimed lost a lease.
func (h *harness) checkLost(as Assignments) error {
	for k, ls := range h.prev {
		if _, ok := h.live[k]; !ok {
			continue
		}
		for _, l := range ls {
			if _, ok := leaseIn(as[k], familyOf(l.Addr)); !ok {
				return fmt.Errorf("%v lost its lease %v", k, l)
			}
		}
	}
	return nil
}

// checkExhaustion fails when a claimed key lacks an address in a family whose pool has a
// free one; every address is then held or quarantined.
func (h *harness) checkExhaustion(as Assignments, held map[netip.Addr]Key) error {
	size := map[Family]int{IPv4: 62, IPv6: 30}
	used := map[Family]int{}
	for a := range held {
		used[familyOf(a)]++
	}
	for a := range h.released {
		used[familyOf(a)]++
	}
	for k := range h.live {
		for _, f := range []Family{IPv4, IPv6} {
			if _, ok := leaseIn(as[k], f); ok {
				continue
			}
			if used[f] != size[f] {
				return fmt.Errorf("%v has no %v address, yet only %d of %d are held or quarantined",
					k, f, used[f], size[f])
			}
		}
	}
	if used[IPv4] == size[IPv4] && len(h.live) > size[IPv4] {
		h.stats.ExhaustedV4++
	}
	if used[IPv6] == size[IPv6] && len(h.live) > size[IPv6] {
		h.stats.ExhaustedV6++
	}
	return h.checkMetrics(held)
}

func (h *harness) checkMetrics(held map[netip.Addr]Key) error {
	for _, f := range []Family{IPv4, IPv6} {
		var nHeld, nQuar float64
		for a := range held {
			if familyOf(a) == f {
				nHeld++
			}
		}
		for a := range h.released {
			if familyOf(a) == f {
				nQuar++
			}
		}
		gotHeld := promtest.ToFloat64(h.metrics.allocated.WithLabelValues(f.String()))
		gotQuar := promtest.ToFloat64(h.metrics.quarantined.WithLabelValues(f.String()))
		if gotHeld != nHeld || gotQuar != nQuar {
			return fmt.Errorf("%v metrics: allocated %v quarantined %v, want %v and %v", f, gotHeld, gotQuar, nHeld, nQuar)
		}
	}
	return nil
}

// checkState fails unless the state lists, in order, exactly the assignments and the model's
// quarantine. Maps rather than sorting keep the check linear.
func (h *harness) checkState(st State, as Assignments) error {
	if !slices.IsSortedFunc(st.Leases, func(x, y LeaseRecord) int { return compareKeys(x.key(), y.key()) }) ||
		!slices.IsSortedFunc(st.Released, func(x, y ReleaseRecord) int { return compareKeys(x.key(), y.key()) }) {
		return fmt.Errorf("state is not in key order: %+v", st)
	}
	n := 0
	for _, ls := range as {
		n += len(ls)
	}
	if len(st.Leases) != n || len(st.Released) != len(h.released) {
		return fmt.Errorf("state holds %d leases and %d releases, want %d and %d: %+v",
			len(st.Leases), len(st.Released), n, len(h.released), st)
	}
	for _, r := range st.Leases {
		l, ok := leaseIn(as[r.key()], r.Family)
		if !ok || l.Addr != r.Address || l.Since != r.Since {
			return fmt.Errorf("state lease %+v, assignments %v", r, as[r.key()])
		}
	}
	for _, r := range st.Released {
		if m := h.released[r.Address]; m.key != r.key() || m.at != r.ReleasedAt {
			return fmt.Errorf("state release %+v, model %+v", r, m)
		}
	}
	return nil
}

// statesEqual and assignmentsEqual compare with ==, which is exact here: the allocator keeps
// times in UTC without a monotonic reading. They are much faster than reflect.DeepEqual.
func statesEqual(x, y State) bool {
	return x.Version == y.Version && slices.Equal(x.Leases, y.Leases) && slices.Equal(x.Released, y.Released)
}

func assignmentsEqual(x, y Assignments) bool {
	return maps.EqualFunc(x, y, slices.Equal)
}

func propUsable(a netip.Addr) bool {
	return (propV4.Contains(a) || propV6.Contains(a)) && !slices.Contains(propEdges, a)
}

// shrink removes steps from a failing sequence while it still fails: chunks of halving size,
// then single steps until none can go (a simple delta debugging). budget bounds the time.
func shrink[T any](seq []T, fails func([]T) bool, budget time.Duration) []T {
	deadline := time.Now().Add(budget)
	for chunk := max(len(seq)/2, 1); time.Now().Before(deadline); {
		removed := false
		for i := 0; i < len(seq) && time.Now().Before(deadline); {
			cand := slices.Concat(seq[:i], seq[min(i+chunk, len(seq)):])
			if fails(cand) {
				seq, removed = cand, true
			} else {
				i += chunk
			}
		}
		if chunk == 1 && !removed {
			break
		}
		chunk = max(chunk/2, 1)
	}
	return seq
}

func TestShrink(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		fails func([]int) bool
		want  []int
	}{
		{name: "two steps in order", n: 1000, want: []int{17, 421},
			fails: func(s []int) bool {
				i, j := slices.Index(s, 17), slices.Index(s, 421)
				return i >= 0 && j > i
			}},
		{name: "a count of steps", n: 200, want: []int{194, 196, 198}, // the last three that count
			fails: func(s []int) bool {
				return len(slices.DeleteFunc(slices.Clone(s), func(v int) bool { return v%2 == 1 })) >= 3
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq := make([]int, tc.n)
			for i := range seq {
				seq[i] = i
			}
			got := shrink(seq, tc.fails, time.Minute)
			if !slices.Equal(got, tc.want) {
				t.Errorf("shrink = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPropertyHarnessCatchesBugs runs the harness against broken allocators: each must fail,
// and shrink to a short sequence, or the property test proves nothing.
func TestPropertyHarnessCatchesBugs(t *testing.T) {
	tests := []struct {
		name    string
		harness func() *harness
	}{
		{name: "no quarantine", harness: func() *harness { return newHarnessQ(time.Nanosecond) }},
		{name: "a twin that hashes differently", harness: func() *harness {
			h := newHarness()
			h.twin.pools[0].n--
			return h
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := genOps(7, 3000)
			at, err := tc.harness().run(ops)
			if err == nil {
				t.Fatal("the harness did not notice")
			}
			fails := func(ops []op) bool { _, err := tc.harness().run(ops); return err != nil }
			minimal := shrink(ops[:at+1], fails, time.Minute)
			_, err = tc.harness().run(minimal)
			if len(minimal) > 10 {
				t.Errorf("shrunk to %d steps, want a handful: %v", len(minimal), minimal)
			}
			t.Logf("minimal: %v\nfails with: %v", minimal, err)
		})
	}
}
