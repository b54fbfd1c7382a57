package vip

import (
	"net/netip"
	"testing"

	"github.com/meshdns/meshdns/internal/testutil"
)

// TestProvisionalLeaseYieldsToRecordedAddress: a host placed while a source was still unread
// (AllocateProvisional) gives its address to a host of that source whose record
// (status.addresses, written by Istio or another replica) names it, and moves; placed by a
// plain Allocate, it keeps the address and the recording host gets another.
func TestProvisionalLeaseYieldsToRecordedAddress(t *testing.T) {
	for _, tc := range []struct {
		name        string
		provisional bool
	}{
		{"provisional placement yields", true},
		{"complete placement stays", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTest(t, "240.240.0.0/16", "", testutil.NewClock())
			registry := claims("reg/foo.example")
			place := a.Allocate
			if tc.provisional {
				place = a.AllocateProvisional
			}
			first, _ := place(registry)
			x := v4of(first, "reg/foo.example")
			recorded := Claim{Key: key("kube/bar.example"), Created: t0.Add(-1), Existing: []netip.Addr{x}}
			got, changed := a.Allocate(append(registry, recorded))
			foo, bar := v4of(got, "reg/foo.example"), v4of(got, "kube/bar.example")
			if !foo.IsValid() || !bar.IsValid() || foo == bar {
				t.Fatalf("foo %v, bar %v: want two distinct addresses", foo, bar)
			}
			if tc.provisional && (bar != x || !changed) {
				t.Errorf("bar got %v, want the address it records, %v, taken from the provisional foo", bar, x)
			}
			if !tc.provisional && foo != x {
				t.Errorf("foo moved from %v to %v though its lease was not provisional", x, foo)
			}
			// Once every source was read, placements are final: a later record does not move foo.
			again, _ := a.Allocate(append(registry, recorded, Claim{Key: key("kube/baz.example"),
				Created: t0.Add(-2), Existing: []netip.Addr{foo}}))
			if v4of(again, "reg/foo.example") != foo {
				t.Errorf("foo moved again after a complete allocation")
			}
		})
	}
}
