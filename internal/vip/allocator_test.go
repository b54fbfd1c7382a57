package vip

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewValidatesPools(t *testing.T) {
	tests := []struct {
		name   string
		v4, v6 netip.Prefix
		err    string // substring; "" means valid
	}{
		{name: "defaults", v4: defaultV4, v6: defaultV6},
		{name: "both off", v4: netip.Prefix{}, v6: netip.Prefix{}},
		{name: "v4 /30 has two usable", v4: netip.MustParsePrefix("10.0.0.0/30")},
		{name: "v6 /126 has two usable", v6: netip.MustParsePrefix("fd00::/126")},
		{name: "v4 /31 too small", v4: netip.MustParsePrefix("10.0.0.0/31"),
			err: "pool 10.0.0.0/31: too small"},
		{name: "v4 /32 too small", v4: netip.MustParsePrefix("10.0.0.1/32"),
			err: "pool 10.0.0.1/32: too small"},
		{name: "v6 /127 too small", v6: netip.MustParsePrefix("fd00::/127"),
			err: "pool fd00::/127: too small"},
		{name: "v6 prefix as v4", v4: netip.MustParsePrefix("fd00::/64"),
			err: "pool fd00::/64: not an IPv4 CIDR"},
		{name: "v4 prefix as v6", v6: netip.MustParsePrefix("10.0.0.0/8"),
			err: "pool 10.0.0.0/8: not an IPv6 CIDR"},
		{name: "v4-mapped as v6", v6: netip.MustParsePrefix("::ffff:10.0.0.0/104"),
			err: "pool ::ffff:10.0.0.0/104: not an IPv6 CIDR"},
		{name: "invalid prefix", v4: netip.PrefixFrom(addr("10.0.0.0"), 33),
			err: "pool invalid Prefix: not a valid CIDR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{V4: tc.v4, V6: tc.v6})
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("New: error %v, want one containing %q", err, tc.err)
			}
			// The rule has one home: CheckPool says what New says, and the caller, not vip,
			// knows which flag set the pool.
			check := errors.Join(CheckPool(IPv4, tc.v4), CheckPool(IPv6, tc.v6))
			if fmt.Sprint(check) != fmt.Sprint(err) {
				t.Errorf("CheckPool: %v, New: %v", check, err)
			}
			if err != nil && strings.Contains(err.Error(), "--") {
				t.Errorf("New: %v names a flag", err)
			}
		})
	}
}

func TestPoolRange(t *testing.T) {
	tests := []struct {
		name        string
		family      Family
		prefix      string
		n           uint64
		first, last string // usable range
		unusable    []string
	}{
		{name: "v4 /30", family: IPv4, prefix: "10.0.0.0/30", n: 2, first: "10.0.0.1", last: "10.0.0.2",
			unusable: []string{"10.0.0.0", "10.0.0.3", "10.0.0.4", "::ffff:10.0.0.3", "fd00::1"}},
		{name: "v4 /16 masked", family: IPv4, prefix: "240.240.7.7/16", n: 65534,
			first: "240.240.0.1", last: "240.240.255.254", unusable: []string{"240.240.0.0", "240.240.255.255"}},
		{name: "v6 /126", family: IPv6, prefix: "fd00::/126", n: 2, first: "fd00::1", last: "fd00::2",
			unusable: []string{"fd00::", "fd00::3", "10.0.0.1"}},
		{name: "v6 /65", family: IPv6, prefix: "fd00::/65", n: 1<<63 - 2,
			first: "fd00::1", last: "fd00::7fff:ffff:ffff:fffe", unusable: []string{"fd00::7fff:ffff:ffff:ffff"}},
		{name: "v6 /48 capped at 2^63 offsets", family: IPv6, prefix: "2001:2::/48", n: 1<<63 - 1,
			first: "2001:2::1", last: "2001:2::7fff:ffff:ffff:ffff",
			unusable: []string{"2001:2::", "2001:2::8000:0:0:0", "2001:2:0:1::1", "2001:2:ffff:ffff:ffff:ffff:ffff:fffe"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newPool(tc.family, netip.MustParsePrefix(tc.prefix))
			if err != nil {
				t.Fatal(err)
			}
			if p.n != tc.n {
				t.Errorf("usable = %d, want %d", p.n, tc.n)
			}
			if got := p.addr(1); got != addr(tc.first) {
				t.Errorf("first usable = %v, want %s", got, tc.first)
			}
			if got := p.addr(p.n); got != addr(tc.last) {
				t.Errorf("last usable = %v, want %s", got, tc.last)
			}
			for _, off := range []uint64{1, 2, p.n / 2, p.n} {
				if got, ok := p.offset(p.addr(off)); !ok || got != off {
					t.Errorf("offset(addr(%d)) = %d, %v", off, got, ok)
				}
			}
			for _, s := range tc.unusable {
				if off, ok := p.offset(addr(s)); ok {
					t.Errorf("%s is usable at offset %d, want not", s, off)
				}
			}
		})
	}
}

