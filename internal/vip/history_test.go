package vip

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

// The tests below each replay a bug that shipped in another mesh's VIP allocator.

// istio#44837: addresses were handed out in sorted order, so adding or removing any
// ServiceEntry renumbered the ones after it.
func TestIstio44837AddOrRemoveRenumbersNothing(t *testing.T) {
	var keys []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("shop/db%02d.example.com", i))
	}
	tests := []struct {
		name   string
		change func([]Claim) []Claim
	}{
		{name: "add a host that sorts first", change: func(cs []Claim) []Claim {
			return append(cs, Claim{Key: key("aaa/first.example.com"), Created: t0.Add(-time.Hour)})
		}},
		{name: "remove a host in the middle", change: func(cs []Claim) []Claim {
			return without(cs, "shop/db20.example.com")
		}},
		{name: "add and remove at once", change: func(cs []Claim) []Claim {
			return append(without(cs, "shop/db00.example.com", "shop/db39.example.com"),
				claims("shop/db-new.example.com", "a/0.example.com")...)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			a := newTest(t, "240.240.0.0/24", "2001:2::/120", clk)
			before, _ := a.Allocate(claims(keys...))
			clk.Advance(time.Minute)
			after, _ := a.Allocate(tc.change(claims(keys...)))
			for k, ls := range before {
				if got, ok := after[k]; ok && !reflect.DeepEqual(got, ls) {
					t.Errorf("%v moved from %v to %v", k, ls, got)
				}
			}
		})
	}
}

// istio#49809: with hashing plus collision handling recomputed on every change, renaming one
// host moved another host that had collided with it.
func TestIstio49809RenameMovesNoOtherHost(t *testing.T) {
	clk := testutil.NewClock()
	a := newTest(t, "240.240.0.0/24", "", clk)
	p := a.pool(IPv4)
	x, y := collidingKeys(p, "shop") // x takes the shared first choice, y the next address
	cs := []Claim{{Key: x, Created: t0}, {Key: y, Created: t0.Add(time.Second)}}
	before, _ := a.Allocate(cs)
	if before[y][0].Addr != p.addr(p.firstChoice(x)+1) {
		t.Fatalf("setup: %v is not displaced by its collision with %v: %v", y, x, before)
	}

	clk.Advance(time.Minute)
	renamed := Key{Namespace: "shop", Host: "renamed-" + x.Host}
	after, _ := a.Allocate([]Claim{{Key: renamed, Created: clk.Now()}, cs[1]})
	if !reflect.DeepEqual(after[y], before[y]) {
		t.Errorf("renaming %v to %v moved %v from %v to %v", x, renamed, y, before[y], after[y])
	}
	if after[renamed][0].Addr == before[x][0].Addr {
		t.Errorf("the renamed host took %v, still quarantined for %v", before[x][0].Addr, x)
	}

	// Renaming to a name whose first choice is y's address moves y neither.
	clk.Advance(time.Minute)
	onto := keyChoosing(p, "shop", p.firstChoice(x)+1, y)
	final, _ := a.Allocate([]Claim{{Key: onto, Created: clk.Now()}, cs[1]})
	if !reflect.DeepEqual(final[y], before[y]) {
		t.Errorf("renaming onto %v's address moved it to %v", y, final[y])
	}
}

// istio#61493: addresses were never freed, so a pool filled up with deleted entries.
func TestIstio61493DeletedEntriesFreeTheirAddresses(t *testing.T) {
	clk := testutil.NewClock()
	a := newTest(t, "10.0.0.0/30", "", clk)
	old := claims("a/one", "a/two")
	first, _ := a.Allocate(old)
	if len(first) != 2 {
		t.Fatalf("setup: %v", first)
	}
	a.Allocate(nil)
	clk.Advance(DefaultQuarantine)
	cs := claims("b/three", "b/four")
	as, _ := a.Allocate(cs)
	if len(as) != 2 {
		t.Fatalf("after the quarantine the new hosts got %v, want both addresses of the /30", as)
	}
	if st := a.State(); len(st.Released) != 0 || len(st.Leases) != 2 {
		t.Errorf("state still remembers deleted hosts: %+v", st)
	}
}

// kuma#13463: a freed VIP went straight to the next service while clients still cached the
// old answer, so their connections reached the wrong service.
func TestKuma13463NoReuseWithinClientCacheTTL(t *testing.T) {
	clk := testutil.NewClock()
	a := newTest(t, "240.240.0.0/24", "", clk)
	p := a.pool(IPv4)
	gone := key("shop/payments.example.com")
	as, _ := a.Allocate([]Claim{{Key: gone, Created: t0}})
	freed := as[gone][0].Addr
	off, _ := p.offset(freed)
	// Each newcomer would take the freed address were it free: it is their first choice.
	for i, d := range []time.Duration{0, 30 * time.Second, DefaultQuarantine - time.Nanosecond} {
		clk.Set(t0.Add(d))
		next := keyChoosing(p, fmt.Sprintf("ns%d", i), off, gone)
		as, _ = a.Allocate([]Claim{{Key: next, Created: clk.Now()}})
		if got := as[next][0].Addr; got == freed {
			t.Fatalf("%v after the release, %v got the freed %v", d, next, freed)
		}
	}
	// Past the quarantine, the next newcomer with that first choice may have it.
	clk.Set(t0.Add(DefaultQuarantine))
	later := keyChoosing(p, "later", off, gone)
	as, _ = a.Allocate([]Claim{{Key: later, Created: clk.Now()}})
	if got := as[later][0].Addr; got != freed {
		t.Errorf("after the quarantine %v got %v, want the freed %v", later, got, freed)
	}
}

// The same key coming back within the quarantine gets its address back, even when another
// key asked first for it.
func TestRecreatedKeyGetsItsAddressBack(t *testing.T) {
	clk := testutil.NewClock()
	a := newTest(t, "240.240.0.0/24", "2001:2::/120", clk)
	k := key("shop/db.example.com")
	first, _ := a.Allocate([]Claim{{Key: k, Created: t0}})
	a.Allocate(nil)
	clk.Advance(DefaultQuarantine - time.Minute)
	// A newer key recorded (Existing) with k's address must not get it.
	rival := Claim{Key: key("a/rival"), Created: clk.Now(), Existing: []netip.Addr{first[k][0].Addr}}
	as, _ := a.Allocate([]Claim{rival, {Key: k, Created: clk.Now()}})
	if got := as[k]; got[0].Addr != first[k][0].Addr || got[1].Addr != first[k][1].Addr {
		t.Errorf("re-created %v got %v, want its old %v", k, got, first[k])
	}
	if as[rival.Key][0].Addr == first[k][0].Addr {
		t.Error("the rival took the address")
	}
}