func TestFirstChoiceIsHashOfKey(t *testing.T) {
	clk := testutil.NewClock()
	a := newTest(t, "240.240.0.0/16", "2001:2::/48", clk)
	as, _ := a.Allocate(claims("shop/db.example.com"))
	v4, v6 := a.pool(IPv4), a.pool(IPv6)
	k := key("shop/db.example.com")
	want := []Lease{{Addr: v4.addr(v4.firstChoice(k)), Since: t0}, {Addr: v6.addr(v6.firstChoice(k)), Since: t0}}
	if !reflect.DeepEqual(as[k], want) {
		t.Fatalf("leases = %v, want %v (first choices, IPv4 first)", as[k], want)
	}
	h := fnv.New64a()
	h.Write([]byte("shop/db.example.com"))
	if got, want := v4.firstChoice(k), 1+h.Sum64()%65534; got != want {
		t.Errorf("first choice = offset %d, want 1 + FNV-1a(namespace/host) mod 65534 = %d", got, want)
	}
	// Pinned, so that changing the hash is a decision: it moves every VIP not yet persisted.
	if got := v4.addr(v4.firstChoice(k)); got != addr("240.240.231.150") {
		t.Errorf("first choice = %v; the hash changed, which moves every VIP not yet persisted", got)
	}
}

func TestClaimOrderDoesNotMatter(t *testing.T) {
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("ns%d/h%d.example", i%3, i))
	}
	cs := claims(keys...)
	for i := range cs {
		cs[i].Created = t0.Add(time.Duration(i%5) * time.Minute) // many ties, settled by key
	}
	a := newTest(t, "10.0.0.0/23", "", testutil.NewClock())
	want, _ := a.Allocate(cs)
	for seed := range uint64(5) {
		shuffled := append([]Claim(nil), cs...)
		rand.New(rand.NewPCG(seed, 1)).Shuffle(len(shuffled), func(i, j int) {
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		})
		b := newTest(t, "10.0.0.0/23", "", testutil.NewClock())
		if got, _ := b.Allocate(shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: another claim order gave other assignments", seed)
		}
	}
}

func TestOlderClaimsAreServedFirst(t *testing.T) {
	// Two keys whose first choice is the same address: the older one gets it.
	p, _ := newPool(IPv4, netip.MustParsePrefix("10.0.0.0/24"))
	x, y := collidingKeys(p, "ns")
	cs := []Claim{{Key: x, Created: t0.Add(time.Minute)}, {Key: y, Created: t0}}
	a := newTest(t, "10.0.0.0/24", "", testutil.NewClock())
	as, _ := a.Allocate(cs)
	if got, want := as[y][0].Addr, p.addr(p.firstChoice(y)); got != want {
		t.Errorf("older %v got %v, want its first choice %v", y, got, want)
	}
	if got, want := as[x][0].Addr, p.addr(p.firstChoice(y)+1); got != want {
		t.Errorf("newer %v got %v, want the next address %v", x, got, want)
	}
}

// collidingKeys returns two keys of ns with the same first choice in p, the smaller first.
func collidingKeys(p *pool, ns string) (Key, Key) {
	seen := map[uint64]Key{}
	for i := 0; ; i++ {
		k := Key{Namespace: ns, Host: fmt.Sprintf("h%d.example.com", i)}
		if prev, ok := seen[p.firstChoice(k)]; ok {
			return prev, k
		}
		seen[p.firstChoice(k)] = k
	}
}

// keyChoosing returns a key of ns whose first choice in p is off, other than not.
func keyChoosing(p *pool, ns string, off uint64, not Key) Key {
	for i := 0; ; i++ {
		k := Key{Namespace: ns, Host: fmt.Sprintf("c%d.example.com", i)}
		if k != not && p.firstChoice(k) == off {
			return k
		}
	}
}

func TestConflicts(t *testing.T) {
	const x, y = "10.0.0.7", "10.0.0.9"
	lease := func(k, a string) LeaseRecord {
		return LeaseRecord{Namespace: key(k).Namespace, Host: key(k).Host, Family: IPv4, Address: addr(a), Since: t0}
	}
	tests := []struct {
		name   string
		state  State
		claims []Claim
		keeps  string // the key that must hold x
		loser  string // the key that must hold something else
	}{
		{name: "state: older object keeps the address",
			state:  State{Version: 1, Leases: []LeaseRecord{lease("a/new", x), lease("b/old", x)}},
			claims: []Claim{{Key: key("a/new"), Created: t0.Add(time.Hour)}, {Key: key("b/old"), Created: t0}},
			keeps:  "b/old", loser: "a/new"},
		{name: "state: same age, smaller key keeps the address",
			state:  State{Version: 1, Leases: []LeaseRecord{lease("b/two", x), lease("a/one", x)}},
			claims: []Claim{{Key: key("b/two"), Created: t0}, {Key: key("a/one"), Created: t0}},
			keeps:  "a/one", loser: "b/two"},
		{name: "existing: older object keeps the address",
			claims: []Claim{
				{Key: key("a/new"), Created: t0.Add(time.Hour), Existing: []netip.Addr{addr(x)}},
				{Key: key("b/old"), Created: t0, Existing: []netip.Addr{addr(x)}}},
			keeps: "b/old", loser: "a/new"},
		{name: "existing: same age, smaller key keeps the address",
			claims: []Claim{
				{Key: key("b/two"), Created: t0, Existing: []netip.Addr{addr(x)}},
				{Key: key("a/one"), Created: t0, Existing: []netip.Addr{addr(x)}}},
			keeps: "a/one", loser: "b/two"},
		{name: "a persisted lease outranks an older object's recorded address",
			state: State{Version: 1, Leases: []LeaseRecord{lease("b/new", x)}},
			claims: []Claim{{Key: key("b/new"), Created: t0.Add(time.Hour)},
				{Key: key("a/old"), Created: t0, Existing: []netip.Addr{addr(x)}}},
			keeps: "b/new", loser: "a/old"},
		{name: "a recorded address is not taken from a live key",
			state: State{Version: 1, Leases: []LeaseRecord{lease("b/holder", x)}},
			claims: []Claim{{Key: key("b/holder"), Created: t0.Add(time.Hour)},
				{Key: key("a/other"), Created: t0, Existing: []netip.Addr{addr(x)}}},
			keeps: "b/holder", loser: "a/other"},
		{name: "a recorded address is not taken from a quarantine",
			state: State{Version: 1, Released: []ReleaseRecord{
				{Namespace: "b", Host: "gone", Address: addr(x), ReleasedAt: t0}}},
			claims: []Claim{{Key: key("a/other"), Created: t0, Existing: []netip.Addr{addr(x)}}},
			loser:  "a/other"},
		{name: "a key's recorded address in its own quarantine is adopted",
			state: State{Version: 1, Released: []ReleaseRecord{
				{Namespace: "a", Host: "back", Address: addr(x), ReleasedAt: t0}}},
			claims: []Claim{{Key: key("a/back"), Created: t0, Existing: []netip.Addr{addr(y), addr(x)}}},
			keeps:  "a/back"},
		{name: "the first usable recorded address is adopted",
			claims: []Claim{{Key: key("a/rec"), Created: t0, Existing: []netip.Addr{
				addr("10.0.0.0"), addr("10.0.0.255"), addr("192.168.0.1"), addr("fd00::7"), addr(x), addr(y)}}},
			keeps: "a/rec"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			clk.Advance(time.Minute) // quarantines restored at t0 are still on
			a := newTest(t, "10.0.0.0/24", "", clk)
			a.Restore(tc.state)
			as, _ := a.Allocate(tc.claims)
			if tc.keeps != "" {
				if got := v4of(as, tc.keeps); got != addr(x) {
					t.Errorf("%s holds %v, want %s", tc.keeps, got, x)
				}
			}
			if tc.loser != "" {
				if got := v4of(as, tc.loser); !got.IsValid() || got == addr(x) {
					t.Errorf("%s holds %v, want another address", tc.loser, got)
				}
			}
		})
	}
}

func TestRestore(t *testing.T) {
	clk := testutil.NewClock()
	cs := claims("a/one.example", "a/two.example", "b/three.example")
	a := newTest(t, "10.0.0.0/24", "fd00::/120", clk)
	want, _ := a.Allocate(cs)
	saved := a.State()

	t.Run("same claims, identical assignments and no change", func(t *testing.T) {
		clk.Advance(time.Minute)
		b := newTest(t, "10.0.0.0/24", "fd00::/120", clk)
		b.Restore(roundTrip(t, saved))
		if got := b.State(); !reflect.DeepEqual(got, saved) {
			t.Errorf("State before the first Allocate = %+v, want the restored %+v", got, saved)
		}
		got, changed := b.Allocate(cs)
		if !reflect.DeepEqual(got, want) || changed {
			t.Errorf("Allocate = %v, %v; want %v, false", got, changed, want)
		}
	})
	t.Run("pool changed: records outside it are dropped", func(t *testing.T) {
		b := newTest(t, "10.0.0.0/24", "", clk) // IPv6 turned off
		b.Restore(roundTrip(t, saved))
		got, changed := b.Allocate(cs)
		if !changed {
			t.Error("dropping the IPv6 leases is a change to persist")
		}
		if !reflect.DeepEqual(addrsOf(got), addrsOf(want)) {
			t.Errorf("IPv4 addresses moved: %v, want %v", addrsOf(got), addrsOf(want))
		}
		for k, ls := range got {
			if len(ls) != 1 {
				t.Errorf("%v: %v, want only IPv4", k, ls)
			}
		}
	})
	t.Run("keys gone while down are quarantined from now", func(t *testing.T) {
		b := newTest(t, "10.0.0.0/24", "fd00::/120", clk)
		b.Restore(roundTrip(t, saved))
		_, changed := b.Allocate(without(cs, "a/two.example"))
		if !changed {
			t.Error("releasing a lease is a change to persist")
		}
		rel := b.State().Released
		if len(rel) != 2 || rel[0].ReleasedAt != clk.Now() || rel[0].Host != "two.example" {
			t.Fatalf("released = %+v, want a/two.example's two addresses at %v", rel, clk.Now())
		}
		got, _ := b.Allocate(cs) // back within the quarantine: its addresses again
		if !reflect.DeepEqual(addrsOf(got), addrsOf(want)) {
			t.Errorf("addresses %v, want %v", addrsOf(got), addrsOf(want))
		}
	})
	t.Run("restore after the first Allocate is ignored", func(t *testing.T) {
		var logs bytes.Buffer
		b := newTest(t, "10.0.0.0/24", "fd00::/120", clk, logTo(&logs))
		b.Allocate(nil)
		b.Restore(saved)
		if got, _ := b.Allocate(nil); len(got) != 0 || !strings.Contains(logs.String(), "ignored") {
			t.Errorf("Allocate = %v, logs %q", got, logs.String())
		}
	})
	t.Run("unknown version starts empty", func(t *testing.T) {
		b := newTest(t, "10.0.0.0/24", "fd00::/120", clk)
		s := saved
		s.Version = 99
		b.Restore(s)
		if _, changed := b.Allocate(nil); !changed {
			t.Error("replacing an unusable state is a change to persist")
		}
	})
}

// TestFarFutureReleaseIsClamped: a release time in the future (a clock that was wrong, an
// edited file) ends its quarantine no later than now + quarantine after a restore, so the
// address is not withheld for years.
func TestFarFutureReleaseIsClamped(t *testing.T) {
	clk := testutil.NewClock()
	future := t0.AddDate(10, 0, 0)
	s := State{Version: StateVersion,
		Leases:   []LeaseRecord{{Namespace: "a", Host: "live", Family: IPv4, Address: addr("10.0.0.9"), Since: future}},
		Released: []ReleaseRecord{{Namespace: "a", Host: "gone", Address: addr("10.0.0.7"), ReleasedAt: future}}}
	a := newTest(t, "10.0.0.0/24", "", clk)
	a.Restore(s)
	_, changed := a.Allocate(claims("a/live"))
	if !changed {
		t.Error("clamping the restored times is a change to persist")
	}
	if next, ok := a.NextRelease(); !ok || next.After(clk.Now().Add(DefaultQuarantine)) {
		t.Errorf("quarantine ends %v, want by %v", next, clk.Now().Add(DefaultQuarantine))
	}
	if st := a.State(); st.Leases[0].Since.After(clk.Now()) {
		t.Errorf("lease held since %v, after now %v", st.Leases[0].Since, clk.Now())
	}
	clk.Advance(DefaultQuarantine)
	a.Allocate(claims("a/live"))
	if len(a.State().Released) != 0 {
		t.Errorf("after now + quarantine the address is still reserved: %+v", a.State().Released)
	}
}

func roundTrip(t *testing.T, s State) State {
	t.Helper()
	dir := t.TempDir()
	fs := NewFileStore(dir, FileStoreOptions{})
	if err := fs.Save(s); err != nil {
		t.Fatal(err)
	}
	got, err := fs.Load()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestChangedReportsStateChanges(t *testing.T) {
	clk := testutil.NewClock()
	a := newTest(t, "10.0.0.0/24", "", clk, func(o *Options) { o.Quarantine = time.Hour })
	steps := []struct {
		name    string
		advance time.Duration
		claims  []Claim
		changed bool
	}{
		{name: "nothing to do", claims: nil, changed: false},
		{name: "two keys get leases", claims: claims("a/x", "a/y"), changed: true},
		{name: "the same claims again", claims: claims("a/x", "a/y"), changed: false},
		{name: "time passes", advance: time.Minute, claims: claims("a/x", "a/y"), changed: false},
		{name: "a key goes", claims: claims("a/x"), changed: true},
		{name: "within the quarantine", advance: 59 * time.Minute, claims: claims("a/x"), changed: false},
		{name: "the quarantine ends", advance: time.Minute, claims: claims("a/x"), changed: true},
		{name: "after it", advance: time.Hour, claims: claims("a/x"), changed: false},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		before := a.State()
		_, changed := a.Allocate(s.claims)
		if changed != s.changed || changed == reflect.DeepEqual(before, a.State()) {
			t.Errorf("%s: changed = %v, want %v", s.name, changed, s.changed)
		}
	}
}

func TestExhaustionAndRecovery(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	clk := testutil.NewClock()
	a := newTest(t, "10.0.0.0/30", "fd00::/120", clk, logTo(&logs), func(o *Options) { o.Metrics = m })
	failures := func() float64 { return promtest.ToFloat64(m.failures.WithLabelValues("ipv4")) }
	warns := func() int { return strings.Count(logs.String(), "VIP pool exhausted") }

	cs := claims("a/one", "a/two", "a/three")
	first, _ := a.Allocate(cs)
	for range 3 {
		clk.Advance(time.Minute)
		as, _ := a.Allocate(cs)
		if !reflect.DeepEqual(as, first) {
			t.Fatalf("assignments moved: %v, then %v", first, as)
		}
	}
	if got := v4of(first, "a/three"); got.IsValid() {
		t.Fatalf("a/three got %v from a full /30", got)
	}
	if !v6of(first, "a/three").IsValid() {
		t.Error("a/three has no IPv6 address: a full IPv4 pool must not block IPv6")
	}
	if warns() != 1 || failures() != 1 {
		t.Fatalf("%d warnings and %v failures counted over 4 allocations, want 1 and 1:\n%s",
			warns(), failures(), logs.String())
	}
	if !strings.Contains(logs.String(), "key=a/three") || !strings.Contains(logs.String(), "pool=10.0.0.0/30") {
		t.Errorf("the warning names neither the host nor the pool:\n%s", logs.String())
	}

	freed := v4of(first, "a/one")
	cs = without(cs, "a/one")
	as, _ := a.Allocate(cs)
	if v4of(as, "a/three").IsValid() {
		t.Fatal("a/three got a/one's address while it is quarantined")
	}
	clk.Advance(DefaultQuarantine - time.Second)
	if as, _ = a.Allocate(cs); v4of(as, "a/three").IsValid() {
		t.Fatal("a/three got an address a second before the quarantine ended")
	}
	clk.Advance(time.Second)
	as, _ = a.Allocate(cs)
	if got := v4of(as, "a/three"); got != freed {
		t.Fatalf("after the quarantine a/three holds %v, want the freed %v", got, freed)
	}
	if v4of(as, "a/two") != v4of(first, "a/two") {
		t.Error("a/two moved")
	}
	if !strings.Contains(logs.String(), "has room again") {
		t.Error("no log line says the host got an address")
	}

	// A new episode is a new warning.
	a.Allocate(append(cs, claims("b/four")...))
	if warns() != 2 || failures() != 2 {
		t.Errorf("a second episode: %d warnings, %v failures, want 2 and 2", warns(), failures())
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	clk := testutil.NewClock()
	a := newTest(t, "10.0.0.0/24", "fd00::/120", clk, func(o *Options) { o.Metrics = NewMetrics(reg) })
	a.Allocate(claims("a/one", "a/two", "a/three"))
	a.Allocate(claims("a/one", "a/two"))
	want := `
# HELP meshdns_vip_allocated VIPs held by live ServiceEntry hosts.
# TYPE meshdns_vip_allocated gauge
meshdns_vip_allocated{family="ipv4"} 2
meshdns_vip_allocated{family="ipv6"} 2
# HELP meshdns_vip_allocation_failures_total Hosts left without a VIP because the pool was full, once per host and episode.
# TYPE meshdns_vip_allocation_failures_total counter
meshdns_vip_allocation_failures_total{family="ipv4"} 0
meshdns_vip_allocation_failures_total{family="ipv6"} 0
# HELP meshdns_vip_pool_size Addresses of the VIP pool that can be handed out.
# TYPE meshdns_vip_pool_size gauge
meshdns_vip_pool_size{family="ipv4"} 254
meshdns_vip_pool_size{family="ipv6"} 254
# HELP meshdns_vip_quarantined Freed VIPs still reserved for their last host until their quarantine ends.
# TYPE meshdns_vip_quarantined gauge
meshdns_vip_quarantined{family="ipv4"} 1
meshdns_vip_quarantined{family="ipv6"} 1
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestAssignmentsShape(t *testing.T) {
	clk := testutil.NewClock()
	a := newTest(t, "10.0.0.0/30", "fd00::/126", clk)
	// Duplicate claims of one key merge, with the oldest Created: a/three becomes the oldest
	// and a/two, the newest, finds both pools full.
	cs := append(claims("a/one", "a/two", "a/three"), Claim{Key: key("a/three"), Created: t0.Add(-time.Hour)})
	as, _ := a.Allocate(cs)
	if len(as) != 2 || as[key("a/two")] != nil {
		t.Fatalf("assignments = %v, want a/one and a/three only", as)
	}
	for k, ls := range as {
		if len(ls) != 2 || !ls[0].Addr.Is4() || !ls[1].Addr.Is6() || ls[0].Since != t0 {
			t.Errorf("%v: %v, want an IPv4 then an IPv6 lease since %v", k, ls, t0)
		}
	}
}
